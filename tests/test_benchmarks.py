"The benchmark script still runs: bench_grpo.py --quick (two tiny CPU steps of rlprims on the embedded model; TRL is not needed)."
import subprocess, sys
from pathlib import Path

def test_bench_grpo_quick_runs(tmp_path):
    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, str(root / "benchmarks" / "bench_grpo.py"), "--quick", "--only", "rlprims", "--gen-reps", "1",
                        "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "| step time (s) |" in r.stdout and "decode roofline" in r.stdout
    import json
    res = json.loads(out.read_text())["results"]["rlprims"]
    assert len(res["steps"]) == 2 and all(s["total"] > 0 and s["tokens"] == 2 * 4 * 8 for s in res["steps"])
