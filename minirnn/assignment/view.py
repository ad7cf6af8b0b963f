"""What the child process that runs a student's code may see.

For each child, ``sandbox.Child`` makes a fresh temporary folder holding

* ``view/``: copies of the few files of the student's workspace that the graded modules
  need (``needed_modules``: the graded modules, the backend, ``_checks``, ``activations``
  and whatever those import from minirnn, read from the teacher's source); ``minirnn`` and
  ``minirnn.functional`` are empty stand-in packages, so importing the graded module runs
  nothing else;
* ``lib/``: links to NumPy;
* ``work/``: the child's working folder, empty;

and runs the interpreter behind this one's virtual environment (``python_executable``)
with a few fixed environment variables (``environment``). The child's ``sys.path`` is
``view``, ``lib`` and the standard library: no path to the teacher's files, the teacher's
``minirnn`` or the student's own folder.
"""

from __future__ import annotations

import ast
import os
import shutil
import sys
from pathlib import Path

import numpy as np

PACKAGE = Path(__file__).resolve().parents[1]   # the teacher's minirnn/
# Every graded module may use these; their own minirnn imports are followed too.
ALWAYS = ("minirnn.backend", "minirnn.functional._checks", "minirnn.functional.activations")
STAND_INS = ("minirnn", "minirnn.functional")   # packages whose __init__ the view leaves empty


def module_path(name):
    """``"minirnn.functional.rnn"`` -> ``"minirnn/functional/rnn.py"`` (a package: its
    ``__init__.py``), relative to a workspace or to the folder holding the teacher's minirnn."""
    rel = name.replace(".", "/")
    return f"{rel}/__init__.py" if (PACKAGE.parent / rel).is_dir() else f"{rel}.py"


def needed_modules(graded):
    """The minirnn modules a child loads for ``graded`` (dotted names): those modules, the
    ones every graded module may use (``ALWAYS``) and everything they import from minirnn,
    read from the *teacher's* source, so a student's extra import is not on the list."""
    seen, todo = set(), [*graded, *ALWAYS]
    while todo:
        name = todo.pop()
        if name in seen or name in STAND_INS or not (PACKAGE.parent / module_path(name)).is_file():
            continue
        seen.add(name)
        todo.append(name.rpartition(".")[0])
        todo.extend(_minirnn_imports(name))
    return tuple(sorted(seen))


def _minirnn_imports(name):
    path = PACKAGE.parent / module_path(name)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.partition(".")[0] == "minirnn":
                yield base
                yield from (f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.partition(".")[0] == "minirnn")


def build_view(workspace, modules, view):
    """Copy the student's files of ``modules`` into ``view``; empty stand-in packages."""
    for name in STAND_INS:
        path = view / name.replace(".", "/") / "__init__.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('"""Left empty by the grader: only the graded modules are loaded."""\n',
                        encoding="utf-8")
    for name in modules:
        src = workspace / module_path(name)
        if src.is_file():
            dest = view / module_path(name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)


def numpy_path(lib):
    """Folders to put on the child's sys.path for NumPy: ``lib`` holding links to NumPy's
    folders, or (where links cannot be made) the folder NumPy is installed in."""
    folder = Path(np.__file__).resolve().parent
    try:
        for path in (folder, folder.parent / "numpy.libs"):
            if path.is_dir():
                (lib / path.name).symlink_to(path, target_is_directory=True)
        return [str(lib)]
    except OSError:  # no symlinks here (Windows without the privilege)
        return [str(folder.parent)]


def python_executable():
    """The interpreter behind this one's virtual environment (``-S`` then leaves out the
    environment's site-packages, where the teacher's minirnn is installed)."""
    base = getattr(sys, "_base_executable", None)
    return base if base and os.path.isfile(base) else sys.executable


def environment(work):
    env = {"PATH": os.defpath, "HOME": str(work), "TMPDIR": str(work), "TEMP": str(work),
           "TMP": str(work), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[var] = "1"  # the same sums in the same order on every run
    if os.name == "nt":
        env["SYSTEMROOT"] = os.environ.get("SYSTEMROOT", "")
    return env
