"""``make``: write a student workspace. ``grade``: score one, in a separate process.

A workspace is a folder a student can install and test with the project's own two
commands (``python -m pip install -e ".[test]"``, ``python -m pytest``):

    README.md, setup.cfg, pyproject.toml
    minirnn/                 the library, with the assignment module's solution regions
                             replaced by ``raise NotImplementedError()``
    notebooks/NN_name.ipynb  the walk-through, with nbgrader cell metadata
    tests/test_NAME.py       the graded tests; tests/expected_NAME.npz their reference values
    .minirnn-assignment.json which assignment this is
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import checks, get
from .regions import CODE_STUB, MARKDOWN_STUB, find_regions, strip_solutions

PACKAGE = Path(__file__).resolve().parents[1]        # the installed minirnn/
NOTEBOOKS = PACKAGE.parent / "notebooks"               # beside it in a source checkout
MANIFEST = ".minirnn-assignment.json"


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
    source = PACKAGE / "functional" / f"{a.module}.py"
    stripped = len(find_regions(source.read_text(encoding="utf-8"), str(source)))
    if stripped == 0:
        raise ValueError(f"{source} has no {'### BEGIN SOLUTION'!r} regions to hand out")
    notes = []

    # Everything is written into a fresh folder beside ``out`` and moved into place at the
    # end, so a failure half-way leaves no half-made workspace behind.
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp's folder is private; a workspace is not
    try:
        nb_dest = _write_workspace(a, staging, source, solutions, notebooks, notes)
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


def _write_workspace(a, staging, source, solutions, notebooks, notes):
    """The workspace's files, written into ``staging``; returns the notebook's path or None."""
    name = a.name
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if "__pycache__" in rel.parts:
            continue
        text = path.read_text(encoding="utf-8")
        if path == source and not solutions:
            text, _ = strip_solutions(text, f"minirnn/{rel.as_posix()}")
        dest = staging / "minirnn" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")

    tests = staging / "tests"
    tests.mkdir()
    reference = importlib.import_module(f"minirnn.functional.{a.module}")
    checks.save_data(tests / f"expected_{name}.npz", checks.reference_data(name, reference))
    (tests / f"test_{name}.py").write_text(_TEST_FILE.format(
        name=name, module=a.module, title=a.title), encoding="utf-8")

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
        name=name, module=a.module, title=a.title, notebook=a.notebook,
        first=checks.functions(name)[0][0],
        functions="\n".join(f"- `{fn}` ({p} points)" for fn, p in checks.functions(name))),
        encoding="utf-8")
    (staging / "setup.cfg").write_text(_SETUP_CFG.format(name=name), encoding="utf-8")
    (staging / "pyproject.toml").write_text(_PYPROJECT, encoding="utf-8")
    (staging / MANIFEST).write_text(json.dumps({
        "assignment": name, "module": a.module, "notebook": a.notebook,
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
# grade
# --------------------------------------------------------------------------------------

@dataclass
class GradeReport:
    assignment: str
    folder: str
    rows: list          # (function, passed, total, earned, points)
    earned: float
    points: float
    outcomes: list = field(default_factory=list)

    @property
    def percent(self):
        return 100.0 * self.earned / self.points

    def as_dict(self):
        return {"assignment": self.assignment, "folder": self.folder,
                "earned": self.earned, "points": self.points, "percent": self.percent,
                "functions": [{"function": f, "passed": p, "tests": t, "earned": e,
                               "points": pts} for f, p, t, e, pts in self.rows],
                "tests": [vars(o) for o in self.outcomes]}

    def __str__(self):
        table = [("function", "tests", "points")]
        table += [(f, f"{p}/{t}", f"{e:.2f} / {pts:g}") for f, p, t, e, pts in self.rows]
        table.append(("total", "", f"{self.earned:.2f} / {self.points:g}  ({self.percent:.0f}%)"))
        w = [max(len(r[i]) for r in table) for i in range(3)]
        lines = [f"assignment {self.assignment!r} in {self.folder}", ""]
        lines += ["  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip() for r in table[:1]]
        lines.append("  ".join("-" * x for x in w))
        lines += ["  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip() for r in table[1:]]
        failed = [o for o in self.outcomes if not o.passed]
        if failed:
            lines += ["", "failed tests:"]
            lines += [f"  {o.test}: {o.error}" + (f": {o.message}" if o.message else "")
                      for o in failed]
        return "\n".join(lines)


def read_manifest(folder):
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ValueError(f"{str(folder)!r} is not a workspace made by `minirnn assignment make` "
                         f"(it has no {MANIFEST}); if it holds a student's minirnn/ "
                         "package, name the assignment with --assignment")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        get(manifest["assignment"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is damaged: {e}") from None
    return manifest


def grade_workspace(folder, timeout=600, assignment=None):
    """Run the teacher's graded tests against the workspace ``folder``'s package.

    assignment: the assignment's name, needed only when the folder has no manifest
        (say, only the student's ``minirnn/`` was collected).
    The tests and the reference values come from the installed library, never from the
    workspace; the student's code runs in a child process (stopped after ``timeout``
    seconds), so a crash or an endless loop costs only its own tests.
    """
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise ValueError(f"{str(folder)!r} is not a folder")
    name = assignment if assignment is not None else read_manifest(folder)["assignment"]
    a = get(name)
    if not (folder / "minirnn" / "functional" / f"{a.module}.py").is_file():
        raise ValueError(f"{folder} has no minirnn/functional/{a.module}.py to grade")
    reference = importlib.import_module(f"minirnn.functional.{a.module}")
    with tempfile.TemporaryDirectory(prefix="minirnn-grade-") as tmp:
        data_path, result_path = Path(tmp) / "reference.npz", Path(tmp) / "result.json"
        checks.save_data(data_path, checks.reference_data(name, reference))
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["MINIRNN_BACKEND"] = "numpy"
        cmd = [sys.executable, "-m", "minirnn.assignment.worker", str(folder), name,
               str(data_path), str(result_path)]
        try:
            run = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True,
                                 timeout=timeout)
            reason = f"the grading process exited with status {run.returncode}: " + \
                _last_line(run.stderr)
        except subprocess.TimeoutExpired:
            reason = f"the grading process was stopped after {timeout} s (an endless loop?)"
        if result_path.is_file():
            outcomes = [checks.Outcome(**o) for o in json.loads(result_path.read_text())]
        else:
            outcomes = [checks.Outcome(t.id, t.function, False, "GradingError", reason)
                        for t in checks.tests_for(name)]
    rows, earned, points = checks.score(name, outcomes)
    return GradeReport(name, str(folder), rows, earned, points, outcomes)


def _last_line(text):
    lines = [s for s in text.strip().splitlines() if s.strip()]
    return lines[-1] if lines else "(no message)"


# --------------------------------------------------------------------------------------
# The workspace's own files
# --------------------------------------------------------------------------------------

_README = """\
# minirnn assignment `{name}`: {title}

