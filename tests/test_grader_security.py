"""A grader a class can trust: what a student's code can and cannot do to its grade.

Each file in tests/grader_students/ is one student module: an attack on the grader, or a
correct rewrite of the reference. It is appended to the graded module of a workspace (an
answer key, or a fresh one of stubs), so its functions replace the reference's, and the
workspace is graded as ``minirnn assignment grade`` grades it. Each attack must lose
exactly the marks of the functions it touches (and of the backward of a forward it
breaks, which needs that forward's cache) and nothing more; each rewrite keeps full marks.
"""

import os
import re
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

from minirnn import gradcheck
from minirnn.assignment import ASSIGNMENTS, checks
from minirnn.assignment.grading import grade_workspace, grading_key
from minirnn.assignment.workspace import make_workspace

ROOT = Path(__file__).resolve().parents[1]
STUDENTS = Path(__file__).with_name("grader_students")


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """A fresh workspace and an answer key for every assignment."""
    base = tmp_path_factory.mktemp("bases")
    made = {}
    for name in ASSIGNMENTS:
        for kind in ("fresh", "key"):
            made[name, kind] = make_workspace(name, base / f"{name}-{kind}",
                                              solutions=kind == "key")["out"]
    return made


def graded_file(ws, assignment):
    [path] = ASSIGNMENTS[assignment].files
    return ws / path


def student_workspace(bases, tmp_path, student, kind="key"):
    """A copy of a base workspace with ``grader_students/<student>.py`` appended to its
    graded module. Returns (workspace, assignment, the graded module's text)."""
    assignment = student.split("_")[0]
    ws = shutil.copytree(bases[assignment, kind], tmp_path / "ws")
    path = graded_file(ws, assignment)
    snippet = (STUDENTS / f"{student}.py").read_text(encoding="utf-8")
    snippet = snippet.replace("TEACHER_PLACES = []",
                              f"TEACHER_PLACES = {[str(ROOT), str(ws)]!r}")
    snippet = snippet.replace("PID_FILE = None", f"PID_FILE = {str(tmp_path / 'pids')!r}")
    text = path.read_text(encoding="utf-8") + "\n\n" + snippet
    path.write_text(text, encoding="utf-8")
    return ws, assignment, text


def line_of(text, fragment):
    return next(i + 1 for i, line in enumerate(text.splitlines()) if fragment in line)


def earned(report):
    return {fn: e for fn, _, _, e, _ in report.rows}


def full_marks(assignment, but=()):
    return {fn: 0.0 if fn in but else float(p) for fn, p in checks.functions(assignment)}


# --------------------------------------------------------------------------------------
# Attacks that cost the functions they touch, and nothing more
# --------------------------------------------------------------------------------------

# student module, the functions it loses, the error of their first failed test, what its
# message says, and the statement whose line the report names ("": the file without a
# line, as after an exit; None: no place, the failure is a verdict on the values)
LOSES = [
    ("rnn_reads_expected_values", ("rnn_step_backward", "rnn_backward"), "LookupError",
     "found no tests/expected_rnn.npz", 'raise LookupError("found no'),
    ("rnn_looks_for_teacher_files", ("rnn_step_backward",), "RuntimeError", "found []",
     'raise RuntimeError("found "'),
    ("rnn_imports_teacher_minirnn", ("rnn_step_backward",), "ImportError",
     "the grader does not let graded code import minirnn.gradcheck",
     'raise ImportError(" | ".join(tried))'),
    ("rnn_forges_an_answer", ("rnn_step_backward",), "BrokenChannel",
     "its answer to rnn_step_backward broke the grader's format", ""),
    ("rnn_sys_exit_in_one_function", ("rnn_step_backward",), "SystemExit",
     "the code called sys.exit(3)", "sys.exit(3)"),
    ("rnn_raises_in_one_function", ("rnn_step_backward",), "KeyError", "a key that is not there",
     'return {}["a key that is not there"]'),
    ("rnn_os_exit_in_one_function", ("rnn_backward",), "Exited",
     "the process ended while rnn_backward ran (exit status 3)", ""),
    ("rnn_crashes_in_one_function", ("rnn_backward",), "Exited",
     "the process ended while rnn_backward ran (killed by signal SIGKILL)", ""),
    ("rnn_numerical_backward", ("rnn_step_backward", "rnn_backward"), "GradedTestFailure",
     "the backward pass must be backpropagation", None),
    ("lstm_calls_convlstm", ("lstm_step_forward", "lstm_step_backward"), "ImportError",
     "the grader does not let graded code import minirnn.functional.convlstm",
     "from .convlstm import convlstm_step_forward"),
    ("lstm_calls_torch", ("lstm_step_forward", "lstm_step_backward"), "ImportError",
     "the grader does not let graded code import torch", "import torch"),
]


