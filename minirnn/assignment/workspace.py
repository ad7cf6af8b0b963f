"""``make``: write a student workspace (``grading.py`` scores one).

A workspace is a folder a student can install and test with the project's own two
commands (``python -m pip install -e ".[test]"``, ``python -m pytest``):

    README.md, setup.cfg, pyproject.toml
    minirnn/                 the library, with the graded modules' solution regions
                             replaced by ``raise NotImplementedError()``
    notebooks/NN_name.ipynb  the walk-through, with nbgrader cell metadata
    tests/test_NAME.py       the graded checks on the public cases, whose reference values
                             are tests/expected_NAME.npz (grading uses other cases)
    .minirnn-assignment.json which assignment this is
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from . import checks, get
from .grading import MANIFEST
from .regions import CODE_STUB, MARKDOWN_STUB, find_regions, strip_solutions

PACKAGE = Path(__file__).resolve().parents[1]        # the installed minirnn/
NOTEBOOKS = PACKAGE.parent / "notebooks"               # beside it in a source checkout


def _version():
    from .. import __version__
    return __version__


# --------------------------------------------------------------------------------------
# make
# --------------------------------------------------------------------------------------

def make_workspace(name, out, *, solutions=False, notebooks=None):
    """Write the workspace of assignment ``name`` into the new or empty folder ``out``.

    solutions: keep the solution regions (an answer key that grades 100%);
    notebooks: the folder holding the project's .ipynb files (default: the checkout's
        ``notebooks/``); a missing notebook is reported, not an error.
    Returns a dict: ``out``, ``stripped`` (regions replaced), ``notebook`` (its path in the
    workspace, or None) and ``notes`` (lines to show the teacher).
    """
    a = get(name)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out must be a new or empty folder (nothing there is overwritten), "
                         f"got {str(out)!r}, which {'holds files' if out.is_dir() else 'is a file'}")
    sources = [PACKAGE.parent / path for path in a.files]
    stripped = 0
    for source in sources:
        regions = len(find_regions(source.read_text(encoding="utf-8"), str(source)))
        if regions == 0:
            raise ValueError(f"{source} has no {'### BEGIN SOLUTION'!r} regions to hand out")
        stripped += regions
    notes = []

    # Everything is written into a fresh folder beside ``out`` and moved into place at the
    # end, so a failure half-way leaves no half-made workspace behind.
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp's folder is private; a workspace is not
    try:
        nb_dest = _write_workspace(a, staging, sources, solutions, notebooks, notes)
        if out.exists():
            out.rmdir()  # checked empty above
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if nb_dest is not None:
        nb_dest = out / nb_dest.relative_to(staging)
    return {"out": out, "stripped": 0 if solutions else stripped, "notebook": nb_dest,
            "notes": notes}


def _write_workspace(a, staging, sources, solutions, notebooks, notes):
    """The workspace's files, written into ``staging``; returns the notebook's path or None."""
    name = a.name
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if "__pycache__" in rel.parts:
            continue
        text = path.read_text(encoding="utf-8")
        if path in sources and not solutions:
            text, _ = strip_solutions(text, f"minirnn/{rel.as_posix()}")
        dest = staging / "minirnn" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")

    tests = staging / "tests"
    tests.mkdir()
    checks.save_data(tests / f"expected_{name}.npz",
                     checks.reference_data(name, checks.public_cases(name)))
    (tests / f"test_{name}.py").write_text(_TEST_FILE.format(name=name, title=a.title),
                                           encoding="utf-8")

    nb_src = Path(notebooks or NOTEBOOKS) / f"{a.notebook}.ipynb"
    nb_dest = None
    if nb_src.is_file():
        nb_dest = staging / "notebooks" / nb_src.name
        nb_dest.parent.mkdir()
        nb_dest.write_text(assignment_notebook(nb_src, solutions), encoding="utf-8")
    else:
        notes.append(f"no notebook: {nb_src} was not found (pass --notebooks DIR); "
                     "the workspace has the package and the tests only")

    (staging / "README.md").write_text(_README.format(
        name=name, files=" and ".join(f"`{f}`" for f in a.files), title=a.title,
        notebook=a.notebook,
        first=checks.functions(name)[0][0],
        functions="\n".join(f"- `{fn}` ({p} points)" for fn, p in checks.functions(name))),
        encoding="utf-8")
    (staging / "setup.cfg").write_text(_SETUP_CFG.format(name=name), encoding="utf-8")
    (staging / "pyproject.toml").write_text(_PYPROJECT, encoding="utf-8")
    (staging / MANIFEST).write_text(json.dumps({
        "assignment": name, "files": list(a.files), "notebook": a.notebook,
        "solutions": bool(solutions), "minirnn_version": _version()}, indent=2) + "\n",
        encoding="utf-8")
    return nb_dest


def assignment_notebook(path, solutions=False):
    """The notebook at ``path`` as nbgrader expects it, as JSON text: cells with solution
    regions become solution cells (regions stubbed unless ``solutions``), cells tagged
    ``graded`` become locked graded test cells worth 1 point; outputs are cleared."""
    path = Path(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    nb.get("metadata", {}).pop("jupytext", None)  # the workspace has no paired .py
    n_solution = n_graded = 0
    for index, cell in enumerate(nb["cells"]):
        text = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        where = f"{path.name}, cell {index + 1}"
        tags = cell.get("metadata", {}).get("tags", [])
        code = cell["cell_type"] == "code"
        if find_regions(text, where):
            if not solutions:
                text, _ = strip_solutions(text, where, CODE_STUB if code else MARKDOWN_STUB)
            n_solution += 1
            grader = {"grade": False, "grade_id": f"solution_{n_solution}", "locked": False,
                      "schema_version": 3, "solution": True, "task": False}
        elif "graded" in tags:
            n_graded += 1
            grader = {"grade": True, "grade_id": f"test_{n_graded}", "locked": True,
                      "points": 1, "schema_version": 3, "solution": False, "task": False}
        else:
            grader = None
        if grader is not None:
            cell.setdefault("metadata", {})["nbgrader"] = grader
        if code:
            cell["outputs"], cell["execution_count"] = [], None
        cell["source"] = text.splitlines(keepends=True)
    if n_solution == 0 or n_graded == 0:
        raise ValueError(f"{path}: an assignment notebook needs solution cells and graded "
                         f"cells, found {n_solution} and {n_graded}")
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------------------
# The workspace's own files
# --------------------------------------------------------------------------------------

_README = """\
# minirnn assignment `{name}`: {title}