```bash
python -m pip install -e ".[test]"
python -m pytest
```

Write the missing code in `minirnn/functional/{module}.py`: every
`raise NotImplementedError()` marks a place. The graded functions:

{functions}

The tests in `tests/test_{name}.py` are the graded ones. Each forward function is
checked against reference values (every output, on the smallest shapes, every size 1,
and on non-square ones, and float32 in -> float32 out); each backward function against the reference
gradients and by a gradient check of every input and parameter against centred
differences of your own forward pass (float64, relative error <= 1e-7). Run one with
`python -m pytest -k {first}` (or any part of a test's name) and read the
message of the first failure.

`notebooks/{notebook}.ipynb` walks through the equations step by step; its cells marked
`# YOUR CODE HERE` are yours too, and the locked cells after them check your answers
(`python -m pip install jupyterlab`, then `jupyter lab notebooks/`). The derivations
are in the minirnn docs.

Your teacher grades this folder with `minirnn assignment grade`, using the same tests
and reference values computed afresh, so editing the tests or `expected_{name}.npz`
changes nothing.
"""

_TEST_FILE = '''\
"""Graded tests of the `{name}` assignment: {title}.

Reference values come from `expected_{name}.npz`, stored by `minirnn assignment make`.
Run with `python -m pytest`; your teacher grades with these same tests.
"""

from pathlib import Path

import pytest

from minirnn.assignment import checks
from minirnn.functional import {module} as implementation

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
