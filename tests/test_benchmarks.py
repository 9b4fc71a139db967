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

def test_matrix_quick_runs_a_long_tailed_cell(tmp_path):
    "matrix.py --quick: one cell's plumbing on the CPU (shape config, long-tailed forced lengths, packed rows, the summary table)."
    import json
    root = Path(__file__).resolve().parent.parent
    r = subprocess.run([sys.executable, str(root / "benchmarks" / "matrix.py"), "135m-1k-longtail", "--quick", "--only", "rlprims",
                        "--pack", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((tmp_path / "135m-1k-longtail.rlprims.json").read_text())
    assert res["settings"]["lengths"] == "longtail" and res["settings"]["T"] == 8 and res["settings"]["pack"] is True
    assert "| 135m-1k-longtail |" in (tmp_path / "matrix.md").read_text()
    steps = res["results"]["rlprims"]["steps"]
    assert 0 < steps[0]["tokens"] < 2 * 2 * 8                    # long-tailed: fewer tokens than the forced 4 rows x 8

def test_long_tailed_lengths():
    "The long-tailed draw: fixed per step, median about a quarter of the budget, about 10% at the cap."
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from bench_grpo import row_lengths
    L = row_lengths(0, 4096, 1024, "longtail")
    assert L.equal(row_lengths(0, 4096, 1024, "longtail")) and not L.equal(row_lengths(1, 4096, 1024, "longtail"))
    assert 230 <= L.median() <= 290 and 0.08 <= (L == 1024).float().mean() <= 0.12 and L.min() >= 1
    assert row_lengths(0, 5, 7, "forced").tolist() == [7] * 5

def test_memory_table_quick_runs(tmp_path):
    "memory_table.py --quick: the search and the table on the CPU (no memory cap; sizes up to 2 rows)."
    import json
    root = Path(__file__).resolve().parent.parent
    r = subprocess.run([sys.executable, str(root / "benchmarks" / "memory_table.py"), "--quick", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = json.loads((tmp_path / "memory-smollm2-135m.json").read_text())["rows"]
    assert [(x["ckpt"], x["micro"], x["gen_rows"]) for x in rows] == [(False, 2, 2), (True, 2, None)]
    assert "| smollm2-135m | full | on | 4 |" in (tmp_path / "memory-smollm2-135m.md").read_text()

def test_largest_search():
    "memory_table.largest: doubling then bisection to within 1/8, against a known threshold."
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from memory_table import largest
    for limit in (1, 7, 100, 1000):
        n, peak = largest(lambda m: float(m) if m <= limit else None, 1, 4096)
        assert limit * 7 / 8 <= n <= limit and peak == n
    assert largest(lambda m: None, 8, 64)[0] == 0

def test_longtail_floor_ratio_by_hand():
    "longtail_floor_ratio against a hand count: weights 100 bytes, KV 1 byte a token, prompts of 0 tokens."
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import bench_grpo
    from types import SimpleNamespace
    orig = bench_grpo.decode_bytes
    bench_grpo.decode_bytes = lambda model: (100, 1, 0, None, 0)
    try:
        # lengths 1 and 3: steps t=1, 2 with live rows 1, 1 -> (100 + 1) + (100 + 2) = 203 bytes for 4 tokens;
        # equal lengths 2: step t=1 with 2 rows -> 100 + 2 = 102 bytes for 4 tokens
        assert abs(bench_grpo.longtail_floor_ratio(None, [1, 3], 0) - (203 / 4) / (102 / 4)) < 1e-12
        assert bench_grpo.longtail_floor_ratio(None, [5, 5, 5], 0) == 1.0     # equal lengths cost what they cost
        # through 2 slots, lengths 3, 1, 2: the 1-token row needs no decode step, so rows 3 and 2 decode together at t=1
        # (100 + 1 + 1), row 3 alone at t=2 (100 + 2): 204 bytes. Equal lengths 2, 2, 2: two rows at t=1 (100 + 2), the
        # third, refilled, alone at t=2 attending 1 position (100 + 1): 203 bytes. 6 tokens each.
        assert bench_grpo.schedule_bytes([3, 1, 2], 2, 100, 1, 0) == 204 and bench_grpo.schedule_bytes([2, 2, 2], 2, 100, 1, 0) == 203
        assert abs(bench_grpo.longtail_floor_ratio(None, [3, 1, 2], 0, slots=2) - 204 / 203) < 1e-12
        assert bench_grpo.schedule_bytes([2, 2, 2], 2, 100, 1, 5) == 203 + 5 * 3   # prompts of 5 tokens: 5 more positions a row-step
    finally: bench_grpo.decode_bytes = orig

def test_refill_estimate_by_hand():
    "tools/refill_estimate.py's simulation against a hand count: rows of 3, 1 and 2 tokens in 2 slots."
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks" / "tools"))
    from refill_estimate import refill_ms
    # steps 1-3 run two rows each: rows 3 and 1 start; row 1 ends after step 1 and row 2 takes its slot, ending with row 3 after step 3
    assert refill_ms([3, 1, 2], 2, lambda n: 1.0) == 3.0 and refill_ms([3, 1, 2], 2, lambda n: float(n)) == 6.0
    assert refill_ms([2, 2, 2], 2, lambda n: float(n)) == 2 * 2 + 2 * 1    # no refill mid-way: the third row runs alone
    assert refill_ms([5], 4, lambda n: 1.0) == 5.0

def test_refill_loop_model_by_hand():
    "refill_estimate.loop_ms, worked by hand: 2 slots, the host looking every step, a step costing its batch's rows."
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks" / "tools"))
    from refill_estimate import loop_ms
    assert loop_ms([3, 1, 2], 2, lambda n: 1.0, 1) == (2.0, 2, 1)        # the 1-token row's place refilled after step 1; both end at step 2
    assert loop_ms([3, 1, 2, 2], 2, float, 1) == (5.0, 3, 2)              # refills of 1 row each; the last step runs 1 row after compaction
    assert loop_ms([3, 1, 2, 2], 2, float, 1, min_free=2) == (6.0, 3, 1)  # one refill of both rows once both places are free
    assert loop_ms([3, 1, 2, 2], 2, float, 1, refill_ms=10.0) == (25.0, 3, 2)

def test_carry_schedule_by_hand():
    "refill_estimate.carry_schedule: without carried rows and carry_at=0 it reads what bench_grpo.schedule_bytes counts; a step cut short carries its live rows."
    root = Path(__file__).resolve().parent.parent / "benchmarks"
    sys.path[:0] = [str(root), str(root / "tools")]
    import random, bench_grpo
    from refill_estimate import carry_schedule
    # rows of 3 and 1 tokens through 1 slot, weights 10 bytes, 1 byte a position: the 3-token row's two decode steps read 10 + 1, 10 + 2
    assert carry_schedule([3, 1], [], 1, 0, 10, 1, 0) == (23, 4, [])
    rng = random.Random(0)
    for _ in range(20):
        L, slots = [rng.randint(1, 30) for _ in range(rng.randint(1, 12))], rng.randint(1, 5)
        assert carry_schedule(L, [], slots, 0, 100, 2, 7)[0] == bench_grpo.schedule_bytes(L, slots, 100, 2, 7)
    # a 5-token row, the step ending at 1 live row: its first token only, then carried (4 to go, 1 made)
    assert carry_schedule([5], [], 1, 1, 10, 1, 0) == (0, 1, [(4, 1)])
    assert carry_schedule([], [(4, 1)], 1, 0, 10, 1, 0) == ((10 + 2) + (10 + 3) + (10 + 4), 4, [])   # resumed: its prompt pass gives token 2

def test_refill_parts_counts_refills_and_steps():
    "bench_grpo.refill_parts: 6 rows of forced lengths through 2 slots, the host looking every 2 steps: refills happen, are timed, and the loop's steps are counted."
    import torch
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from bench_grpo import refill_parts
    import rlprims.fast_decode as FD
    from rlprims.core import GenerationConfig
    from rlprims.training import tiny_test_model
    model = tiny_test_model(seed=0).eval()
    ids, mask = torch.randint(3, 1000, (6, 4), generator=torch.Generator().manual_seed(0)), torch.ones(6, 4, dtype=torch.long)
    tok = type("Tok", (), dict(pad_token_id=2, eos_token_id=2))()
    cfg = GenerationConfig(max_new_tokens=6, min_new_tokens=6, do_sample=False)
    lengths = torch.tensor([2, 6, 3, 1, 4, 2])
    parts = refill_parts(FD, lambda: FD.generate_batch_fast(model, tok, ids, mask, cfg, eos_ids=[2], forced_lengths=lengths, slots=2, check_every=2), "cpu")
    assert parts["refills"] >= 2 and parts["refill_seconds"] > 0               # 4 queued rows need at least 2 refills of up to 2 rows
    assert (sum(lengths.tolist()) - 6) / 2 <= parts["steps"] <= (6 + 2) * 3     # at least the decoded tokens (first ones come from prefills) over 2 slots; at most the loop's bound
    assert FD._refill.__name__ == "_refill"                                     # the spy is gone afterwards

def test_continuous_decode_quick_runs():
    "tools/continuous_decode.py --quick: the steady-state session measurement runs end to end on the CPU and prints its ratios."
    tool = Path(__file__).resolve().parent.parent / "benchmarks" / "tools" / "continuous_decode.py"
    out = subprocess.run([sys.executable, str(tool), "--quick"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "a long-tailed token costs" in out.stdout and "rows returned" in out.stdout
