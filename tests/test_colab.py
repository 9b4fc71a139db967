"Colab support: every notebook's badge and setup cell come from settings.ini, and the setup cell installs rlprims where it is missing (issue 18)."
import json, os, subprocess, sys, venv
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))
import colab


def test_notebooks_follow_settings_ini():
    assert colab.main(["--check"]) == 0
    s = colab.settings()
    for path in sorted((ROOT / "nbs").glob("*.ipynb")):
        first = next(c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown")
        assert colab.badge(path.name, s) in "".join(first["source"]), path.name
    assert colab.badge("index.ipynb", s) in (ROOT / "README.md").read_text()


def _setup_source() -> str:
    nb = json.loads((ROOT / "nbs" / "06_training.ipynb").read_text())
    return next("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code" and colab.SETUP_MARK in "".join(c["source"]))


def test_setup_cell_does_nothing_where_rlprims_is_installed(monkeypatch):
    import subprocess as sp
    monkeypatch.setattr(sp, "check_call", lambda *a, **k: pytest.fail("the setup cell ran pip although rlprims is installed"))
    exec(compile(_setup_source(), "setup-cell", "exec"), {})


def test_setup_cell_installs_rlprims_into_a_fresh_venv(tmp_path):
    "A venv without rlprims (and without the system's packages): the cell, pointed at this checkout, installs it."
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = lambda *args, env=clean, **kw: subprocess.run([py, *args], capture_output=True, text=True, cwd=tmp_path, env=env, **kw)
    assert run("-c", "import rlprims").returncode != 0                                 # missing, as on Colab
    # the dependencies (torch, transformers, ...) are not installed here: PIP_NO_DEPS keeps the test offline-sized
    env = {**clean, "RLPRIMS_SOURCE": str(ROOT), "PIP_NO_DEPS": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    r = run("-c", _setup_source(), env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    show = run("-m", "pip", "show", "-f", "rlprims").stdout
    assert "Name: rlprims" in show and "rlprims/training.py" in show
    site = Path(run("-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    assert (site / "rlprims" / "training.py").read_text() == (ROOT / "rlprims" / "training.py").read_text()
