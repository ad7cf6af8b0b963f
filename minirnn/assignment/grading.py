"""``grade``: score workspaces, one graded function at a time, in child processes.

For each workspace, ``Grader.grade`` starts a child process (``sandbox.Child``) per graded
function. The child imports the student's graded module from a copy of the few files it
needs and runs each call the checks make; the checks (``checks.py``) run here and compare
every returned value with the reference, computed here by the teacher's library on cases
drawn from ``grading_key``. A function whose code hangs (past ``timeout`` seconds for all
of its tests), exits, crashes or raises loses its own tests; the next function gets a
fresh process. A workspace whose graded module cannot even be imported is reported as
not graded. Nothing is written into the student's folder.

``grade_command`` grades a class: one table, a CSV row per student, a JSON of details,
and an exit status that says whether every workspace could be graded.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import checks, get, sandbox, view

MANIFEST = ".minirnn-assignment.json"
DEFAULT_TIMEOUT = 60.0


def grading_key(assignment, secret=None):
    """The key the graded cases are drawn from: a hash of the teacher's own copy of the
    graded modules (the solutions, which a workspace does not hold) and of ``secret``,
    a phrase of the teacher's choosing. The same library and secret give the same cases,
    so a workspace gets the same score on every run."""
    h = hashlib.sha256(b"minirnn graded cases\0" + get(assignment).name.encode("utf-8"))
    for path in get(assignment).files:
        h.update(b"\0" + (view.PACKAGE.parent / path).read_bytes())
    h.update(b"\0" + (secret or "").encode("utf-8"))
    return int.from_bytes(h.digest()[:16], "little")


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


@dataclass
class GradeReport:
    assignment: str
    folder: str
    rows: list          # (function, passed, total, earned, points)
    earned: float
    points: float
    outcomes: list = field(default_factory=list)
    graded: bool = True
    problem: str = ""   # why the workspace could not be graded
    seconds: float = 0.0

    @property
    def percent(self):
        return 100.0 * self.earned / self.points if self.points else 0.0

    @property
    def student(self):
        return Path(self.folder).name

    def as_dict(self):
        return {"student": self.student, "assignment": self.assignment, "folder": self.folder,
                "graded": self.graded, "problem": self.problem, "earned": self.earned,
                "points": self.points, "percent": self.percent,
                "seconds": round(self.seconds, 2),
                "functions": [{"function": f, "passed": p, "tests": t, "earned": e,
                               "points": pts} for f, p, t, e, pts in self.rows],
                "tests": [vars(o) for o in self.outcomes]}

    def __str__(self):
        table = [("function", "tests", "points")]
        table += [(f, f"{p}/{t}", f"{e:.2f} / {pts:g}") for f, p, t, e, pts in self.rows]
        table.append(("total", "", f"{self.earned:.2f} / {self.points:g}  ({self.percent:.0f}%)"))
        lines = [f"assignment {self.assignment!r} in {self.folder}", "", *_table(table)]
        if not self.graded:
            lines += ["", f"NOT GRADED: {self.problem}"]
        failed = [o for o in self.outcomes if not o.passed]
        if failed and self.graded:
            lines += ["", "failed tests:"]
            lines += [f"  {o.test}: {_failure_text(o)}" for o in failed]
        return "\n".join(lines)


def _failure_text(o):
    return o.error + (f": {o.message}" if o.message else "") + _place(o.where)


def _place(where):
    """``"minirnn/functional/rnn.py:57"`` -> ``" (minirnn/functional/rnn.py, line 57)"``."""
    if not where:
        return ""
    path, _, line = where.partition(":")
    return f" ({path}, line {line})" if line else f" ({path})"


def _table(rows):
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


class Grader:
    """Grades workspaces of one assignment. The graded cases and their reference values are
    computed once, here, by the teacher's library.

    timeout: seconds allowed to each graded function for all of its tests (a hang past
        it costs that function's remaining tests); secret: see ``grading_key``.
    """

    def __init__(self, assignment, *, timeout=DEFAULT_TIMEOUT, secret=None):
        self.name, self.timeout = get(assignment).name, float(timeout)
        try:
            self.data = checks.reference_data(self.name, checks.graded_cases(
                self.name, grading_key(self.name, secret)))
        except NotImplementedError:
            raise ValueError(f"the minirnn that grades ({view.PACKAGE}) has stubs in "
                             f"{', '.join(get(self.name).files)}: grade with the library "
                             "itself, not with a student's workspace") from None
        self.modules = get(self.name).modules
        self.module_of = {}
        from .. import functional as F
        for fn, _ in checks.functions(self.name):
            self.module_of[fn] = getattr(F, fn).__module__
        self.allowed = view.needed_modules(self.modules)

    def grade(self, folder):
        """Grade the workspace ``folder`` (only read, never written): a GradeReport."""
        started = time.monotonic()
        folder = Path(folder).resolve()
        if not folder.is_dir():
            raise ValueError(f"{str(folder)!r} is not a folder")
        if folder in view.PACKAGE.parents:
            raise ValueError(f"the minirnn that grades is the one in {folder}: grade from "
                             "outside the student's folder, with your own minirnn")
        for path in get(self.name).files:
            if not (folder / path).is_file():
                raise ValueError(f"{folder} has no {path} to grade")
        child, problem = self._first_child(folder)
        if problem is not None:
            outcomes = [checks.Outcome(t.id, t.function, False, problem.error, problem.message,
                                       problem.where) for t in checks.tests_for(self.name)]
            report = self._report(folder, outcomes)
            report.graded = False
            report.problem = problem.message + _place(problem.where)
        else:
            outcomes = []
            for fn, _ in checks.functions(self.name):
                outcomes += self._grade_function(folder, fn, child)
                child = None
            report = self._report(folder, outcomes)
        report.seconds = time.monotonic() - started
        return report

    def _report(self, folder, outcomes):
        rows, earned, points = checks.score(self.name, outcomes)
        return GradeReport(self.name, str(folder), rows, earned, points, outcomes)

    def _start(self, folder, deadline):
        child = sandbox.Child(folder, self.modules, self.allowed, self.timeout)
        try:
            child.start(deadline)
        except BaseException:
            child.close()
            raise
        return child

    def _first_child(self, folder):
        """A child with the graded modules imported, or the reason they do not import."""
        try:
            return self._start(folder, time.monotonic() + self.timeout), None
        except sandbox.StudentError as e:
            e.message = f"the graded code does not import: {e.error}: {e.message}"
            e.error = "ImportError"
            return None, e
        except (sandbox.ChildLost, sandbox.TimedOut) as e:
            e.message = f"the graded code does not import: {e.message}"
            return None, e

    def _grade_function(self, folder, fn, child):
        """Run the tests of ``fn``, each in the child, restarting it after an exit or a
        crash; past the deadline, the tests left fail with the reason."""
        deadline = time.monotonic() + self.timeout
        tests, outcomes = checks.tests_for(self.name, fn), []
        try:
            for test in tests:
                if time.monotonic() >= deadline:
                    break
                if child is None:
                    try:
                        child = self._start(folder, deadline)
                    except (sandbox.StudentError, sandbox.ChildLost, sandbox.TimedOut) as e:
                        outcomes.append(checks.Outcome(test.id, fn, False, e.error, e.message,
                                                       e.where))
                        if isinstance(e, sandbox.TimedOut):
                            break
                        continue
                outcomes.append(checks.run_test(
                    test, sandbox.Remote(child, self.module_of, deadline), self.data))
                if child.timed_out:
                    break
                if not child.alive:
                    child.close()
                    child = None
        finally:
            if child is not None:
                child.close()
        if len(outcomes) < len(tests) or outcomes[-1].error == "Timeout":
            message = (f"stopped after {self.timeout:g} s, the time {fn}'s tests are allowed "
                       "(an endless loop? --timeout sets the limit)")
            where = outcomes[-1].where if outcomes and outcomes[-1].error == "Timeout" else ""
            if outcomes and outcomes[-1].error == "Timeout":
                outcomes.pop()
            outcomes += [checks.Outcome(t.id, fn, False, "Timeout", message, where)
                         for t in tests[len(outcomes):]]
        return outcomes


def grade_workspace(folder, *, assignment=None, timeout=DEFAULT_TIMEOUT, secret=None):
    """Grade one workspace: a GradeReport. ``assignment`` is needed only for a folder
    without the workspace's manifest (only the student's ``minirnn/`` was collected)."""
    name = assignment if assignment is not None else read_manifest(folder)["assignment"]
    return Grader(name, timeout=timeout, secret=secret).grade(folder)


def not_graded(folder, assignment, reason):
    """The report of a folder that could not be graded at all (not a workspace...)."""
    rows = checks.score(assignment, [])[0] if assignment is not None else []
    return GradeReport(assignment or "?", str(folder), rows, 0.0, sum(r[4] for r in rows),
                       graded=False, problem=reason)


def grade_folders(folders, *, assignment=None, timeout=DEFAULT_TIMEOUT, secret=None,
                  progress=None):
    """Grade every folder: a list of GradeReports, in the order given. A folder that
    cannot be graded gets a report with ``graded`` False and the reason."""
    if not timeout > 0:
        raise ValueError(f"--timeout must be a positive number of seconds, got {timeout}")
    graders, reports = {}, []
    for i, folder in enumerate(folders):
        name = assignment
        try:
            if name is None:
                name = read_manifest(folder)["assignment"]
            if name not in graders:
                graders[name] = Grader(name, timeout=timeout, secret=secret)
            report = graders[name].grade(folder)
        except (ValueError, OSError, sandbox.GraderError) as e:
            report = not_graded(folder, name, str(e))
        reports.append(report)
        if progress is not None:
            status = f"{report.earned:.2f} / {report.points:g}" if report.graded else "NOT GRADED"
            progress(f"[{i + 1}/{len(folders)}] {report.student}: {status} "
                     f"({report.seconds:.1f} s)")
    return reports


def write_csv(path, reports):
    """One row per workspace: student, folder, assignment, each function's points, total."""
    functions = []
    for r in reports:
        functions += [f for f, *_ in r.rows if f not in functions]
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["student", "folder", "assignment", *functions, "total", "points",
                      "percent", "status"])
        for r in reports:
            earned = {fn: e for fn, _, _, e, _ in r.rows}
            out.writerow([r.student, r.folder, r.assignment,
                          *(_number(earned[fn]) if fn in earned else "" for fn in functions),
                          _number(r.earned), _number(r.points), _number(r.percent),
                          "graded" if r.graded else f"not graded: {r.problem}"])


