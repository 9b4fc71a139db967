#!/usr/bin/env python
"""The benchmark matrix: model shape x completion budget x length distribution, rlprims and TRL side by side.

Each cell is one `bench_grpo.py` run (its own child processes, one per library); results go to `--out`: the cell's
table (`<cell>.<libs>.txt`), its JSON (`<cell>.<libs>.json`, libs: both, rlprims or trl) and one summary table of all cells
in the folder (`matrix.md`; a cell whose libraries ran separately is merged).

    python benchmarks/matrix.py --list                                  # the cells and their settings
    python benchmarks/matrix.py 1.5b-1k-forced 1.5b-1k-longtail --out benchmarks/results/matrix-h200-DATE
    python benchmarks/matrix.py '8b-lora-*' --only rlprims --out ...    # shell-style patterns pick several cells
    python benchmarks/matrix.py 135m-1k-forced --quick                  # a tiny CPU run of the plumbing (CI)
    python benchmarks/matrix.py --summarize --out DIR                   # rebuild DIR/matrix.md from the JSON files there

Shapes (random weights, configs written by bench_grpo.py, the embedded tokenizer): SmolLM2-135M and Qwen2.5-1.5B trained
in full, Qwen3-8B with LoRA (rank 16). Budgets 1k and 4k tokens. Lengths forced equal (every row the whole budget) or
long-tailed (per row: log-normal, median a quarter of the budget, 10% at the cap; the same draw for both libraries).
Every cell: 16 prompts x 8 samples = 128 rows, bf16-mixed, one warm-up step and two timed ones.
"""
from __future__ import annotations
import argparse, fnmatch, json, subprocess, sys, time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
MODELS = {   # name: (bench_grpo flags, micro-batch at 1k, at 4k)
    "135m": (["--shape", "smollm2-135m"], 32, 8),
    "1.5b": (["--shape", "qwen2.5-1.5b"], 16, 4),
    "8b-lora": (["--shape", "qwen3-8b", "--lora"], 8, 2),
}

def cells() -> dict:
    "Every cell's name and its bench_grpo.py flags."
    out = {}
    for m, (flags, micro1k, micro4k) in MODELS.items():
        for T, micro in ((1024, micro1k), (4096, micro4k)):
            for lengths in ("forced", "longtail"):
                out[f"{m}-{T // 1024}k-{lengths}"] = flags + ["--T", str(T), "--micro", str(micro), "--lengths", lengths,
                                                              "--prompts", "16", "--G", "8", "--warmup", "1", "--steps", "2"]
    return out

def summary_row(name: str, res: dict) -> str:
    "One line of matrix.md from a cell's JSON."
    from bench_grpo import median, tokens_per_second
    r, t = res["results"].get("rlprims", {}), res["results"].get("trl", {})
    med = lambda x, k: median(x.get("steps", []), k)
    tps = lambda x: tokens_per_second(x, "generation") if x.get("steps") else float("nan")
    ratio = lambda a, b: f"{a / b:.3f}x" if b == b and b else "-"
    f = r.get("roofline")
    roof = (f"{max(f['t_mem'], f['t_flop']) * r['generator_tps'] / (r['n_rows'] * r['T']):.0%}"
            if f and res["settings"]["lengths"] == "forced" else "-")
    lt = r.get("longtail")
    ltc = (f"{lt['cost_vs_equal']:.2f}x ({lt['seconds_no_compaction'] / lt['seconds']:.2f}x)"
           + (f"; roofline {lt['floor_vs_equal']:.2f}x" if "floor_vs_equal" in lt else "")
           + (f"; refilling {lt['slots']} slots {lt['cost_vs_equal_refill']:.2f}x" if "slots" in lt else "")
           + (f" ({lt['cost_vs_equal_same_slots']:.2f}x against equal lengths through the same slots"
              + (f", roofline {lt['floor_same_slots']:.2f}x" if "floor_same_slots" in lt else "") + ")" if "cost_vs_equal_same_slots" in lt else "") if lt else "-")
    cells = [name, f"{med(r, 'total'):.2f}", f"{med(t, 'total'):.2f}", ratio(med(r, "total"), med(t, "total")),
             f"{med(r, 'generation'):.2f} / {med(r, 'update'):.2f} / {med(r, 'other'):.2f}",
             f"{tps(r):,.0f}", f"{tps(t):,.0f}", f"{r.get('peak_gib', float('nan')):.1f}", f"{t.get('peak_gib', float('nan')):.1f}",
             ratio(r.get("peak_gib", float("nan")), t.get("peak_gib", float("nan"))), roof, ltc]
    return "| " + " | ".join(cells) + " |"

