"""The notebooks: each jupytext script has its .ipynb twin, in sync and stored without outputs.

(The notebooks themselves run top to bottom under pytest through nbmake: setup.cfg adds
``--nbmake`` and ``notebooks/`` to the test paths, and notebooks/conftest.py sets the fast
setting MINIRNN_FAST=1.)
"""

import json
from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
EXPECTED = ["01_vanilla_rnn", "02_lstm", "03_gru", "04_char_rnn", "05_attention", "06_convlstm",
            "07_gpt"]
SCRIPTS = sorted(p for p in NOTEBOOKS.glob("*.py") if p.name != "conftest.py")


def _cells(cells):
    return [(c["cell_type"], c["source"] if isinstance(c["source"], str) else "".join(c["source"]))
            for c in cells]


def test_every_notebook_of_the_course_is_there_as_a_pair():
    assert sorted(p.stem for p in SCRIPTS) == EXPECTED
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == EXPECTED


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_the_ipynb_matches_its_script_cell_for_cell(script):
    ipynb = script.with_suffix(".ipynb")
    stored = json.loads(ipynb.read_text(encoding="utf-8"))
    expected = jupytext.read(script)
    assert _cells(stored["cells"]) == _cells(expected.cells), (
        f"{ipynb.name} is out of sync with {script.name}: run `jupytext --sync {script}`")
    tags = [c.get("metadata", {}).get("tags", []) for c in stored["cells"]]
    assert tags == [c.metadata.get("tags", []) for c in expected.cells]


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_the_ipynb_is_stored_without_outputs(script):
    stored = json.loads(script.with_suffix(".ipynb").read_text(encoding="utf-8"))
    for i, cell in enumerate(stored["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, (
                f"cell {i + 1} of {script.stem}.ipynb has outputs: clear them before committing")


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_each_notebook_has_a_fast_setting(script):
    assert 'os.environ.get("MINIRNN_FAST")' in script.read_text(encoding="utf-8") or \
        script.stem in ("01_vanilla_rnn", "02_lstm", "03_gru")  # these train nothing
