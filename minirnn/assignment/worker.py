"""The grading process: ``python -m minirnn.assignment.worker DIR NAME DATA.npz OUT.json``.

Run by ``grade_workspace`` in a fresh process. The teacher's minirnn (this module, its
tests and its reference values in DATA.npz) grades the student's package ``DIR/minirnn``,
loaded under another name so the two never mix; OUT.json receives one outcome per test.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path

STUDENT = "minirnn_student_workspace"


def load_student_module(folder, module):
    """``DIR/minirnn/functional/<module>.py`` imported as part of the student's package."""
    root = Path(folder) / "minirnn"
    spec = importlib.util.spec_from_file_location(
        STUDENT, root / "__init__.py", submodule_search_locations=[str(root)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[STUDENT] = package
    spec.loader.exec_module(package)
    return importlib.import_module(f"{STUDENT}.functional.{module}")


def main(argv):
    folder, name, data_path, out_path = argv
    import minirnn
    from minirnn.assignment import checks, get

    here = Path(minirnn.__file__).resolve().parent
    if Path(folder).resolve() in here.parents:
        raise SystemExit("the grader imported the workspace's package as minirnn itself; "
                         "grade from a folder outside the workspace")
    data = checks.load_data(data_path)
    try:
        impl = load_student_module(folder, get(name).module)
    except Exception as e:  # noqa: BLE001 - a syntax error, a bad import: every test fails
        message = f"the workspace's package does not import: {type(e).__name__}: {e}"
        outcomes = [checks.Outcome(t.id, t.function, False, "ImportError", message)
                    for t in checks.tests_for(name)]
    else:
        outcomes = checks.run_tests(name, impl, data)
    Path(out_path).write_text(json.dumps([vars(o) for o in outcomes]), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