HEAD = ("| cell | rlprims step (s) | TRL step (s) | ratio | rlprims generation / update / other (s) | rlprims tokens/s | TRL tokens/s "
        "| rlprims peak (GiB) | TRL peak (GiB) | ratio | decode, share of roofline "
        "| long-tailed token cost vs equal (gain of compaction; the same ratio at the memory roofline) |\n"
        "|" + " --- |" * 12)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("cells", nargs="*", help="cell names or shell-style patterns (see --list)")
    p.add_argument("--list", action="store_true", help="print the cells and their flags")
    p.add_argument("--out", default=str(HERE / "results" / f"matrix-{date.today()}"), help="results folder")
    p.add_argument("--quick", action="store_true", help="CPU plumbing check: the cells' shapes and lengths at tiny sizes")
    p.add_argument("--summarize", action="store_true", help="only rebuild matrix.md from the folder's JSON files")
    a, extra = p.parse_known_args(argv)   # anything else goes to bench_grpo.py (e.g. --only rlprims, --steps 1, --grad-ckpt)
    all_cells = cells()
    if a.summarize: return summarize(Path(a.out))
    if a.list or not a.cells:
        for k, v in all_cells.items(): print(f"{k:22s} {' '.join(v)}")
        return
    names = [k for k in all_cells if any(fnmatch.fnmatch(k, pat) for pat in a.cells)]
    if not names: sys.exit(f"matrix: no cell matches {a.cells}; --list shows them")
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    libs = extra[extra.index("--only") + 1] if "--only" in extra else "both"
    failed = []
    for name in names:
        flags = all_cells[name]
        if a.quick: flags = flags + ["--device", "cpu", "--T", "8", "--prompts", "2", "--G", "2", "--micro", "4", "--warmup", "0",
                                     "--steps", "1", "--gen-reps", "1", "--no-generate-baseline"]
        else: flags = ["--device", "cuda", "--no-generate-baseline", "--gen-reps", "1"] + flags
        cmd = [sys.executable, "-u", str(HERE / "bench_grpo.py")] + flags + extra + ["--json", str(out / f"{name}.{libs}.json")]
        print(f"== {name}: {' '.join(cmd[2:])}", flush=True)
        t0 = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True)
        (out / f"{name}.{libs}.txt").write_text(" ".join(cmd[2:]) + "\n\n" + r.stdout + (f"\n[stderr]\n{r.stderr[-4000:]}" if r.returncode else ""))
        print(r.stdout[r.stdout.find("| per step"):] if "| per step" in r.stdout else r.stdout[-2000:] + r.stderr[-2000:], flush=True)
        print(f"== {name}: exit {r.returncode} in {time.time() - t0:.0f} s", flush=True)
        if r.returncode: failed.append(name)
    summarize(out)
    if failed: sys.exit(f"matrix: {len(failed)} cell(s) failed: {', '.join(failed)} (their .txt files hold the output)")

def summarize(out: Path):
    "Write `out/matrix.md`: one row per cell, the libraries of its JSON files merged."
    if not out.is_dir(): sys.exit(f"matrix: no results folder {out}")
    merged = {}
    for f in sorted(out.glob("*.json")):
        res = json.loads(f.read_text())
        cell = merged.setdefault(f.name.rsplit(".", 2)[0], dict(res, results={}))   # <cell>.<libs>.json
        cell["results"].update(res["results"])
    order = list(cells())
    rows = [summary_row(k, merged[k]) for k in sorted(merged, key=lambda k: order.index(k) if k in order else len(order))]
    (out / "matrix.md").write_text(HEAD + "\n" + "\n".join(rows) + "\n")
    print("\n" + HEAD + "\n" + "\n".join(rows))

if __name__ == "__main__":
    main()