def _number(x):
    return f"{x:.2f}".rstrip("0").rstrip(".")


def write_json(path, reports, timeout):
    from .. import __version__
    Path(path).write_text(json.dumps({
        "minirnn_version": __version__, "timeout": timeout,
        "workspaces": [r.as_dict() for r in reports]}, indent=2) + "\n", encoding="utf-8")


def summary(reports):
    """The class at a glance: a row per workspace, each function's points and the total."""
    functions = []
    for r in reports:
        functions += [f for f, *_ in r.rows if f not in functions]
    rows = [("student", *functions, "total", "")]
    for r in reports:
        earned = {fn: e for fn, _, _, e, _ in r.rows}
        rows.append((r.student, *(f"{earned[fn]:.2f}" if fn in earned else "-"
                                  for fn in functions),
                     f"{r.earned:.2f} / {r.points:g}", "" if r.graded else "NOT GRADED"))
    return "\n".join(_table(rows))


def grade_command(folders, *, assignment=None, timeout=DEFAULT_TIMEOUT, secret=None,
                  csv_path=None, json_path=None, out=None, err=None):
    """``minirnn assignment grade FOLDER... [--csv FILE] [--json FILE]``: grade, print, write.

    One folder prints its full report; several print a summary table. ``--csv FILE``
    also writes the details to FILE with the suffix .json unless ``--json`` names a file.
    Returns the exit status: 0 when every folder was graded (whatever the marks), 1 when
    any could not be, each named on stderr.
    """
    out, err = out or sys.stdout, err or sys.stderr
    if json_path is None and csv_path is not None:
        json_path = Path(csv_path).with_suffix(".json")
    progress = (lambda line: print(line, file=err, flush=True)) if len(folders) > 1 else None
    reports = grade_folders(folders, assignment=assignment, timeout=timeout, secret=secret,
                            progress=progress)
    print(str(reports[0]) if len(reports) == 1 else summary(reports), file=out)
    if csv_path is not None:
        write_csv(csv_path, reports)
    if json_path is not None:
        write_json(json_path, reports, timeout)
    bad = [r for r in reports if not r.graded]
    for r in bad:
        print(f"minirnn assignment grade: could not grade {r.folder}: {r.problem}", file=err)
    return 1 if bad else 0
