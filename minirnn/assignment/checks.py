"""The graded tests of every assignment: one set of checks, run on two sets of cases.

* In the student's workspace, ``python -m pytest`` runs them against the student's package
  on the **public cases**, whose reference values ``minirnn assignment make`` stored in
  ``tests/expected_NAME.npz``.
* ``minirnn assignment grade`` runs them in the teacher's process on the **graded cases**,
  shapes and values drawn from a key only the teacher's side holds, against a stand-in
  (``sandbox.Remote``) that hands every call to a child process running the student's
  code. Every comparison happens here, in the process that runs the checks.

The ops, their inputs and how to call them are ``minirnn.gradcheck.OPS``: grading is the
gradient check plus a comparison with the reference. Every graded function has these
tests:

* a forward function: ``values[k]`` for each case k (every output equals the reference's,
  and no input array was modified), and ``float32`` (float32 in -> float32 out, close to
  the float64 result);
* a backward function: ``gradients[k]`` for each case k (every gradient equals the
  reference's to ``REFERENCE_GRAD_TOL`` *and* passes the centred-difference check against
  the student's own forward, relative error <= ``GRAD_TOL`` in float64), and ``float32``.

``REFERENCE_GRAD_TOL`` is what makes a backward pass backpropagation: backprop written any
correct way (loops over the step functions, einsum, a softmax through log-sum-exp) agrees
with the reference to a few 1e-15, while centred differences of the student's own forward
miss by 1e-11 or more (see docs/classroom.md for the measured margins).

Cases include N = T = D = H = 1 and non-square shapes. A function's score is its points
times the fraction of its tests that pass.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from .. import gradcheck
from . import get

VALUE_TOL = 1e-9            # forward outputs against the reference: only rounding may differ
REFERENCE_GRAD_TOL = 1e-13  # gradients against the reference: backprop, not differences
GRAD_TOL = 1e-7             # centred differences in float64 (the project's standard)
FLOAT32_TOL = 1e-4
N_CASES = 4
FLOAT32_CASE = 1            # a non-square case

# The public cases: (N, T, D, H), the smallest case, square and non-square ones, a long
# thin one; their values come from seeds anyone can read.
PUBLIC_SIZES = ((1, 1, 1, 1), (2, 3, 4, 5), (3, 2, 5, 2), (1, 5, 2, 3))


@dataclass(frozen=True)
class Op:
    """One graded forward/backward pair: the gradient check's spec, plus its marks."""
    spec: gradcheck.OpSpec
    forward_points: int
    backward_points: int

    name = property(lambda self: self.spec.name)
    forward_fn = property(lambda self: self.spec.forward_fn)
    backward_fn = property(lambda self: self.spec.backward_fn)
    inputs = property(lambda self: self.spec.inputs)
    outputs = property(lambda self: self.spec.outputs)
    grads = property(lambda self: self.spec.grads)

    def forward(self, impl, consts, arrays):
        return self.spec.forward(consts, impl=impl, **arrays)

    def backward(self, impl, douts, cache):
        return self.spec.backward(douts, cache, impl=impl)


def ops(assignment):
    """The graded ops of ``assignment``, in teaching order."""
    return tuple(Op(gradcheck.OPS[name], f, b) for name, f, b in get(assignment).graded)


def functions(assignment):
    """``[(function name, points), ...]`` graded by ``assignment``, in teaching order."""
    out = []
    for op in ops(assignment):
        out += [(op.forward_fn, op.forward_points), (op.backward_fn, op.backward_points)]
    return out


# --------------------------------------------------------------------------------------
# Cases: sizes and a seed each; data: their inputs and the reference's answers
# --------------------------------------------------------------------------------------

def _op_number(op):
    return zlib.crc32(op.name.encode("utf-8"))


def public_cases(assignment):
    """``{op name: [(sizes, seed), ...]}``: the cases a workspace's own tests use."""
    return {op.name: [(sizes, (0, _op_number(op), k)) for k, sizes in enumerate(PUBLIC_SIZES)]
            for op in ops(assignment)}


