"""Classroom assignments: solution regions, `minirnn assignment make` and `grade`.

What a student's code can and cannot do to its grade is tests/test_grader_security.py.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest

from minirnn.assignment import ASSIGNMENTS, checks
from minirnn.assignment.grading import grade_workspace
from minirnn.assignment.regions import find_regions, strip_solutions
from minirnn.assignment.workspace import assignment_notebook, make_workspace

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "minirnn", *args], capture_output=True,
                          text=True, cwd=cwd, env=env)


# --------------------------------------------------------------------------------------
# Solution regions
# --------------------------------------------------------------------------------------

def test_a_region_becomes_an_indented_stub_and_the_rest_is_kept():
    text = ("def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n"
            "    ### END SOLUTION\n\n\ndef g():\n    ### BEGIN SOLUTION\n    pass\n"
            "    ### END SOLUTION\n")
    out, n = strip_solutions(text)
    assert n == 2
    assert out == ("def f(x):\n    y = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
                   "\n\ndef g():\n    # YOUR CODE HERE\n    raise NotImplementedError()\n")


def test_a_cell_without_a_final_newline_and_a_markdown_answer():
    out, n = strip_solutions("a = 1\n### BEGIN SOLUTION\nb = 2\n### END SOLUTION",
                             stub=("YOUR ANSWER HERE",))
    assert (out, n) == ("a = 1\nYOUR ANSWER HERE", 1)
    assert strip_solutions("no regions\n") == ("no regions\n", 0)


@pytest.mark.parametrize("text, message", [
    ("x\n### END SOLUTION\n", "f.py: line 2: '### END SOLUTION' without a '### BEGIN SOLUTION'"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n",
     "f.py: line 2: '### BEGIN SOLUTION' inside the region opened on line 1"),
    ("a\n### BEGIN SOLUTION\nb\n", "f.py: line 2: '### BEGIN SOLUTION' is never closed"),
])
def test_broken_markers_are_named_by_file_and_line(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        find_regions(text, "f.py")


@pytest.mark.parametrize("name", list(ASSIGNMENTS))
def test_every_assignment_module_has_a_region_in_each_graded_function(name):
    import ast
    graded = {fn for fn, _ in checks.functions(name)}
    found = set()
    for path in ASSIGNMENTS[name].files:
        source = (ROOT / path).read_text(encoding="utf-8")
        lines = [n for pair in find_regions(source) for n in pair]
        for node in ast.parse(source).body:
            if isinstance(node, ast.FunctionDef) and node.name in graded:
                assert any(node.lineno <= line + 1 <= node.end_lineno for line in lines), \
                    node.name
                found.add(node.name)
    assert found == graded


def test_an_assignment_is_one_table_entry_whose_ops_say_what_is_graded():
    """The graded functions, the files the student edits and the grading all follow from
    the ops an entry names (gradcheck.OPS says how to make inputs and call them)."""
    from minirnn import functional as F
    from minirnn.gradcheck import OPS
    for a in ASSIGNMENTS.values():
        ops = [OPS[op] for op, _, _ in a.graded]
        assert [fn for fn, _ in checks.functions(a.name)] == [
            fn for spec in ops for fn in (spec.forward_fn, spec.backward_fn)]
        assert set(a.files) == {getattr(F, fn).__module__.replace(".", "/") + ".py"
                                for fn, _ in checks.functions(a.name)}


# --------------------------------------------------------------------------------------
# make
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def workspaces(tmp_path_factory):
    """A fresh workspace and an answer key for every assignment, made through the CLI."""
    base = tmp_path_factory.mktemp("workspaces")
    made = {}
    for name in ASSIGNMENTS:
        for kind, extra in (("fresh", []), ("key", ["--solutions"])):
            out = base / f"{name}-{kind}"
            r = cli("assignment", "make", name, "--out", str(out), *extra)
            assert r.returncode == 0, r.stderr
            made[name, kind] = out
    return made


@pytest.mark.parametrize("name", list(ASSIGNMENTS))
def test_make_replaces_only_the_assignment_module_s_regions(workspaces, name):
    ws = workspaces[name, "fresh"]
    for path in ASSIGNMENTS[name].files:
        original = (ROOT / path).read_text(encoding="utf-8")
        handed_out = (ws / path).read_text(encoding="utf-8")
        assert "### BEGIN SOLUTION" not in handed_out
        assert handed_out.count("raise NotImplementedError()") == len(find_regions(original))
        assert handed_out == strip_solutions(original)[0]
        assert (workspaces[name, "key"] / path).read_text(encoding="utf-8") == original
    # Every other file is the library's own, and nothing compiled came along.
    for path in (ROOT / "minirnn").rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.as_posix() not in ASSIGNMENTS[name].files and "__pycache__" not in rel.parts:
            assert (ws / rel).read_text(encoding="utf-8") == path.read_text(encoding="utf-8")
    assert not list(ws.rglob("__pycache__")) and not list(ws.rglob("*.pyc"))


@pytest.mark.parametrize("name", list(ASSIGNMENTS))
def test_the_workspace_s_expected_values_are_other_cases_than_the_graded_ones(workspaces, name):
    """The public file holds the public cases only: no graded input, output or gradient."""
    from minirnn.assignment.grading import grading_key
    public = checks.load_data(workspaces[name, "fresh"] / "tests" / f"expected_{name}.npz")
    assert public.keys() == checks.reference_data(name, checks.public_cases(name)).keys()
    graded = checks.reference_data(name, checks.graded_cases(name, grading_key(name)))
    shown = {a.tobytes() for k, a in public.items() if a.size > 1 and a.dtype.kind == "f"}
    assert not [k for k, a in graded.items()
                if a.size > 1 and a.dtype.kind == "f" and a.tobytes() in shown]
    assert graded.keys() != public.keys() or any(
        not np.array_equal(public[k], graded[k]) for k in public if k.endswith("/sizes"))


def test_an_assignment_over_two_modules_is_one_more_table_entry(tmp_path, monkeypatch):
    """As the coming transformer assignment (layer norm and causal self-attention) will be:
    an entry naming ops of gradcheck.OPS from two modules is made and graded whole."""
    import minirnn.assignment as assignment
    entry = assignment.Assignment("pair", "05_attention", "an RNN step and attention",
                                  (("rnn_step", 2, 3), ("additive_attention", 4, 6)))
    monkeypatch.setitem(assignment.ASSIGNMENTS, "pair", entry)
    assert entry.files == ("minirnn/functional/rnn.py", "minirnn/functional/attention.py")
    fresh = make_workspace("pair", tmp_path / "fresh")["out"]
    key = make_workspace("pair", tmp_path / "key", solutions=True)["out"]
    for path in entry.files:
        assert "### BEGIN SOLUTION" not in (fresh / path).read_text(encoding="utf-8")
    report = grade_workspace(key)
    assert [f for f, *_ in report.rows] == [f for f, _ in checks.functions("pair")]
    assert report.earned == report.points == 15
    report = grade_workspace(fresh)
    assert report.graded and report.earned == 0
    assert {o.where.partition(":")[0] for o in report.outcomes} == set(entry.files)


def test_make_refuses_a_folder_that_holds_files_and_leaves_it_alone(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    r = cli("assignment", "make", "rnn", "--out", str(tmp_path))
    assert r.returncode == 1
    assert "--out must be a new or empty folder" in r.stderr and str(tmp_path) in r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    assert "Traceback" not in r.stderr


def test_make_names_the_assignments_when_given_another():
    r = cli("assignment", "make", "no-such-assignment", "--out", "x")
    assert r.returncode == 2 and "rnn" in r.stderr and "attention" in r.stderr


def test_list_names_every_assignment_and_its_graded_functions():
    r = cli("assignment", "list")
    assert r.returncode == 0
    for name in ASSIGNMENTS:
        assert all(fn in r.stdout for fn, _ in checks.functions(name))


# --------------------------------------------------------------------------------------
# grade
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(ASSIGNMENTS))
def test_a_fresh_workspace_grades_0_with_every_test_failing_on_not_implemented(
        workspaces, name, tmp_path):
    grades = tmp_path / "grades.json"
    r = cli("assignment", "grade", str(workspaces[name, "fresh"]), "--json", str(grades))
    assert r.returncode == 0, r.stderr
    [report] = json.loads(grades.read_text())["workspaces"]
    assert report["graded"] and report["earned"] == 0 and report["percent"] == 0
    assert len(report["tests"]) == len(checks.tests_for(name))
    assert {t["error"] for t in report["tests"]} == {"NotImplementedError"}
    # Each failure names the student's file and the line of the stub it reached.
    files = ASSIGNMENTS[name].files
    assert all(t["where"].partition(":")[0] in files for t in report["tests"])
    assert "(0%)" in r.stdout and "NotImplementedError (minirnn/functional/" in r.stdout


@pytest.mark.parametrize("name", list(ASSIGNMENTS))
def test_the_reference_solutions_grade_100_percent(workspaces, name, tmp_path):
    grades = tmp_path / "grades.json"
    r = cli("assignment", "grade", str(workspaces[name, "key"]), "--json", str(grades))
    assert r.returncode == 0, r.stderr
    [report] = json.loads(grades.read_text())["workspaces"]
    assert report["percent"] == 100 and all(t["passed"] for t in report["tests"])
    assert [f["function"] for f in report["functions"]] == [f for f, _ in checks.functions(name)]
    assert "(100%)" in r.stdout


def test_grading_uses_the_teacher_s_checks_not_the_workspace_s(workspaces, tmp_path):
    """A student who edits the tests, the checks or the stored reference values gains nothing."""
    ws = shutil.copytree(workspaces["rnn", "fresh"], tmp_path / "ws")
    (ws / "minirnn" / "assignment" / "checks.py").write_text(
        (ws / "minirnn" / "assignment" / "checks.py").read_text().replace(
            "    def run(self, impl, data):\n", "    def run(self, impl, data):\n        return\n"))
    np.savez(ws / "tests" / "expected_rnn.npz", nothing=np.zeros(1))
    report = grade_workspace(ws)
    assert report.earned == 0
    assert {o.error for o in report.outcomes} == {"NotImplementedError"}


def test_one_correct_function_earns_exactly_its_points(workspaces, tmp_path):
    """Partial credit: the step forward written, everything else still a stub."""
    ws = shutil.copytree(workspaces["rnn", "fresh"], tmp_path / "ws")
    path = ws / "minirnn" / "functional" / "rnn.py"
    text = path.read_text()
    stub = "    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    answer = ("    h = xp.tanh(x @ Wx + h_prev @ Wh + b)\n"
              "    return h, RNNStepCache(x, h_prev, Wx, Wh, h)\n")
    path.write_text(text.replace(stub, answer, 1))
    report = grade_workspace(ws)
    assert [(f, p, t) for f, p, t, _, _ in report.rows] == [
        ("rnn_step_forward", 5, 5), ("rnn_step_backward", 0, 5), ("rnn_forward", 0, 5),
        ("rnn_backward", 0, 5)]
    assert report.earned == 2 and report.points == 10


def test_a_package_that_does_not_import_is_not_graded_and_says_where(workspaces, tmp_path):
    ws = shutil.copytree(workspaces["gru", "fresh"], tmp_path / "ws")
    path = ws / "minirnn" / "functional" / "gru.py"
    text = path.read_text() + "\ndef broken(:\n"
    path.write_text(text)
    line = len(text.splitlines())
    r = cli("assignment", "grade", str(ws))
    assert r.returncode == 1, r.stderr
    assert "total" in r.stdout and "(0%)" in r.stdout
    assert "NOT GRADED: the graded code does not import: SyntaxError" in r.stdout
    assert f"(minirnn/functional/gru.py, line {line})" in r.stdout
    assert f"could not grade {ws}" in r.stderr


def test_grading_from_inside_the_student_s_folder_is_refused(workspaces):
    """Run there, `python -m minirnn` would import the student's package as the grader."""
    for kind in ("key", "fresh"):
        r = cli("assignment", "grade", ".", cwd=workspaces["rnn", kind])
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert ("grade from outside the student's folder" in r.stderr if kind == "key" else
                "grade with the library itself, not with a student's workspace" in r.stderr)


