"""The graded tests of every assignment, written once and run two ways.

A student runs them with ``pytest`` in the workspace (against reference values stored
there by ``minirnn assignment make``); a teacher runs them with ``minirnn assignment
grade``, which recomputes the reference values from the installed library so that an
edited file of expected values changes nothing.

The ops, their inputs and how to call them are ``minirnn.gradcheck.OPS``: grading is
the gradient check plus a comparison with the reference. Every graded function has
these tests:

* a forward function: ``values[k]`` for each case k (every output equals the
  reference's, and no input array was modified), and ``float32`` (float32 in ->
  float32 out, close to the float64 result);
* a backward function: ``gradients[k]`` for each case k (every gradient equals the
  reference's *and* passes the centred-difference check against the student's own
  forward, relative error <= 1e-7 in float64), and ``float32``.

Cases include N = T = D = H = 1 and non-square shapes. A function's score is its points
times the fraction of its tests that pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import gradcheck
from ..functional.cells import CELLS

VALUE_TOL = 1e-9   # against the reference: only rounding may differ
GRAD_TOL = 1e-7    # centred differences in float64 (the project's standard)
FLOAT32_TOL = 1e-4


@dataclass(frozen=True)
class Op:
    """One graded forward/backward pair: the gradient check's spec, plus grading.

    spec: ``gradcheck.OPS[name]``, which says how to call the pair and make its inputs;
    cases: the ``(N, T, D, H)`` sizes of the graded cases, read as ``spec.make`` reads
        them; forward_points, backward_points: the marks of the two functions.
    """
    spec: gradcheck.OpSpec
    cases: tuple
    forward_points: int
    backward_points: int

    name = property(lambda self: self.spec.name)
    forward_fn = property(lambda self: self.spec.forward_fn)
    backward_fn = property(lambda self: self.spec.backward_fn)
    inputs = property(lambda self: self.spec.inputs)
    outputs = property(lambda self: self.spec.outputs)
    grads = property(lambda self: self.spec.grads)

    def make(self, rng, case):
        return self.spec.make(rng, *case)

    def forward(self, impl, consts, arrays):
        return self.spec.forward(consts, impl=impl, **arrays)

    def backward(self, impl, douts, cache):
        return self.spec.backward(douts, cache, impl=impl)


# (N, T, D, H): the smallest case, square and non-square ones, a long thin one.
_CASES = ((1, 1, 1, 1), (2, 3, 4, 5), (3, 2, 5, 2), (1, 5, 2, 3))


def _ops():
    """Every assignment's graded ops: the step and sequence pairs of its cell, or attention."""
    def graded(name, points=(2, 3)):
        return Op(gradcheck.OPS[name], _CASES, *points)

    ops = {cell: (graded(f"{cell}_step"), graded(cell)) for cell in CELLS}
    ops["attention"] = (graded("additive_attention", (4, 6)),)
    return ops


OPS = _ops()


# --------------------------------------------------------------------------------------
# Case data: inputs, upstream gradients, and the reference's outputs and gradients
# --------------------------------------------------------------------------------------

# Each op's cases draw from their own seeds: 1000 * (1 + the op's place in OPS) + k.
_SEED_BASE = {op.name: 1000 * (1 + i)
              for i, op in enumerate(op for ops in OPS.values() for op in ops)}


def case_inputs(op, k):
    """The inputs, constants and upstream gradients of case ``k`` (fixed by a seed)."""
    rng = np.random.default_rng(_SEED_BASE[op.name] + k)
    arrays, consts = op.make(rng, op.cases[k])
    return arrays, consts, rng


def reference_data(assignment, reference):
    """Every case of ``assignment``'s ops run through ``reference`` (the library's own
    module): a flat dict of float64 arrays, keys ``op/k/in/x``, ``op/k/const/mask``,
    ``op/k/dout/h``, ``op/k/out/h``, ``op/k/grad/dx``."""
    data = {}
    for op in OPS[assignment]:
        for k in range(len(op.cases)):
            arrays, consts, rng = case_inputs(op, k)
            outs, cache = op.forward(reference, consts, {n: a.copy() for n, a in arrays.items()})
            douts = tuple(rng.standard_normal(np.shape(o)) for o in outs)
            grads = op.backward(reference, douts, cache)
            prefix = f"{op.name}/{k}/"
            data.update({prefix + "in/" + n: a for n, a in arrays.items()})
            data.update({prefix + "const/" + n: a for n, a in consts.items()})
            data.update({prefix + "dout/" + n: np.asarray(d) for n, d in zip(op.outputs, douts)})
            data.update({prefix + "out/" + n: np.array(o) for n, o in zip(op.outputs, outs)})
            data.update({prefix + "grad/" + n: np.array(g) for n, g in zip(op.grads, grads)})
    return data


