#!/usr/bin/env python
"""Grade a made-up class: how long ``minirnn assignment grade`` takes per workspace.

For each assignment asked for, it makes ``--students`` submissions (default 30) from the
library's own answer key and stubs: complete answers, fresh stubs, answers with the last
function still a stub, answers with one mistake, answers rewritten another correct way (the sequence functions
as loops over the step functions) and, with ``--hang``, one whose backward never returns.
Then it grades the whole class with one command, as a teacher would::

    python -m minirnn assignment grade SUBMISSIONS/*/ --csv grades.csv

and reports the wall time of the command, each workspace's grading time (from the JSON
details), and the class's marks by kind of submission, which must be what each kind
deserves (the script says so when they are not).

This is a report, not a test: it exits 0 whatever the figures (1 if a mark is wrong).

Usage (from the repository root)::

    .venv/bin/python benchmarks/grade_class.py                       # lstm, 30 students
    .venv/bin/python benchmarks/grade_class.py --assignments rnn lstm gru attention
    .venv/bin/python benchmarks/grade_class.py --hang --timeout 10
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(_ROOT))

from minirnn.assignment import ASSIGNMENTS, checks  # noqa: E402
from minirnn.assignment.regions import find_regions  # noqa: E402
from minirnn.assignment.workspace import make_workspace  # noqa: E402

# One plausible mistake per assignment, in the answer key's text (old, new).
MISTAKES = {
    "rnn": ("da = dh * (1 - h * h)", "da = dh * (1 + h * h)"),
    "lstm": ("return dc * f\n", "return dc\n"),
    "gru": ("return dh * z\n", "return dh * (1 - z)\n"),
    "attention": ("da *= 1 - u * u", "da *= 1 + u * u"),
}
# The sequence functions as loops over the step functions (tests/grader_students/).
REWRITES = {"rnn": "rnn_loops_over_steps", "lstm": "lstm_loops_over_steps",
            "gru": "gru_einsum", "attention": "attention_logsumexp"}
HANG = "\n\ndef {fn}(*args, **kwargs):\n    while True:\n        pass\n"

# kind -> share of the class (the rest are answer keys)
KINDS = (("stubs", 0.2), ("last one stub", 0.2), ("one mistake", 0.15), ("rewrite", 0.1))


def make_class(name, n, out, hang):
    """``n`` submissions under ``out``: {folder name: (kind, the marks it deserves)}."""
    key = make_workspace(name, out / "_key", solutions=True)["out"]
    fresh = make_workspace(name, out / "_fresh")["out"]
    [path] = ASSIGNMENTS[name].files
    points = dict(checks.functions(name))
    total = sum(points.values())
    kinds = []
    for kind, share in KINDS:
        kinds += [kind] * max(1, round(share * n))
    if hang:
        kinds.append("hang")
    kinds += ["key"] * (n - len(kinds))
    made = {}
    for i, kind in enumerate(kinds[:n]):
        folder = out / f"student{i + 1:02d}"
        shutil.copytree(fresh if kind == "stubs" else key, folder)
        module = folder / path
        text = module.read_text(encoding="utf-8")
        last = checks.functions(name)[-1]
        deserves = {"key": total, "stubs": 0, "rewrite": total, "one mistake": None,
                    "last one stub": total - last[1], "hang": total - last[1]}[kind]
        if kind == "last one stub":  # the last graded function's region left a stub
            text = _stub_last_region(text)
        elif kind == "one mistake":
            old, new = MISTAKES[name]
            text = text.replace(old, new, 1)
        elif kind == "rewrite":
            text += "\n\n" + (_ROOT / "tests" / "grader_students" /
                              f"{REWRITES[name]}.py").read_text(encoding="utf-8")
        elif kind == "hang":
            text += HANG.format(fn=last[0])
        module.write_text(text, encoding="utf-8")
        made[folder.name] = (kind, deserves)
    shutil.rmtree(key)
    shutil.rmtree(fresh)
    return made


def _stub_last_region(text):
    begin, end = find_regions(text)[-1]
    lines = text.splitlines(keepends=True)
    indent = lines[begin][:len(lines[begin]) - len(lines[begin].lstrip())]
    return "".join(lines[:begin] + [indent + "raise NotImplementedError()\n"] + lines[end + 1:])


def grade_class(name, n, hang, timeout):
    with tempfile.TemporaryDirectory(prefix=f"class-{name}-") as tmp:
        tmp = Path(tmp)
        made = make_class(name, n, tmp / "submissions", hang)
        folders = sorted(str(p) + "/" for p in (tmp / "submissions").iterdir())
        started = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "minirnn", "assignment", "grade", *folders,
                              "--csv", str(tmp / "grades.csv"), "--timeout", str(timeout)],
                             cwd=_ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if run.returncode != 0:
            print(run.stdout[-3000:], run.stderr[-3000:])
        details = json.loads((tmp / "grades.json").read_text(encoding="utf-8"))
    seconds, wrong, by_kind = [], [], {}
    for w in details["workspaces"]:
        kind, deserves = made[w["student"]]
        by_kind.setdefault(kind, []).append(w)
        if kind != "hang":
            seconds.append(w["seconds"])
        if deserves is not None and abs(w["earned"] - deserves) > 1e-9 or \
                kind == "one mistake" and not 0 <= w["earned"] < w["points"]:
            wrong.append(f"{w['student']} ({kind}): {w['earned']:g}, expected {deserves}")
    print(f"\n{name}: {len(details['workspaces'])} workspaces in {wall:.1f} s "
          f"(exit status {run.returncode})")
    print(f"  per workspace (hangs aside): median {statistics.median(seconds):.2f} s, "
          f"mean {statistics.mean(seconds):.2f} s, max {max(seconds):.2f} s")
    for kind, ws in by_kind.items():
        marks = sorted({round(w["earned"], 2) for w in ws})
        secs = statistics.median(w["seconds"] for w in ws)
        print(f"  {kind:13s} x{len(ws):2d}: marks {marks}, median {secs:.2f} s")
    for line in wrong:
        print("  WRONG MARK:", line)
    return not wrong and run.returncode == 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--assignments", nargs="+", default=["lstm"], choices=list(ASSIGNMENTS))
    p.add_argument("--students", type=int, default=30)
    p.add_argument("--hang", action="store_true", help="one submission never returns")
    p.add_argument("--timeout", type=float, default=60, help="grade's --timeout")
    args = p.parse_args(argv)
    ok = [grade_class(name, args.students, args.hang, args.timeout) for name in args.assignments]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