def draw_sizes(rng):
    """Four ``(N, T, D, H)`` like the public ones: all ones; a non-square case with N, T >= 2
    and D != H (the float32 case); a wide batch; a long thin sequence."""
    def n(low, high):
        return int(rng.integers(low, high + 1))
    D, H = rng.choice(np.arange(2, 7), size=2, replace=False)
    return ((1, 1, 1, 1), (n(2, 3), n(2, 4), int(D), int(H)),
            (n(2, 4), n(1, 3), n(1, 5), n(1, 5)), (n(1, 2), n(3, 6), n(1, 4), n(1, 4)))


def graded_cases(assignment, key):
    """``{op name: [(sizes, seed), ...]}``: the cases grading uses, shapes and values drawn
    from ``key`` (an int only the teacher's side holds; see ``grading.grading_key``)."""
    cases = {}
    for op in ops(assignment):
        sizes = draw_sizes(np.random.default_rng([key, _op_number(op)]))
        cases[op.name] = [(s, (key, _op_number(op), k + 1)) for k, s in enumerate(sizes)]
    return cases


def reference_data(assignment, cases, reference=None):
    """Every case run through ``reference`` (default: the library's ``minirnn.functional``):
    a flat dict of arrays, keys ``op/k/sizes``, ``op/k/in/x``, ``op/k/const/mask``,
    ``op/k/dout/h``, ``op/k/out/h``, ``op/k/grad/dx``."""
    if reference is None:
        from .. import functional as reference
    data = {}
    for op in ops(assignment):
        for k, (sizes, seed) in enumerate(cases[op.name]):
            rng = np.random.default_rng(list(seed))
            arrays, consts = op.spec.make(rng, *sizes)
            outs, cache = op.forward(reference, consts, {n: a.copy() for n, a in arrays.items()})
            douts = tuple(rng.standard_normal(np.shape(o)) for o in outs)
            grads = op.backward(reference, douts, cache)
            prefix = f"{op.name}/{k}/"
            data[prefix + "sizes"] = np.array(sizes)
            data.update({prefix + "in/" + n: a for n, a in arrays.items()})
            data.update({prefix + "const/" + n: np.asarray(a) for n, a in consts.items()})
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


def _shape_text(data, op, k):
    """The sizes of case k as a student would write them, e.g. ``N=2, D=4, H=5``."""
    sizes = [int(s) for s in data[f"{op.name}/{k}/sizes"]]
    return ", ".join(f"{n}={v}" for n, v in op.spec.sizes(*sizes).items())


def _array(what, got):
    if not isinstance(got, np.ndarray):
        kind = getattr(got, "type_name", type(got).__name__)  # a sandbox.Handle names its type
        raise GradedTestFailure(f"{what} is a {kind}, expected a numpy array")
    return got


def _compare(what, got, want, tol, data, op, k):
    got = _array(what, got)
    if got.shape != want.shape:
        raise GradedTestFailure(f"{what} has shape {got.shape}, expected {want.shape} "
                                f"({_shape_text(data, op, k)})")
    err = gradcheck.rel_error(got, want)
    if not err <= tol:
        raise GradedTestFailure(f"{what} differs from the reference: relative error {err:.2e} "
                                f"> {tol:.0e} ({_shape_text(data, op, k)})")


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
                 VALUE_TOL, data, op, k)
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
    wrong, errors = [], []  # every gradient that differs, so one run shows them all
    for name, g in zip(op.grads, grads):
        want = data[f"{op.name}/{k}/grad/{name}"]
        g = _array(f"{op.backward_fn}: {name}", g)
        if g.shape != want.shape:
            wrong.append(f"{name} has shape {g.shape}, expected {want.shape}")
        elif not gradcheck.rel_error(g, want) <= REFERENCE_GRAD_TOL:
            errors.append(gradcheck.rel_error(g, want))
            wrong.append(f"{name} (relative error {errors[-1]:.1e})")
    if wrong:
        hint = ""
        if errors and len(errors) == len(wrong) and max(errors) < 1e-6:
            hint = ("; this close but no closer is what finite differences give: the "
                    "backward pass must be backpropagation")
        raise GradedTestFailure(f"{op.backward_fn}: differs from the reference gradients: "
                                f"{', '.join(wrong)}; tolerance {REFERENCE_GRAD_TOL:.0e} "
                                f"({_shape_text(data, op, k)}){hint}")
    # Centred differences of the student's own forward pass, for every input; each value
    # comes from a call of the student's forward (in the child, when grading).
    failed = []
    for (name, x), gname, g in zip(arrays.items(), op.grads, grads):
        num = gradcheck.numerical_gradient(lambda: op.forward(impl, consts, arrays)[0], x, douts)
        err = gradcheck.rel_error(g, num)
        if not err <= GRAD_TOL:
            failed.append(f"{gname} {err:.2e}")
    if failed:
        raise GradedTestFailure(f"{op.backward_fn}: gradient check against centred differences "
                                f"failed (relative error > {GRAD_TOL:.0e}): {', '.join(failed)} "
                                f"({_shape_text(data, op, k)})")