def save_data(path, data):
    np.savez_compressed(path, **data)


def load_data(path):
    """Reference values written by ``save_data`` (plain arrays, loaded without pickle)."""
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _case(data, op, k):
    prefix = f"{op.name}/{k}/"
    # Copies: a student's code that writes into its arguments spoils only this test.
    arrays = {n: data[prefix + "in/" + n].copy() for n in op.inputs}
    consts = {n[len(prefix) + 6:]: v.copy() for n, v in data.items()
              if n.startswith(prefix + "const/")}
    douts = tuple(data[prefix + "dout/" + n].copy() for n in op.outputs)
    return arrays, consts, douts


# --------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------

class GradedTestFailure(AssertionError):
    """A graded test's verdict: what was wrong, in words a student can act on."""


@dataclass(frozen=True)
class GradedTest:
    function: str  # the graded function, e.g. "lstm_step_backward"
    id: str        # e.g. "lstm_step_backward-gradients[1]"
    op: Op
    kind: str      # "values", "gradients" or "float32"
    case: int

    def run(self, impl, data):
        """Raise GradedTestFailure (or whatever the student's code raises) unless it passes."""
        if self.kind == "values":
            _check_values(impl, data, self.op, self.case)
        elif self.kind == "gradients":
            _check_gradients(impl, data, self.op, self.case)
        elif self.function == self.op.forward_fn:
            _check_float32_forward(impl, data, self.op)
        else:
            _check_float32_backward(impl, data, self.op)


def _shape_text(op, k):
    """The sizes of case k as a student would write them, e.g. ``N=2, D=4, H=5``."""
    return ", ".join(f"{n}={v}" for n, v in op.spec.sizes(*op.cases[k]).items())


def _compare(what, got, want, tol, op, k):
    got_shape = np.shape(got)
    if got_shape != np.shape(want):
        raise GradedTestFailure(f"{what} has shape {got_shape}, expected {np.shape(want)} "
                                f"({_shape_text(op, k)})")
    err = gradcheck.rel_error(got, want)
    if not err <= tol:
        raise GradedTestFailure(f"{what} differs from the reference: relative error {err:.2e} "
                                f"> {tol:.0e} ({_shape_text(op, k)})")


def _outputs(op, outs):
    if len(outs) != len(op.outputs):
        raise GradedTestFailure(f"{op.forward_fn} returned {len(outs) + 1} values, expected "
                                f"{len(op.outputs) + 1}: {', '.join(op.outputs)}, cache")
    return outs


def _check_values(impl, data, op, k):
    arrays, consts, _ = _case(data, op, k)
    outs, _ = op.forward(impl, consts, arrays)
    for name, got in zip(op.outputs, _outputs(op, outs)):
        _compare(f"{op.forward_fn}: output {name}", got, data[f"{op.name}/{k}/out/{name}"],
                 VALUE_TOL, op, k)
    for name, a in arrays.items():
        if not np.array_equal(a, data[f"{op.name}/{k}/in/{name}"]):
            raise GradedTestFailure(f"{op.forward_fn} changed its input {name} in place; "
                                    "a forward pass must leave its arguments as they came")


def _check_gradients(impl, data, op, k):
    arrays, consts, douts = _case(data, op, k)
    outs, cache = op.forward(impl, consts, arrays)
    grads = op.backward(impl, tuple(d.copy() for d in douts), cache)
    if len(grads) != len(op.grads):
        raise GradedTestFailure(f"{op.backward_fn} returned {len(grads)} gradients, expected "
                                f"{len(op.grads)}: {', '.join(op.grads)}")
    wrong = []  # every gradient that differs, so one run shows them all
    for name, g in zip(op.grads, grads):
        want = data[f"{op.name}/{k}/grad/{name}"]
        if np.shape(g) != want.shape:
            wrong.append(f"{name} has shape {np.shape(g)}, expected {want.shape}")
        elif not gradcheck.rel_error(g, want) <= VALUE_TOL:
            wrong.append(f"{name} (relative error {gradcheck.rel_error(g, want):.1e})")
    if wrong:
        raise GradedTestFailure(f"{op.backward_fn}: differs from the reference gradients: "
                                f"{', '.join(wrong)}; tolerance {VALUE_TOL:.0e} "
                                f"({_shape_text(op, k)})")
    # Centred differences of the student's own forward pass, for every input.
    failed = []
    for (name, x), gname, g in zip(arrays.items(), op.grads, grads):
        num = gradcheck.numerical_gradient(lambda: op.forward(impl, consts, arrays)[0], x, douts)
        err = gradcheck.rel_error(g, num)
        if not err <= GRAD_TOL:
            failed.append(f"{gname} {err:.2e}")
    if failed:
        raise GradedTestFailure(f"{op.backward_fn}: gradient check against centred differences "
                                f"failed (relative error > {GRAD_TOL:.0e}): {', '.join(failed)} "
                                f"({_shape_text(op, k)})")