def test_grading_a_folder_that_is_not_a_workspace_says_so(tmp_path):
    r = cli("assignment", "grade", str(tmp_path))
    assert r.returncode == 1
    assert "is not a workspace made by `minirnn assignment make`" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_class_is_graded_into_a_csv_a_json_and_a_table(workspaces, tmp_path):
    """`grade SUBMISSIONS/*/ --csv grades.csv`: a row per student, details beside it, a
    summary table; exit 0 when every folder was graded, whatever the marks."""
    subs = tmp_path / "submissions"
    for student, (name, kind) in {"ada": ("rnn", "key"), "bo": ("rnn", "fresh"),
                                  "cy": ("attention", "key")}.items():
        shutil.copytree(workspaces[name, kind], subs / student)
    folders = sorted(str(p) + "/" for p in subs.iterdir())
    r = cli("assignment", "grade", *folders, "--csv", str(tmp_path / "grades.csv"))
    assert r.returncode == 0, r.stderr
    import csv
    rows = list(csv.DictReader((tmp_path / "grades.csv").open()))
    assert [(row["student"], row["total"], row["status"]) for row in rows] == [
        ("ada", "10", "graded"), ("bo", "0", "graded"), ("cy", "10", "graded")]
    assert rows[0]["rnn_step_backward"] == "3" and rows[2]["additive_attention_forward"] == "4"
    details = json.loads((tmp_path / "grades.json").read_text())
    assert [w["student"] for w in details["workspaces"]] == ["ada", "bo", "cy"]
    assert len(details["workspaces"][1]["tests"]) == 20
    lines = r.stdout.splitlines()
    assert lines[0].split()[:2] == ["student", "rnn_step_forward"]
    assert any(line.startswith("bo ") and line.rstrip().endswith("0.00 / 10") for line in lines)
    assert "[3/3] cy: 10.00 / 10" in r.stderr


