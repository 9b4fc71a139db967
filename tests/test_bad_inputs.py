"""Every row of 08_reliability's bad-input table as its own pytest case: the call raises, and the message names the problem.

The table lives in the notebook (its source of truth); this file reads the notebook's cells that define it, so the two never drift."""
import json
from pathlib import Path
import pytest

NB = Path(__file__).resolve().parent.parent / "nbs" / "08_reliability.ipynb"


def _load_table() -> tuple[list, dict]:
    cells = ["".join(c["source"]) for c in json.loads(NB.read_text())["cells"] if c["cell_type"] == "code"]
    wanted = [c for c in cells if c.startswith("import math") or "BAD_INPUTS = [" in c or c.startswith("def _cli(")]
    ns: dict = {}
    for c in wanted: exec(compile(c.split("\nrows = []")[0], str(NB), "exec"), ns)   # definitions only, not the table loop
    return ns["BAD_INPUTS"], ns


BAD_INPUTS, _NS = _load_table()


@pytest.mark.parametrize("area,what,call,word", BAD_INPUTS, ids=[f"{a}: {w}" for a, w, _, _ in BAD_INPUTS])
def test_bad_input_gets_a_clear_error(area, what, call, word):
    with pytest.raises(Exception) as e:
        call()
    assert word.lower() in str(e.value).lower(), f"{what}: {e.value!r} does not mention {word!r}"
