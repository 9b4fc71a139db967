#!/usr/bin/env python
"""Build the documentation site: every notebook as a page, as saved (values, tables, plots), and an API page per module.

    pip install -e ".[docs]" && python docs/build.py          # writes the site to _site/; open _site/index.html

mkdocs-material and mkdocs-jupyter; the notebooks are not run. The API pages come from the modules' `__all__`,
signatures and docstrings. The build happens in `_docs/` (a scratch folder) and `_site/`, both ignored by git."""
import argparse, configparser, importlib, inspect, json, shutil, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def notebooks() -> list[Path]:
    "The notebooks of nbs/, index first, then in file order."
    nbs = sorted(p for p in (ROOT / "nbs").glob("*.ipynb") if not p.name.startswith("_"))
    return sorted(nbs, key=lambda p: (p.name != "index.ipynb", p.name))


def title(nb: Path) -> str:
    "The notebook's first heading."
    for cell in json.loads(nb.read_text())["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "): return line[2:].strip()
    return nb.stem


def for_reading(nb: dict) -> dict:
    "The notebook without its build cells (`#| default_exp`, `#| hide`: the export call, the Colab install cell)."
    keep = lambda c: not (c["cell_type"] == "code" and "".join(c["source"]).lstrip().startswith(("#| default_exp", "#| hide")))
    return {**nb, "cells": [c for c in nb["cells"] if keep(c)]}


def modules() -> dict[str, str]:
    "Module name -> the notebook it is exported from (its `default_exp`)."
    out = {}
    for nb in notebooks():
        for cell in json.loads(nb.read_text())["cells"]:
            src = "".join(cell["source"])
            if cell["cell_type"] == "code" and src.startswith("#| default_exp "):
                out[src.split()[2]] = nb.stem
    return out


def api_page(module: str, notebook: str) -> str:
    "Markdown for one module: each public name with its signature and docstring."
    mod = importlib.import_module(f"rlprims.{module}")
    lines = [f"# rlprims.{module}", "", (mod.__doc__ or "").strip(), "",
             f"Explained, with examples, in the notebook [{notebook}](../{notebook}.ipynb).", ""]
    for name in getattr(mod, "__all__", []):
        obj = getattr(mod, name)
        if inspect.isclass(obj) and hasattr(obj, "_fields"):       # a record
            lines += [f"## `{name}`", "", inspect.getdoc(obj) or "", "", "| field | default |", "|---|---|"]
            defaults = getattr(obj, "_field_defaults", {})
            lines += [f"| `{f}` | `{defaults[f]!r}` |" if f in defaults else f"| `{f}` | required |" for f in obj._fields]
        elif callable(obj):
            try: sig = str(inspect.signature(obj))
            except (TypeError, ValueError): sig = "(...)"
            lines += [f"## `{name}`", "", f"```python\n{name}{sig}\n```", "", inspect.getdoc(obj) or ""]
        else:
            lines += [f"## `{name}`", "", f"`{type(obj).__name__}`: `{obj!r:.200}`"]
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--site", default=str(ROOT / "_site"), help="where to write the site")
    a = p.parse_args(argv)
    work = ROOT / "_docs"
    shutil.rmtree(work, ignore_errors=True); (work / "docs" / "api").mkdir(parents=True)
    nbs = notebooks()
    for nb in nbs: (work / "docs" / nb.name).write_text(json.dumps(for_reading(json.loads(nb.read_text()))))
    mods = modules()
    for m, nb in mods.items(): (work / "docs" / "api" / f"{m}.md").write_text(api_page(m, nb))
    cfg = configparser.ConfigParser(); cfg.read(ROOT / "settings.ini")
    repo = cfg["DEFAULT"]["git_url"]
    nav = ["nav:", "  - Home: index.ipynb", "  - Notebooks:"]
    nav += [f"      - {json.dumps(nb.stem + ': ' + title(nb))}: {nb.name}" for nb in nbs if nb.name != "index.ipynb"]
    nav += ["  - API:"] + [f"      - rlprims.{m}: api/{m}.md" for m in mods]
    (work / "mkdocs.yml").write_text("\n".join([
        "site_name: rlprims", f"repo_url: {repo}", "docs_dir: docs", f"site_dir: {a.site}", "use_directory_urls: false",
        "theme:", "  name: material", "plugins:", "  - search", "  - mkdocs-jupyter:", "      execute: false", "      include_source: true",
        "markdown_extensions:", "  - tables", "  - pymdownx.superfences", *nav, ""]))
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(work / "mkdocs.yml")], capture_output=True, text=True,
                       cwd=work)   # mkdocs-jupyter keeps its cache in the working folder
    if r.returncode: sys.exit(r.stdout[-3000:] + r.stderr[-6000:])
    print(f"docs: {len(nbs)} notebooks and {len(mods)} API pages in {a.site}")


if __name__ == "__main__":
    main()