def test_a_class_with_a_folder_that_cannot_be_graded_exits_1_naming_it(workspaces, tmp_path):
    good = shutil.copytree(workspaces["rnn", "key"], tmp_path / "ada")
    (tmp_path / "bo").mkdir()  # handed in nothing
    r = cli("assignment", "grade", str(good), str(tmp_path / "bo"), "--csv",
            str(tmp_path / "grades.csv"))
    assert r.returncode == 1
    assert f"could not grade {tmp_path / 'bo'}: " in r.stderr
    rows = (tmp_path / "grades.csv").read_text().splitlines()
    assert rows[1].startswith("ada,") and ",graded" in rows[1]
    assert rows[2].startswith("bo,") and "not graded: " in rows[2]


def test_a_workspace_gets_the_same_score_on_every_run(workspaces, tmp_path):
    ws = shutil.copytree(workspaces["lstm", "key"], tmp_path / "ws")
    path = ws / "minirnn" / "functional" / "lstm.py"
    path.write_text(path.read_text().replace("return dc * f\n", "return dc * f * 0.999\n"))
    runs = [grade_workspace(ws).as_dict() for _ in range(2)]
    for run in runs:
        run.pop("seconds")
    assert runs[0] == runs[1]
    assert 0 < runs[0]["earned"] < 10