```bash
python -m pip install -e ".[test]"
python -m pytest
```

Write the missing code in {files}: every `raise NotImplementedError()` marks a place.
The graded functions:

{functions}

`tests/test_{name}.py` runs the checks your teacher grades with, on public cases.
Each forward function is checked against reference values (every output, on the
smallest shapes, every size 1, and on non-square ones, and float32 in -> float32 out);
each backward function against the reference gradients (relative error <= 1e-13: only
backpropagation gets that close, finite differences do not) and by a gradient check of
every input and parameter against centred differences of your own forward pass
(float64, relative error <= 1e-7). Run one with `python -m pytest -k {first}` (or any
part of a test's name) and read the message of the first failure.

`notebooks/{notebook}.ipynb` walks through the equations step by step; its cells marked
`# YOUR CODE HERE` are yours too, and the locked cells after them check your answers
(`python -m pip install jupyterlab`, then `jupyter lab notebooks/`). The derivations
are in the minirnn docs.

Your teacher grades this folder with `minirnn assignment grade`: the same checks, on
other cases (other shapes, other values) that only the teacher's copy can draw, so a
correct solution that passes these tests passes grading too, and values copied from
`expected_{name}.npz` earn nothing. Each function is graded on its own, in a fresh
process that loads only your graded code and the few library modules it needs (the
backend, `_checks`, `activations`): importing another part of minirnn, or a package
such as torch, fails there. A function that runs longer than a minute, exits or
crashes loses its own marks only.
"""

_TEST_FILE = '''\
"""The checks of the `{name}` assignment ({title}) on its public cases.

Reference values come from `expected_{name}.npz`, stored by `minirnn assignment make`.
Run with `python -m pytest`; your teacher grades with these same checks on other cases.
"""

from pathlib import Path

import pytest

from minirnn import functional as implementation
from minirnn.assignment import checks

DATA = checks.load_data(Path(__file__).with_name("expected_{name}.npz"))
TESTS = checks.tests_for("{name}")


@pytest.mark.parametrize("test", TESTS, ids=[t.id for t in TESTS])
def test_{name}(test):
    test.run(implementation, DATA)
'''

_SETUP_CFG = """\
[metadata]
name = minirnn-assignment-{name}
version = 0.1.0
description = A minirnn classroom workspace

[options]
packages = find:
python_requires = >=3.10
install_requires =
    numpy>=1.24
    matplotlib>=3.6
    tqdm>=4.60

[options.packages.find]
include = minirnn, minirnn.*

[options.extras_require]
test =
    pytest>=7
    hypothesis>=6.80

[tool:pytest]
testpaths = tests
addopts = -ra
"""

_PYPROJECT = """\
[build-system]
requires = ["setuptools>=61", "wheel"]
build-backend = "setuptools.build_meta"
"""
