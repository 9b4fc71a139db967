#!/usr/bin/env python
"""Colab support from one source, `settings.ini`: the "Open in Colab" badge of each notebook and its setup cell.

    python docs/colab.py            # rewrite the badge and the setup cell of every notebook in nbs/ (and the README's badge)
    python docs/colab.py --check    # exit 1, naming them, if any notebook differs from what settings.ini says

The setup cell installs rlprims when it is missing (Colab) and does nothing otherwise. It installs from the repository
in settings.ini, or from $RLPRIMS_SOURCE when that is set (a local checkout, a wheel, a fork)."""
import argparse, configparser, json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETUP_MARK = "# Setup: installs rlprims when it is missing"
BADGE_MARK = "[![Open in Colab]"


def settings() -> dict:
    cfg = configparser.ConfigParser(); cfg.read(ROOT / "settings.ini")
    return dict(cfg["DEFAULT"])


def badge(nb_name: str, s: dict) -> str:
    "Markdown for the Colab badge of notebook `nb_name` (e.g. '06_training.ipynb')."
    url = f"https://colab.research.google.com/github/{s['user']}/{s['lib_name']}/blob/{s['branch']}/nbs/{nb_name}"
    return f"{BADGE_MARK}(https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def setup_cell(s: dict) -> str:
    "The source of every notebook's hidden first code cell."
    return "\n".join([
        "#| hide",
        f"{SETUP_MARK} (e.g. on Colab); does nothing otherwise.",
        "try: import rlprims",
        "except ImportError:",
        "    import os, subprocess, sys",
        f"    source = os.environ.get('RLPRIMS_SOURCE', 'git+{s['git_url']}')   # or a local checkout, a wheel, a fork",
        "    subprocess.check_call([sys.executable, '-m', 'pip', 'install', '-q', source])"])


def _lines(text: str) -> list:
    l = text.split("\n")
    return [x + "\n" for x in l[:-1]] + ([l[-1]] if l[-1] else [])


def updated(nb: dict, name: str, s: dict) -> dict:
    "`nb` with its badge (last line of the first markdown cell) and its setup cell as settings.ini says."
    cells = [dict(c) for c in nb["cells"]]
    first = next(i for i, c in enumerate(cells) if c["cell_type"] == "markdown")
    text = "".join(cells[first]["source"]).rstrip("\n")
    text = "\n".join(l for l in text.split("\n") if not l.startswith(BADGE_MARK)).rstrip("\n")
    cells[first]["source"] = _lines(text + "\n\n" + badge(name, s))
    for c in cells:
        if c["cell_type"] == "code" and SETUP_MARK in "".join(c["source"]): c["source"] = _lines(setup_cell(s))
    return {**nb, "cells": cells}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only check; exit 1 if a notebook differs")
    a = p.parse_args(argv)
    s, stale = settings(), []
    for path in sorted((ROOT / "nbs").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        new = updated(nb, path.name, s)
        if new != nb:
            stale.append(path.name)
            if not a.check: path.write_text(json.dumps(new, indent=1, ensure_ascii=False) + "\n")
    if a.check and stale: print("not as settings.ini says (run python docs/colab.py):", ", ".join(stale)); return 1
    if not a.check and stale: print("updated:", ", ".join(stale))
    return 0


if __name__ == "__main__":
    sys.exit(main())