@pytest.mark.parametrize("student, lost, error, says, at", LOSES, ids=[c[0] for c in LOSES])
def test_an_attack_loses_exactly_the_marks_of_the_functions_it_touches(
        bases, tmp_path, student, lost, error, says, at):
    ws, assignment, text = student_workspace(bases, tmp_path, student)
    report = grade_workspace(ws)
    assert report.graded, report.problem
    assert earned(report) == full_marks(assignment, but=lost), str(report)
    first = next(o for o in report.outcomes if not o.passed)
    assert first.function == lost[0] and first.error == error, first
    assert says in first.message, first
    path = ASSIGNMENTS[assignment].files[0]
    assert first.where == ("" if at is None else f"{path}:{line_of(text, at)}" if at else path)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, forks")
def test_a_hang_in_one_function_costs_only_that_function_after_its_timeout(bases, tmp_path):
    """It also forks a second process that ignores SIGTERM: both are stopped."""
    ws, assignment, _ = student_workspace(bases, tmp_path, "rnn_hangs_in_one_function")
    report = grade_workspace(ws, timeout=3)
    assert earned(report) == full_marks(assignment, but=("rnn_backward",))
    hung = [o for o in report.outcomes if o.function == "rnn_backward"]
    assert {o.error for o in hung} == {"Timeout"}
    assert hung[0].message.startswith("stopped after 3 s, the time rnn_backward's tests are "
                                      "allowed") and hung[0].where == "minirnn/functional/rnn.py"
    assert 3 <= report.seconds < 30
    pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
    assert len(pids) == 2
    for pid in pids:  # both stopped (a stopped orphan may linger a moment as a zombie)
        for _ in range(50):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        break
            except FileNotFoundError:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"process {pid} of the hung function is still running")


def test_the_default_time_limit_is_a_minute_per_function():
    import inspect
    from minirnn.assignment.grading import Grader
    assert inspect.signature(Grader).parameters["timeout"].default == 60
    assert inspect.signature(grade_workspace).parameters["timeout"].default == 60


# --------------------------------------------------------------------------------------
# Attacks at import: nothing can be graded, and the report says why and where
# --------------------------------------------------------------------------------------

NOT_GRADED = [
    ("rnn_sys_exit_at_import", "key", "the graded code does not import: SystemExit: the code "
     "called sys.exit(0)", "sys.exit(0)"),
    ("rnn_raises_at_import", "key", "the graded code does not import: RuntimeError: broken on "
     "purpose", 'raise RuntimeError("broken on purpose")'),
    ("rnn_os_exit_at_import", "key", "the graded code does not import: the process ended while "
     "the import of minirnn/functional/rnn.py ran (exit status 0)", ""),
    ("rnn_forges_results", "fresh", "the graded code does not import: it wrote something that "
     "is not the grader's format while the import of minirnn/functional/rnn.py ran", ""),
]


@pytest.mark.parametrize("student, kind, says, at", NOT_GRADED, ids=[c[0] for c in NOT_GRADED])
def test_an_attack_at_import_is_not_graded_and_the_report_says_where(
        bases, tmp_path, student, kind, says, at):
    ws, assignment, text = student_workspace(bases, tmp_path, student, kind)
    report = grade_workspace(ws)
    assert not report.graded and report.earned == 0
    place = f"minirnn/functional/rnn.py, line {line_of(text, at)}" if at else \
        "minirnn/functional/rnn.py"
    assert report.problem.startswith(says) and report.problem.endswith(f"({place})"), \
        report.problem
    assert f"NOT GRADED: {report.problem}" in str(report)


