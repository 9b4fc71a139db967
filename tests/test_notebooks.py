"""Run every notebook in nbs/ as one pytest item, with nbdev's own runner (the `test_nb` that `nbdev_test` uses).

Cells flagged `#| slow` are skipped unless RLPRIMS_SLOW=1 (the same as `nbdev_test --flags slow`);
`#| eval: false` cells never run. This gives CI one pytest summary line that covers notebooks and unit tests.
"""
import os
from pathlib import Path
import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as _run_notebook   # renamed so pytest does not collect it

NBS = sorted(p for p in (Path(__file__).parent.parent / "nbs").glob("*.ipynb") if not p.name.startswith("_"))


@pytest.mark.parametrize("nb", NBS, ids=[p.stem for p in NBS])
def test_notebook(nb):
    cfg = get_config()
    force = ["slow"] if os.environ.get("RLPRIMS_SLOW") == "1" else []
    ok, secs = _run_notebook(nb, skip_flags=cfg.tst_flags.split(), force_flags=force, basepath=cfg.config_path)
    assert ok, f"notebook {nb.name} failed (see the traceback above)"