def test_the_graded_cases_come_from_the_teacher_s_key_and_secret():
    from minirnn.assignment.grading import grading_key
    key = grading_key("rnn")
    assert key == grading_key("rnn") != grading_key("rnn", secret="our course")
    assert checks.graded_cases("rnn", key) == checks.graded_cases("rnn", grading_key("rnn"))
    assert checks.graded_cases("rnn", key) != checks.public_cases("rnn")
    for sizes in (checks.graded_cases("rnn", k)["rnn"] for k in range(20)):
        assert sizes[0][0] == (1, 1, 1, 1)
        N, T, D, H = sizes[checks.FLOAT32_CASE][0]
        assert N >= 2 and T >= 2 and D != H


def test_grading_from_a_checkout_without_installing(workspaces, tmp_path):
    """`python -m minirnn` in a checkout that was never installed grades as the installed
    one does: the student's process needs no importable minirnn."""
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "minirnn", checkout / "minirnn",
                    ignore=shutil.ignore_patterns("__pycache__"))
    import numpy
    site = str(Path(numpy.__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = site  # the dependencies, without the .pth of minirnn's editable install
    run = [sys.executable, "-S", "-m", "minirnn", "assignment", "grade",
           str(workspaces["rnn", "key"])]
    elsewhere = subprocess.run([sys.executable, "-S", "-c", "import minirnn"], cwd=tmp_path,
                               env=env, capture_output=True, text=True)
    assert elsewhere.returncode != 0, "minirnn is importable without the checkout"
    r = subprocess.run(run, cwd=checkout, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "10.00 / 10  (100%)" in r.stdout


@pytest.mark.parametrize("name", list(ASSIGNMENTS))
def test_the_conv_lstm_works_in_every_workspace(workspaces, name):
    """The Conv-LSTM keeps its own cell, so a workspace with stubs still runs it (and its
    gradient check passes) before the student has written a line."""
    code = ("from minirnn import gradcheck\n"
            "r = gradcheck.check_op('convlstm_step') + gradcheck.check_op('convlstm', T=2)\n"
            "print(r)\n"
            "assert r.passed\n"
            "import minirnn\n"
            "print(minirnn.__file__)\n")
    env = dict(os.environ, PYTHONPATH=str(workspaces[name, "fresh"]))
    r = subprocess.run([sys.executable, "-c", code], cwd=workspaces[name, "fresh"], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert str(workspaces[name, "fresh"] / "minirnn") in r.stdout


# --------------------------------------------------------------------------------------
# The student's side: the same two commands as the project, and the notebook
# --------------------------------------------------------------------------------------

def _setup_commands(readme):
    block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_the_workspace_readme_opens_with_the_project_s_two_commands(workspaces):
    project = _setup_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    for (name, kind), ws in workspaces.items():
        assert _setup_commands((ws / "README.md").read_text(encoding="utf-8")) == project[:2]


@pytest.mark.parametrize("kind, expected", [("fresh", "20 failed"), ("key", "20 passed")])
def test_pytest_in_a_workspace_runs_the_graded_tests(workspaces, kind, expected):
    """`python -m pytest` in the workspace, its package first on the path as the editable
    install puts it (the install itself is checked by the slow test below)."""
    ws = workspaces["lstm", kind]
    env = dict(os.environ, PYTHONPATH=str(ws))
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider"], cwd=ws,
                       env=env, capture_output=True, text=True)
    assert expected in r.stdout, r.stdout[-2000:]
    if kind == "fresh":
        assert r.stdout.count("NotImplementedError") >= 20
        assert "ImportError" not in r.stdout and "ModuleNotFoundError" not in r.stdout


@pytest.mark.slow
def test_a_workspace_installs_and_tests_with_its_readme_commands_in_a_fresh_venv(tmp_path):
    ws = tmp_path / "ws"
    make_workspace("rnn", ws, solutions=True)
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    for command in _setup_commands((ws / "README.md").read_text()):
        args = command.split()
        assert args[0] == "python"
        r = subprocess.run([str(python), *[a.strip('"') for a in args[1:]]], cwd=ws,
                           capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "20 passed" in r.stdout


def test_a_notebook_becomes_nbgrader_cells(tmp_path):
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": ["# Step by hand\n"]},
        {"cell_type": "code", "metadata": {}, "execution_count": 3, "outputs": [{"x": 1}],
         "source": ["x = 2\n", "### BEGIN SOLUTION\n", "y = x * 3\n", "### END SOLUTION\n",
                    "print(y)"]},
        {"cell_type": "code", "metadata": {"tags": ["graded"]}, "execution_count": None,
         "outputs": [], "source": ["assert y == 6"]},
        {"cell_type": "markdown", "metadata": {},
         "source": ["Why?\n", "### BEGIN SOLUTION\n", "Because.\n", "### END SOLUTION\n"]},
    ]
    src = tmp_path / "nb.ipynb"
    src.write_text(json.dumps({"cells": cells, "metadata": {"jupytext": {"formats": "x"}},
                               "nbformat": 4, "nbformat_minor": 5}))
    nb = json.loads(assignment_notebook(src))
    solution, graded, answer = nb["cells"][1], nb["cells"][2], nb["cells"][3]
    assert "".join(solution["source"]) == "x = 2\n# YOUR CODE HERE\nraise NotImplementedError()\nprint(y)"
    assert solution["outputs"] == [] and solution["execution_count"] is None
    assert solution["metadata"]["nbgrader"] == {
        "grade": False, "grade_id": "solution_1", "locked": False, "schema_version": 3,
        "solution": True, "task": False}
    assert graded["metadata"]["nbgrader"] == {
        "grade": True, "grade_id": "test_1", "locked": True, "points": 1, "schema_version": 3,
        "solution": False, "task": False}
    assert "".join(answer["source"]) == "Why?\nYOUR ANSWER HERE\n"
    assert "nbgrader" not in nb["cells"][0]["metadata"] and "jupytext" not in nb["metadata"]
    key = json.loads(assignment_notebook(src, solutions=True))
    assert "y = x * 3" in "".join(key["cells"][1]["source"])


def test_a_notebook_without_graded_cells_is_refused(tmp_path):
    src = tmp_path / "nb.ipynb"
    src.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "outputs": [],
                                          "execution_count": None, "source": ["x = 1"]}],
                               "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    with pytest.raises(ValueError, match="needs solution cells and graded cells, found 0 and 0"):
        assignment_notebook(src)


@pytest.mark.parametrize("name", list(ASSIGNMENTS))
def test_the_workspace_carries_its_notebook_with_stubs_and_locked_tests(workspaces, name):
    nb_name = ASSIGNMENTS[name].notebook
    path = workspaces[name, "fresh"] / "notebooks" / f"{nb_name}.ipynb"
    assert path.is_file(), f"notebooks/{nb_name}.ipynb was not carried into the workspace"
    nb = json.loads(path.read_text(encoding="utf-8"))
    text = json.dumps(nb)
    assert "### BEGIN SOLUTION" not in text
    meta = [c["metadata"].get("nbgrader") for c in nb["cells"]]
    solutions = [c for c, m in zip(nb["cells"], meta) if m and m["solution"]]
    graded = [m for m in meta if m and m["grade"]]
    assert solutions and graded and all(m["locked"] for m in graded)
    assert all("raise NotImplementedError()" in "".join(c["source"]) for c in solutions
               if c["cell_type"] == "code")


@pytest.mark.parametrize("name", list(ASSIGNMENTS))
def test_the_workspace_notebook_runs_with_the_answers_and_stops_at_the_first_stub_without(
        workspaces, name, monkeypatch):
    """The answer key's notebook runs top to bottom on its own package (fast setting);
    the student's stops with NotImplementedError in a solution cell, not before."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("MINIRNN_FAST", "1")
    notebook = f"{ASSIGNMENTS[name].notebook}.ipynb"
    for kind in ("key", "fresh"):
        ws = workspaces[name, kind]
        monkeypatch.setenv("PYTHONPATH", str(ws))  # the kernel imports the workspace's minirnn
        nb = nbformat.read(ws / "notebooks" / notebook, as_version=4)
        client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                         resources={"metadata": {"path": str(ws / "notebooks")}})
        if kind == "key":
            client.execute()
            continue
        with pytest.raises(nbclient.exceptions.CellExecutionError) as failure:
            client.execute()
        assert "NotImplementedError" in str(failure.value)
        ran = [c for c in nb.cells if c.cell_type == "code" and c.get("execution_count")]
        assert ran[-1].metadata["nbgrader"]["solution"] is True


def test_a_collected_package_alone_is_graded_when_the_assignment_is_named(workspaces, tmp_path):
    shutil.copytree(workspaces["gru", "key"] / "minirnn", tmp_path / "bob" / "minirnn")
    r = cli("assignment", "grade", str(tmp_path / "bob"))
    assert r.returncode == 1 and "name the assignment with --assignment" in r.stderr
    r = cli("assignment", "grade", str(tmp_path / "bob"), "--assignment", "gru")
    assert r.returncode == 0, r.stderr
    assert "10.00 / 10  (100%)" in r.stdout


def test_a_make_that_fails_half_way_leaves_nothing_behind(tmp_path):
    bad = tmp_path / "nbs"
    bad.mkdir()
    (bad / "01_vanilla_rnn.ipynb").write_text(json.dumps(
        {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    r = cli("assignment", "make", "rnn", "--out", str(tmp_path / "hw"), "--notebooks", str(bad))
    assert r.returncode == 1 and "needs solution cells and graded cells" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nbs"]
    made = make_workspace("rnn", tmp_path / "ok")
    assert made["notebook"] == tmp_path / "ok" / "notebooks" / "01_vanilla_rnn.ipynb"
    assert (tmp_path / "ok").stat().st_mode & 0o777 == 0o777 & ~_umask()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nbs", "ok"]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
