"The package's shape: every notebook's module reachable from `import rlprims`."
from pathlib import Path

def test_every_module_is_exposed_at_the_top_level():
    "Each notebook's module is star-imported by rlprims/__init__.py, so `import rlprims` reaches every public function."
    import re, rlprims
    root = Path(__file__).resolve().parents[1]
    modules = {m for nb in (root / "nbs").glob("*.ipynb") for m in re.findall(r"#\| default_exp (\w+)", nb.read_text())}
    init = (root / "rlprims" / "__init__.py").read_text()
    missing = sorted(m for m in modules if f"from .{m} import *" not in init and m not in ("cli",))
    assert not missing, f"rlprims/__init__.py does not import: {missing}"
    import importlib
    for m in modules:
        for name in getattr(importlib.import_module(f"rlprims.{m}"), "__all__", []):
            assert hasattr(rlprims, name) or m == "cli", f"rlprims.{name} (from rlprims.{m}) is not at the top level"