def test_the_forged_result_neither_scores_nor_passes_the_command(bases, tmp_path):
    """Whatever the forger writes or prints, `grade` reports 0 and exits 1."""
    ws, _, _ = student_workspace(bases, tmp_path, "rnn_forges_results", "fresh")
    r = subprocess.run([sys.executable, "-m", "minirnn", "assignment", "grade", str(ws),
                        "--csv", str(tmp_path / "grades.csv")], capture_output=True, text=True,
                       cwd=tmp_path)
    assert r.returncode == 1
    assert "0.00 / 10  (0%)" in r.stdout and "10.00 / 10" not in r.stdout
    assert f"could not grade {ws}: the graded code does not import" in r.stderr
    assert ",0,10,0,not graded: " in (tmp_path / "grades.csv").read_text()
    assert not (tmp_path / "result.json").exists() and not (ws / "result.json").exists()


# --------------------------------------------------------------------------------------
# The answers are out of reach; the public tests are honest about grading
# --------------------------------------------------------------------------------------

def run_workspace_tests(ws):
    """`python -m pytest` in the workspace, its package first on the path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(ws)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                       cwd=ws, env=env, capture_output=True, text=True)
    return r.stdout


@pytest.mark.parametrize("student, modules", [
    ("rnn_reads_expected_values", ()),
    ("lstm_calls_convlstm", ()),
    ("lstm_calls_torch", ("torch",)),
])
def test_a_cheat_that_passes_every_public_test_still_loses_its_marks(
        bases, tmp_path, student, modules):
    """Copying the public expected values, or calling the library's Conv-LSTM or torch,
    passes the workspace's own tests; grading draws other cases and refuses the imports."""
    for module in modules:
        pytest.importorskip(module)
    ws, assignment, _ = student_workspace(bases, tmp_path, student)
    assert "20 passed" in run_workspace_tests(ws)
    assert grade_workspace(ws).earned == (4 if assignment == "rnn" else 5)


def test_the_student_s_folder_is_left_as_it_was(bases, tmp_path):
    """A module that writes files and bytecode beside itself and into its working folder,
    at import and in every call: full marks, and not a byte of the folder changes."""
    ws, assignment, _ = student_workspace(bases, tmp_path, "rnn_writes_files")
    def snapshot():
        return {p.relative_to(ws).as_posix(): (p.stat().st_mtime_ns, p.is_file() and
                                               p.read_bytes())
                for p in sorted(ws.rglob("*"))}
    before = snapshot()
    report = grade_workspace(ws)
    assert report.earned == report.points
    assert snapshot() == before
    assert not list(ws.rglob("__pycache__")) and not list(ws.rglob("notes.txt"))


# --------------------------------------------------------------------------------------
# Backward must be backprop: correct rewrites keep full marks, differences do not
# --------------------------------------------------------------------------------------

REWRITES = ["rnn_loops_over_steps", "lstm_loops_over_steps", "gru_einsum",
            "attention_logsumexp"]


def load_student(assignment, student):
    """The answer key's graded module with ``student`` appended, loaded in this process as a
    sibling of the library's own module (for the public cases and the margins)."""
    [module] = ASSIGNMENTS[assignment].modules
    source = (ROOT / ASSIGNMENTS[assignment].files[0]).read_text(encoding="utf-8")
    source += "\n\n" + (STUDENTS / f"{student}.py").read_text(encoding="utf-8")
    mod = types.ModuleType(module + "_student")
    mod.__package__ = module.rpartition(".")[0]
    mod.__file__ = f"<{student}>"
    exec(compile(source, mod.__file__, "exec"), mod.__dict__)
    return mod


@pytest.mark.parametrize("student", REWRITES)
def test_a_correct_rewrite_keeps_full_marks_in_grading_and_in_the_public_tests(
        bases, tmp_path, student):
    ws, assignment, _ = student_workspace(bases, tmp_path, student)
    report = grade_workspace(ws)
    assert report.earned == report.points, str(report)
    public = checks.reference_data(assignment, checks.public_cases(assignment))
    outcomes = checks.run_tests(assignment, load_student(assignment, student), public)
    assert all(o.passed for o in outcomes), [o for o in outcomes if not o.passed]


