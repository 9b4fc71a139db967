#!/usr/bin/env python
"""Run a notebook top to bottom as nbdev_test does (skipping `#| slow`, `#| eval: false` and `#| hide` cells) and save its outputs.

    python benchmarks/tools/save_outputs.py nbs/05_algorithms.ipynb && nbdev_clean --fname nbs/05_algorithms.ipynb

Use it on notebooks whose outputs are deterministic (no timings, no real-model sampling), so a re-run gives a small diff."""
import os, sys
os.environ.setdefault("MPLBACKEND", "Agg")
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell

path = sys.argv[1]
nb = read_nb(path)
def skip(cell):
    if cell.cell_type != "code": return True
    src = cell.source
    if "#| slow" in src or "#| hub" in src or "#| eval: false" in src or src.startswith("#| hide"): return True
    return False
sh = CaptureShell(path=os.path.dirname(os.path.abspath(path)))
sh.enable_matplotlib("inline")
for c in nb.cells:
    if c.cell_type == "code": c.outputs = []
    if skip(c): continue
    sh.cell(c)
    if sh.exc: raise sh.exc
write_nb(nb, path)