def _float32_case(data, op):
    k = 1  # a non-square case
    arrays, consts, douts = _case(data, op, k)
    return k, {n: a.astype(np.float32) for n, a in arrays.items()}, consts, \
        tuple(d.astype(np.float32) for d in douts)


def _check_float32_forward(impl, data, op):
    k, arrays, consts, _ = _float32_case(data, op)
    outs, _ = op.forward(impl, consts, arrays)
    for name, got in zip(op.outputs, _outputs(op, outs)):
        if getattr(got, "dtype", None) != np.float32:
            raise GradedTestFailure(f"{op.forward_fn}: float32 inputs gave output {name} of "
                                    f"dtype {getattr(got, 'dtype', type(got).__name__)}; "
                                    "keep the inputs' dtype (no silent upcast)")
        _compare(f"{op.forward_fn}: float32 output {name}", got,
                 data[f"{op.name}/{k}/out/{name}"], FLOAT32_TOL, op, k)


def _check_float32_backward(impl, data, op):
    k, arrays, consts, douts = _float32_case(data, op)
    _, cache = op.forward(impl, consts, arrays)
    grads = op.backward(impl, douts, cache)
    for name, g in zip(op.grads, grads):
        if getattr(g, "dtype", None) != np.float32:
            raise GradedTestFailure(f"{op.backward_fn}: float32 inputs gave {name} of dtype "
                                    f"{getattr(g, 'dtype', type(g).__name__)}; keep the "
                                    "inputs' dtype (no silent upcast)")
        _compare(f"{op.backward_fn}: float32 {name}", g, data[f"{op.name}/{k}/grad/{name}"],
                 FLOAT32_TOL, op, k)


def functions(assignment):
    """``[(function name, points), ...]`` graded by ``assignment``, in teaching order."""
    out = []
    for op in OPS[assignment]:
        out += [(op.forward_fn, op.forward_points), (op.backward_fn, op.backward_points)]
    return out


def tests_for(assignment, function=None):
    """The graded tests of ``assignment`` (of one of its functions if ``function`` is given)."""
    if assignment not in OPS:
        raise ValueError(f"assignment must be one of {', '.join(OPS)}, got {assignment!r}")
    tests = []
    for op in OPS[assignment]:
        for fn, kind in ((op.forward_fn, "values"), (op.backward_fn, "gradients")):
            tests += [GradedTest(fn, f"{fn}-{kind}[{k}]", op, kind, k)
                      for k in range(len(op.cases))]
            tests.append(GradedTest(fn, f"{fn}-float32", op, "float32", 1))
    if function is not None:
        tests = [t for t in tests if t.function == function]
        if not tests:
            names = ", ".join(f for f, _ in functions(assignment))
            raise ValueError(f"function must be one of {names}, got {function!r}")
    return tests


@dataclass
class Outcome:
    test: str
    function: str
    passed: bool
    error: str = ""    # the exception's type name when it failed
    message: str = ""


def run_tests(assignment, impl, data, function=None):
    """Run the graded tests against ``impl`` (a module with the student's functions);
    a failure or any exception from the student's code counts against its test only."""
    outcomes = []
    for test in tests_for(assignment, function):
        try:
            with np.errstate(all="ignore"):
                test.run(impl, data)
        except (Exception, SystemExit) as e:  # noqa: BLE001 - a student's code may raise anything
            first = str(e).strip().splitlines()
            outcomes.append(Outcome(test.id, test.function, False, type(e).__name__,
                                    first[0] if first else ""))
        else:
            outcomes.append(Outcome(test.id, test.function, True))
    return outcomes


def score(assignment, outcomes):
    """``[(function, passed, total, points_earned, points), ...]`` and the total."""
    rows = []
    for fn, points in functions(assignment):
        mine = [o for o in outcomes if o.function == fn]
        if not mine:
            continue
        passed = sum(o.passed for o in mine)
        rows.append((fn, passed, len(mine), points * passed / len(mine), points))
    return rows, sum(r[3] for r in rows), sum(r[4] for r in rows)