def gradient_errors(assignment, student, cases):
    """Per backward function, the largest relative error against the reference of each
    case's gradients (a case fails when its largest error is over the tolerance)."""
    impl = load_student(assignment, student)
    data = checks.reference_data(assignment, cases)
    errors = {}
    for op in checks.ops(assignment):
        for k in range(checks.N_CASES):
            arrays, consts, douts = checks._case(data, op, k)
            _, cache = op.forward(impl, consts, arrays)
            grads = op.backward(impl, douts, cache)
            errors.setdefault(op.backward_fn, []).append(max(
                gradcheck.rel_error(g, data[f"{op.name}/{k}/grad/{n}"])
                for n, g in zip(op.grads, grads)))
    return errors


def test_the_reference_tolerance_has_a_margin_both_ways():
    """On the graded and the public cases, every correct rewrite is at least 10x inside
    the tolerance and the centred-difference backward at least 10x outside it (the
    figures over many keys are in benchmarks/grader_margins.py)."""
    tol = checks.REFERENCE_GRAD_TOL
    for student in [*REWRITES, "rnn_numerical_backward"]:
        assignment = student.split("_")[0]
        for cases in (checks.graded_cases(assignment, grading_key(assignment)),
                      checks.public_cases(assignment)):
            for fn, errs in gradient_errors(assignment, student, cases).items():
                if student in REWRITES:
                    assert max(errs) < tol / 10, (student, fn, errs)
                else:
                    assert min(errs) > tol * 10, (student, fn, errs)


def test_a_numerical_backward_fails_the_public_tests_too_with_a_hint():
    """The student learns it before grading: the workspace's tests say what is wrong."""
    public = checks.reference_data("rnn", checks.public_cases("rnn"))
    outcomes = checks.run_tests("rnn", load_student("rnn", "rnn_numerical_backward"), public)
    failed = {o.function for o in outcomes if not o.passed}
    assert failed == {"rnn_step_backward", "rnn_backward"}
    assert all(re.search(r"relative error \d\.\de-1[0-2]", o.message) and
               "must be backpropagation" in o.message for o in outcomes
               if not o.passed and "gradients" in o.test)


# --------------------------------------------------------------------------------------
# The child's view
# --------------------------------------------------------------------------------------

def test_the_child_loads_only_the_graded_module_and_what_it_needs():
    from minirnn.assignment.view import needed_modules
    assert needed_modules(["minirnn.functional.lstm"]) == (
        "minirnn.backend", "minirnn.functional._checks", "minirnn.functional.activations",
        "minirnn.functional.lstm")
    for name in ASSIGNMENTS:
        allowed = needed_modules(ASSIGNMENTS[name].modules)
        assert "minirnn.functional.convlstm" not in allowed
        assert "minirnn.functional.conv" not in allowed
        assert "minirnn.gradcheck" not in allowed and "minirnn.functional.cells" not in allowed


def test_the_wire_format_refuses_what_could_run_code():
    """The teacher reads the child's answers without pickle: object arrays, unknown dtypes
    and lengths that do not add up are refused."""
    from minirnn.assignment import child as wire

    def read(data):
        view = memoryview(data)

        def read_exact(n):
            nonlocal view
            if len(view) < n:
                raise EOFError
            chunk, view = bytes(view[:n]), view[n:]
            return chunk
        return wire.receive(read_exact)

    good = wire.pack({"ok": True}, [np.arange(6.0).reshape(2, 3)])
    header, [a] = read(good)
    assert header == {"ok": True} and a.tolist() == [[0, 1, 2], [3, 4, 5]]
    import json
    import struct
    for arrays, payload in ([["|O", [1]]], b"\0" * 8), ([["<f8", [2]]], b"\0" * 8), \
            ([["<f8", [1]]], b"\0" * 16), ([["V8", [1]]], b"\0" * 8):
        head = json.dumps({"ok": True, "arrays": arrays}).encode()
        with pytest.raises(wire.ProtocolError):
            read(struct.pack("<QQ", len(head), len(payload)) + head + payload)
    with pytest.raises(wire.ProtocolError):
        read(struct.pack("<QQ", 1 << 40, 0))
    with pytest.raises(wire.ProtocolError):
        wire.decode({"h": "1"}, [], lambda i, t: None)