def _float32_case(data, op):
    k = FLOAT32_CASE
    arrays, consts, douts = _case(data, op, k)
    return k, {n: a.astype(np.float32) for n, a in arrays.items()}, consts, \
        tuple(d.astype(np.float32) for d in douts)


def _check_float32_forward(impl, data, op):
    k, arrays, consts, _ = _float32_case(data, op)
    outs, _ = op.forward(impl, consts, arrays)
    for name, got in zip(op.outputs, _outputs(op, outs)):
        got = _array(f"{op.forward_fn}: output {name}", got)
        if got.dtype != np.float32:
            raise GradedTestFailure(f"{op.forward_fn}: float32 inputs gave output {name} of "
                                    f"dtype {got.dtype}; keep the inputs' dtype (no silent "
                                    "upcast)")
        _compare(f"{op.forward_fn}: float32 output {name}", got,
                 data[f"{op.name}/{k}/out/{name}"], FLOAT32_TOL, data, op, k)


def _check_float32_backward(impl, data, op):
    k, arrays, consts, douts = _float32_case(data, op)
    _, cache = op.forward(impl, consts, arrays)
    grads = op.backward(impl, douts, cache)
    for name, g in zip(op.grads, grads):
        g = _array(f"{op.backward_fn}: {name}", g)
        if g.dtype != np.float32:
            raise GradedTestFailure(f"{op.backward_fn}: float32 inputs gave {name} of dtype "
                                    f"{g.dtype}; keep the inputs' dtype (no silent upcast)")
        _compare(f"{op.backward_fn}: float32 {name}", g, data[f"{op.name}/{k}/grad/{name}"],
                 FLOAT32_TOL, data, op, k)


def tests_for(assignment, function=None):
    """The graded tests of ``assignment`` (of one of its functions if ``function`` is given)."""
    tests = []
    for op in ops(assignment):
        for fn, kind in ((op.forward_fn, "values"), (op.backward_fn, "gradients")):
            tests += [GradedTest(fn, f"{fn}-{kind}[{k}]", op, kind, k) for k in range(N_CASES)]
            tests.append(GradedTest(fn, f"{fn}-float32", op, "float32", FLOAT32_CASE))
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
    where: str = ""    # the student's file and line it failed at, "path:line", when known


def run_test(test, impl, data):
    """Run one graded test: its Outcome. Whatever the student's code raises (or, run through
    the sandbox, a crash or a timeout) counts against this test only."""
    try:
        with np.errstate(all="ignore"):
            test.run(impl, data)
    except (Exception, SystemExit) as e:  # noqa: BLE001 - a student's code may raise anything
        message = str(getattr(e, "message", e)).strip().splitlines()
        return Outcome(test.id, test.function, False, getattr(e, "error", type(e).__name__),
                       message[0][:500] if message else "", getattr(e, "where", ""))
    return Outcome(test.id, test.function, True)


def run_tests(assignment, impl, data, function=None):
    """Run the graded tests against ``impl`` (a module with the student's functions) in
    this process, as a workspace's own tests do."""
    return [run_test(t, impl, data) for t in tests_for(assignment, function)]


def score(assignment, outcomes):
    """``[(function, passed, total, points_earned, points), ...]``, the total earned and the
    total points."""
    rows = []
    for fn, points in functions(assignment):
        mine = [o for o in outcomes if o.function == fn]
        passed = sum(o.passed for o in mine)
        rows.append((fn, passed, len(mine), points * passed / len(mine) if mine else 0.0, points))
    return rows, sum(r[3] for r in rows), sum(r[4] for r in rows)
