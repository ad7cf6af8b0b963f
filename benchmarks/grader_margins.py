#!/usr/bin/env python
"""How far a numerical "backward" lands from the reference, and how close backprop does.

Grading compares every gradient a student's backward returns with the reference's, to
``checks.REFERENCE_GRAD_TOL`` (1e-13). This measures the margin on both sides, over the
graded cases of many keys (each key draws its own shapes and values, as a teacher's would):

* correct rewrites, which must stay well inside: the student modules of
  tests/grader_students/ (loops over the step functions, einsum, the softmax through
  log-sum-exp), the largest relative error of any gradient of any case;
* numerical backwards, which must stay well outside: for every graded op, gradients by
  centred differences of the reference forward (what a student's own correct forward
  gives) with steps h = 1e-4, 1e-5, 1e-6, and by the fourth-order stencil
  ``(f(x-2h) - 8 f(x-h) + 8 f(x+h) - f(x+2h)) / 12h`` with h = 1e-3; for each, the
  smallest over cases of the case's largest error (a case fails when that is over the
  tolerance).

Usage (from the repository root)::

    .venv/bin/python benchmarks/grader_margins.py             # 25 keys
    .venv/bin/python benchmarks/grader_margins.py --keys 100
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import numpy as np

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(_ROOT))

from minirnn import functional as F  # noqa: E402
from minirnn.assignment import ASSIGNMENTS, checks  # noqa: E402
from minirnn.gradcheck import rel_error  # noqa: E402

STUDENTS = _ROOT / "tests" / "grader_students"
REWRITES = ("rnn_loops_over_steps", "lstm_loops_over_steps", "gru_einsum",
            "attention_logsumexp")
STENCILS = (("centred, h=1e-4", 1e-4, 2), ("centred, h=1e-5", 1e-5, 2),
            ("centred, h=1e-6", 1e-6, 2), ("4th order, h=1e-3", 1e-3, 4))


def load_student(assignment, student):
    """The answer key's graded module with a student module appended."""
    [module] = ASSIGNMENTS[assignment].modules
    source = (_ROOT / ASSIGNMENTS[assignment].files[0]).read_text(encoding="utf-8")
    source += "\n\n" + (STUDENTS / f"{student}.py").read_text(encoding="utf-8")
    mod = types.ModuleType(module + "_student")
    mod.__package__ = module.rpartition(".")[0]
    exec(compile(source, f"<{student}>", "exec"), mod.__dict__)
    return mod


def numerical(op, consts, arrays, douts, h, order):
    """The gradient of sum(out * dout) for every input, by finite differences."""
    def loss():
        outs, _ = op.forward(F, consts, arrays)
        return sum(float(np.sum(o * d)) for o, d in zip(outs, douts))
    weights = {2: ((-1, -0.5), (1, 0.5)), 4: ((-2, 1 / 12), (-1, -8 / 12), (1, 8 / 12),
                                             (2, -1 / 12))}[order]
    grads = []
    for x in arrays.values():
        g, flat = np.zeros_like(x), x.reshape(-1)
        for i in range(flat.size):
            old, total = flat[i], 0.0
            for step, w in weights:
                flat[i] = old + step * h
                total += w * loss()
            flat[i] = old
            g.reshape(-1)[i] = total / h
        grads.append(g)
    return grads


def measure(keys):
    tol = checks.REFERENCE_GRAD_TOL
    rows = []
    for student in REWRITES:
        assignment = student.split("_")[0]
        impl = load_student(assignment, student)
        for op in checks.ops(assignment):
            worst = 0.0
            for key in range(keys):
                data = checks.reference_data(assignment, checks.graded_cases(assignment, key))
                for k in range(checks.N_CASES):
                    arrays, consts, douts = checks._case(data, op, k)
                    _, cache = op.forward(impl, consts, arrays)
                    grads = op.backward(impl, douts, cache)
                    worst = max([worst] + [rel_error(g, data[f"{op.name}/{k}/grad/{n}"])
                                           for n, g in zip(op.grads, grads)])
            rows.append((op.backward_fn, f"rewrite: {student}", worst, tol / worst if worst
                         else float("inf")))
    for assignment in ASSIGNMENTS:
        for op in checks.ops(assignment):
            for label, h, order in STENCILS:
                best = float("inf")
                for key in range(keys):
                    data = checks.reference_data(assignment,
                                                 checks.graded_cases(assignment, key))
                    for k in range(checks.N_CASES):
                        arrays, consts, douts = checks._case(data, op, k)
                        grads = numerical(op, consts, arrays, douts, h, order)
                        best = min(best, max(rel_error(g, data[f"{op.name}/{k}/grad/{n}"])
                                             for n, g in zip(op.grads, grads)))
                rows.append((op.backward_fn, f"numerical: {label}", best, best / tol))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keys", type=int, default=25, help="keys (draws of the graded cases)")
    args = p.parse_args(argv)
    rows = measure(args.keys)
    print(f"tolerance against the reference: {checks.REFERENCE_GRAD_TOL:.0e}; "
          f"{args.keys} keys x {checks.N_CASES} cases per op\n")
    print(f"{'backward':29s} {'student':36s} {'rel. error':>10s} {'margin':>8s}")
    for fn, what, err, margin in rows:
        print(f"{fn:29s} {what:36s} {err:10.1e} {margin:7.0f}x")
    rewrites = [r for r in rows if r[1].startswith("rewrite")]
    textbook = [r for r in rows if "centred" in r[1]]
    fourth = [r for r in rows if "4th" in r[1]]
    print(f"\ncorrect rewrites: at most {max(r[2] for r in rewrites):.1e} "
          f"(margin {min(r[3] for r in rewrites):.0f}x inside)")
    print(f"centred differences, best step: at least {min(r[2] for r in textbook):.1e} "
          f"(margin {min(r[3] for r in textbook):.0f}x outside)")
    print(f"4th-order stencil: at least {min(r[2] for r in fourth):.1e} "
          f"(margin {min(r[3] for r in fourth):.1f}x outside)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
