"""Numerical gradients by centred differences, and a checker for forward/backward pairs.

The idea in three lines: pick a random upstream gradient ``dout`` for every output,
define the scalar ``L = sum_k sum(out_k * dout_k)``, and compare the backward pass's
``dL/dx`` with ``(L(x + h e_i) - L(x - h e_i)) / 2h`` for every entry ``i`` of every input.
Centred differences are accurate to O(h^2), so in float64 with ``h = 1e-5`` a correct
backward agrees to about 1e-10 relative error, and a wrong one misses by far more than
the 1e-7 tolerance.

``OPS`` lists every functional op as a ready-made check (used by the tests and by
``python -m minirnn gradcheck``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np  # host-side arithmetic on float64 copies; device arrays go via backend

from . import backend
from . import functional as F
from .functional.cells import CELLS, get_cell

DEFAULT_TOL = 1e-7
DEFAULT_STEP = 1e-5


def rel_error(a, b):
    """Relative error ``||a - b|| / (||a|| + ||b||)`` over the whole array (0 if both are 0).

    Taken over the whole array rather than entry by entry, so that a tiny entry
    with a tiny absolute error cannot dominate, while a wrong entry of ordinary
    size still shows up at its full weight.
    """
    a = np.asarray(backend.to_numpy(a), dtype=np.float64)
    b = np.asarray(backend.to_numpy(b), dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: a and b must have the same shape, got {a.shape} and {b.shape}")
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denom == 0 else float(np.linalg.norm(a - b) / denom)


def numerical_gradient(f, x, dout, h=DEFAULT_STEP):
    """Centred-difference gradient of ``sum(f() * dout)`` with respect to ``x``.

    ``f`` takes no arguments and reads ``x``, a float64 host array that this function
    perturbs one entry at a time (and restores). ``dout`` is the upstream gradient,
    shaped like ``f()``; a tuple of outputs with a tuple of ``dout`` works too.
    Returns an array shaped like ``x``.
    """
    if not (isinstance(x, np.ndarray) and x.dtype == np.float64):
        raise TypeError("numerical_gradient: x must be a float64 numpy.ndarray (the check "
                        f"needs double precision), got {getattr(x, 'dtype', type(x).__name__)}")
    douts = dout if isinstance(dout, tuple) else (dout,)

    def scalar():
        outs = f()
        outs = outs if isinstance(outs, tuple) else (outs,)
        return sum(float(np.sum(np.asarray(backend.to_numpy(o), np.float64) * d))
                   for o, d in zip(outs, douts))

    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)  # views: x must be contiguous
    if not np.shares_memory(flat, x):
        raise ValueError("numerical_gradient: x must be a contiguous array")
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        plus = scalar()
        flat[i] = old - h
        minus = scalar()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * h)
    return grad


@dataclass
class GradResult:
    """One argument's comparison."""
    op: str
    arg: str
    rel_error: float
    tol: float

    @property
    def passed(self):
        return self.rel_error <= self.tol


@dataclass
class GradcheckReport:
    """The comparisons for one or more ops; ``str(report)`` is a table."""
    results: list = field(default_factory=list)

    @property
    def passed(self):
        return all(r.passed for r in self.results)

    @property
    def worst(self):
        return max(self.results, key=lambda r: r.rel_error)

    def __add__(self, other):
        return GradcheckReport(self.results + other.results)

    def __str__(self):
        rows = [("op", "argument", "rel. error", "tolerance", "result")]
        rows += [(r.op, r.arg, f"{r.rel_error:.2e}", f"{r.tol:.0e}",
                  "pass" if r.passed else "FAIL") for r in self.results]
        widths = [max(len(row[k]) for row in rows) for k in range(5)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        failed = sum(not r.passed for r in self.results)
        lines.append(f"{len(self.results) - failed} passed, {failed} failed")
        return "\n".join(lines)


def check_pair(forward, backward, inputs, *, op="op", douts=None, h=DEFAULT_STEP,
               tol=DEFAULT_TOL, seed=0, xp=None):
    """Compare a backward pass against centred differences for every input.

    forward: ``forward(**arrays) -> (outputs_tuple, cache)`` on device arrays;
    backward: ``backward(douts_tuple, cache) -> tuple of gradients``, one per entry
        of ``inputs`` in order;
    inputs: dict name -> float64 host array, the arguments to differentiate;
    douts: upstream gradients, one per output (random normal if None);
    xp: the array module to run on (``backend.xp`` if None): inputs are moved there
        and outputs brought back, so the check runs on CuPy or the strict backend too.
    Returns a GradcheckReport with one row per input.
    """
    xp = backend.xp if xp is None else xp
    host = {k: np.array(backend.to_numpy(v), dtype=np.float64) for k, v in inputs.items()}

    def run():
        outs, cache = forward(**{k: xp.asarray(v) for k, v in host.items()})
        return outs, cache

    outs, cache = run()
    if douts is None:
        rng = np.random.default_rng(seed)
        douts = tuple(rng.standard_normal(o.shape) for o in outs)
    grads = backward(tuple(xp.asarray(d) for d in douts), cache)
    if len(grads) != len(host):
        raise ValueError(f"check_pair: backward returned {len(grads)} gradients for "
                         f"{len(host)} inputs ({', '.join(host)})")
    report = GradcheckReport()
    for (name, x), g in zip(host.items(), grads):
        num = numerical_gradient(lambda: run()[0], x, tuple(douts), h)
        report.results.append(GradResult(op, name, rel_error(g, num), tol))
    return report


# --------------------------------------------------------------------------------------
# Every functional op as a ready-made check
# --------------------------------------------------------------------------------------

def _positional(forward, consts, arrays):
    """Call ``forward(*arrays)``; its last return is the cache, the others the outputs."""
    *outputs, cache = forward(*arrays.values())
    return tuple(outputs), cache


@dataclass(frozen=True)
class OpSpec:
    """One functional forward/backward pair: how to call it and how to make its inputs.

    name: the op, e.g. ``"lstm_step"``; forward_fn, backward_fn: the two functions'
        names, looked up on ``impl`` (``minirnn.functional`` unless a caller passes
        another module, as grading does with a student's);
    inputs: the differentiable arguments in DESIGN's order (also the order of the
        backward's gradients); outputs: the forward's outputs that carry a gradient;
        grads: the backward's returns;
    make(rng, N, T, D, H) -> (inputs, consts): float64 host arrays, ``consts`` the
        arguments not differentiated (ids, targets, masks); how the four sizes are
        read is the op's own (``sizes`` says it in the op's letters);
    call_forward(forward, consts, arrays) -> (outputs tuple, cache);
    call_backward(backward, douts, cache) -> the gradients, one per input;
    sizes(N, T, D, H) -> dict: the sizes as the op's docstring names them.
    """
    name: str
    forward_fn: str
    backward_fn: str
    inputs: tuple
    outputs: tuple
    grads: tuple
    make: Callable
    call_backward: Callable
    call_forward: Callable = _positional
    sizes: Callable = lambda N, T, D, H: {"N": N, "T": T, "D": D, "H": H}  # noqa: E731

    def forward(self, consts, impl=None, **arrays):
        """Run the forward on ``arrays`` (named as ``inputs``): (outputs tuple, cache)."""
        impl = F if impl is None else impl
        return self.call_forward(getattr(impl, self.forward_fn), consts, arrays)

    def backward(self, douts, cache, impl=None):
        """Run the backward: the gradients, in the order of ``inputs``."""
        impl = F if impl is None else impl
        return self.call_backward(getattr(impl, self.backward_fn), douts, cache)


def _recurrent_specs(cell):
    """The step and sequence checks of one cell of the table, in DESIGN's argument order.

    The backward receives one upstream gradient per output: the LSTM's sequence op has
    two, dhs and dc_last, so the dc_last path is checked too.
    """
    k = cell.gates

    def weights(rng, D, H):
        out = {"Wx": rng.standard_normal((D, k * H)) / np.sqrt(D),
               "Wh": rng.standard_normal((H, k * H)) / np.sqrt(H)}
        out.update({name: 0.5 * rng.standard_normal(k * H) for name in cell.biases})
        return out

    def make_step(rng, N, T, D, H):
        inputs = {"x": rng.standard_normal((N, D))}
        inputs.update({f"{s}_prev": rng.standard_normal((N, H)) for s in cell.states})
        return {**inputs, **weights(rng, D, H)}, {}

    def make_sequence(rng, N, T, D, H):
        inputs = {"x": rng.standard_normal((N, T, D))}
        inputs.update({f"{s}0": rng.standard_normal((N, H)) for s in cell.states})
        return {**inputs, **weights(rng, D, H)}, {}

    def sequence_backward(backward, d, cache):
        return backward(d[0], cache, *d[1:])  # dc_last is the LSTM's third argument

    step_fn, seq_fn = cell.step_forward.__name__, cell.forward.__name__
    return (
        OpSpec(f"{cell.name}_step", step_fn, cell.step_backward.__name__, cell.step_inputs,
               cell.step_outputs, cell.step_grads, make_step,
               lambda backward, d, cache: backward(*d, cache),
               sizes=lambda N, T, D, H: {"N": N, "D": D, "H": H}),
        OpSpec(cell.name, seq_fn, cell.backward.__name__, cell.sequence_inputs,
               cell.sequence_outputs, cell.sequence_grads, make_sequence, sequence_backward),
    )


def _embedding_make(rng, N, T, D, H, V=7):
    return {"W": rng.standard_normal((V, D))}, {"ids": rng.integers(0, V, size=(N, T))}


def _embedding_forward(forward, consts, arrays):
    W = arrays["W"]
    out, cache = forward(backend.get_array_module(W).asarray(consts["ids"]), W)
    return (out,), cache


def _affine_make(rng, N, T, D, H):
    return {"x": rng.standard_normal((N, T, D)), "W": rng.standard_normal((D, H)) / np.sqrt(D),
            "b": rng.standard_normal(H)}, {}


def _loss_make(rng, N, T, D, H, V=7):
    # masked, with at least one counted position per row
    mask = np.concatenate([np.ones((N, 1), bool), rng.random((N, T - 1)) < 0.7], axis=1)
    return ({"logits": 3 * rng.standard_normal((N, T, V))},
            {"targets": rng.integers(0, V, size=(N, T)), "mask": mask})


def _loss_forward(forward, consts, arrays):
    logits = arrays["logits"]
    xp = backend.get_array_module(logits)
    loss, dlogits = forward(logits, xp.asarray(consts["targets"]), xp.asarray(consts["mask"]))
    return (loss,), dlogits  # the "cache" of the loss is its gradient


def _bce_make(rng, N, T, D, H):
    return ({"logits": 3 * rng.standard_normal((N, T, D))},
            {"targets": (rng.random((N, T, D)) < 0.5).astype(np.float64)})


def _bce_forward(forward, consts, arrays):
    logits = arrays["logits"]
    loss, dlogits = forward(logits, backend.get_array_module(logits).asarray(consts["targets"]))
    return (backend.get_array_module(logits).asarray(loss),), dlogits


_CONV_IMAGE, _CONV_K = (2, 3), 3  # a tiny H != W image; a 3 x 3 kernel exercises padding


def _convlstm_specs():
    """Conv-LSTM checks: D is the input channels C, H the hidden channels F (k = 3)."""
    def make(sequence):
        def make_inputs(rng, N, T, C, Fh):
            (Hi, Wi), k = _CONV_IMAGE, _CONV_K
            shape = (N, T, C, Hi, Wi) if sequence else (N, C, Hi, Wi)
            inputs = {"x": rng.standard_normal(shape)}
            inputs.update({s: rng.standard_normal((N, Fh, Hi, Wi))
                           for s in (("h0", "c0") if sequence else ("h_prev", "c_prev"))})
            inputs["Wx"] = rng.standard_normal((4 * Fh, C, k, k)) / np.sqrt(C * k * k)
            inputs["Wh"] = rng.standard_normal((4 * Fh, Fh, k, k)) / np.sqrt(Fh * k * k)
            inputs["b"] = 0.5 * rng.standard_normal(4 * Fh)
            return inputs, {}
        return make_inputs

    def sizes(sequence):
        def named(N, T, C, Fh):
            image = {"H": _CONV_IMAGE[0], "W": _CONV_IMAGE[1], "k": _CONV_K}
            return {"N": N, **({"T": T} if sequence else {}), "C": C, "F": Fh, **image}
        return named

    lstm = CELLS["lstm"]
    return (
        OpSpec("convlstm_step", "convlstm_step_forward", "convlstm_step_backward",
               lstm.step_inputs, lstm.step_outputs, lstm.step_grads, make(False),
               lambda backward, d, cache: backward(*d, cache), sizes=sizes(False)),
        OpSpec("convlstm", "convlstm_forward", "convlstm_backward", lstm.sequence_inputs,
               lstm.sequence_outputs, lstm.sequence_grads, make(True),
               lambda backward, d, cache: backward(d[0], cache, dc_last=d[1]),
               sizes=sizes(True)),
    )


def _conv_make(rng, N, T, C, Fo):
    return {"x": rng.standard_normal((N, C, *_CONV_IMAGE)),
            "W": rng.standard_normal((Fo, C, _CONV_K, _CONV_K))}, {}


def _im2col_forward(forward, consts, arrays):
    x = arrays["x"]
    return (forward(x, _CONV_K),), x.shape


def _signed(rng, shape, scale):
    """Entries of magnitude in [0.5, 1.5] * scale with random signs: none near zero."""
    return scale * rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 1.5, size=shape)


def _attention_sizes(N, T, D, H):
    """Attention reads the four sizes as S = T + 2 keys of size Hk = D, attention size
    A = H + 1 and query size Hq = A + 1."""
    return {"N": N, "S": T + 2, "Hq": H + 2, "Hk": D, "A": H + 1}


def _attention_make(rng, N, T, D, H):
    """Attention inputs (sizes as ``_attention_sizes``) with a mask that allows at least
    three positions per row.

    At least three positions and two features, keys spread apart along every feature
    and no weight entry near zero keep every gradient of the score path well above the
    ~1e-11 rounding of the centred differences; see
    docs/derivations/attention.md#checking-the-gradients.
    """
    sizes = _attention_sizes(N, T, D, H)
    S, Hk, A, Hq = sizes["S"], sizes["Hk"], sizes["A"], sizes["Hq"]
    grid = np.linspace(-1.5, 1.5, S)
    keys = rng.permuted(np.broadcast_to(grid[None, :, None], (N, S, Hk)), axis=1)
    inputs = {"query": rng.standard_normal((N, Hq)),
              "keys": keys + rng.uniform(-0.1, 0.1, size=(N, S, Hk)),
              "Wq": _signed(rng, (Hq, A), 0.5 / np.sqrt(Hq)),
              "Wk": _signed(rng, (Hk, A), 1 / np.sqrt(Hk)),
              "v": _signed(rng, A, 1.5 / np.sqrt(A))}
    order = rng.permuted(np.tile(np.arange(S), (N, 1)), axis=1)  # 3 random positions stay
    return inputs, {"mask": (order < 3) | (rng.random((N, S)) < 0.5)}


def _attention_forward(forward, consts, arrays):
    xp = backend.get_array_module(arrays["query"])
    context, weights, cache = forward(*arrays.values(), mask=xp.asarray(consts["mask"]))
    return (context, weights), cache  # both outputs carry a gradient: dcontext, dweights


def _layer_norm_make(rng, N, T, D, H):
    """x (N, T, E = D) whose rows have their own offset and spread, so that the mean and
    the variance both matter; eps = 1 for E = 2, whose normalised rows are +-1 up to a
    term in eps, too small a gradient for the differences with the default eps
    (docs/derivations/layer-norm.md#checking-the-gradients)."""
    x = rng.standard_normal((N, T, D)) * rng.uniform(0.5, 2.0, (N, T, 1))
    x += rng.uniform(-2.0, 2.0, (N, T, 1))
    return ({"x": x, "gamma": _signed(rng, D, 1.0), "beta": rng.standard_normal(D)},
            {"eps": 1.0 if D == 2 else 1e-5})


def _layer_norm_forward(forward, consts, arrays):
    # float(): the assignments store the constants as 0-d arrays
    y, cache = forward(*arrays.values(), eps=float(consts["eps"]))
    return (y,), cache


def _self_attention_sizes(N, T, D, H):
    """Self-attention reads the four sizes as H heads of size hs = D, so E = D * H."""
    return {"N": N, "T": T, "E": D * H, "n_heads": H, "hs": D}


def _self_attention_make(rng, N, T, D, H):
    """Weights with no entry near zero, giving scores of order one (softmaxes neither
    uniform nor one-hot): docs/derivations/self-attention.md#checking-the-gradients."""
    E = D * H
    return ({"x": rng.standard_normal((N, T, E)),
             "Wqkv": _signed(rng, (E, 3 * E), 1.5 / np.sqrt(E)),
             "bqkv": 0.5 * rng.standard_normal(3 * E),
             "Wo": _signed(rng, (E, E), 1 / np.sqrt(E)),
             "bo": 0.5 * rng.standard_normal(E)}, {"n_heads": H})


def _self_attention_forward(forward, consts, arrays):
    y, cache = forward(*arrays.values(), int(consts["n_heads"]))  # a 0-d array in grading
    return (y,), cache


def _spec_table():
    image = lambda N, T, C, F: {"N": N, "C": C, "F": F, "H": _CONV_IMAGE[0],  # noqa: E731
                                "W": _CONV_IMAGE[1], "k": _CONV_K}
    specs = [spec for cell in CELLS.values() for spec in _recurrent_specs(cell)]
    specs += [
        OpSpec("embedding", "embedding_forward", "embedding_backward", ("W",), ("out",),
               ("dW",), _embedding_make, lambda backward, d, cache: (backward(d[0], cache),),
               _embedding_forward, lambda N, T, D, H: {"N": N, "T": T, "V": 7, "D": D}),
        OpSpec("affine", "affine_forward", "affine_backward", ("x", "W", "b"), ("out",),
               ("dx", "dW", "db"), _affine_make, lambda backward, d, cache: backward(d[0], cache),
               sizes=lambda N, T, D, H: {"N": N, "T": T, "D": D, "M": H}),
        OpSpec("softmax_cross_entropy", "softmax_cross_entropy", "softmax_cross_entropy",
               ("logits",), ("loss",), ("dlogits",), _loss_make,
               lambda backward, d, dlogits: (d[0] * dlogits,), _loss_forward,
               lambda N, T, D, H: {"N": N, "T": T, "V": 7}),
        OpSpec("sigmoid_binary_cross_entropy", "sigmoid_binary_cross_entropy",
               "sigmoid_binary_cross_entropy", ("logits",), ("loss",), ("dlogits",), _bce_make,
               lambda backward, d, dlogits: (d[0] * dlogits,), _bce_forward,
               lambda N, T, D, H: {"N": N, "T": T, "D": D}),
        OpSpec("additive_attention", "additive_attention_forward", "additive_attention_backward",
               ("query", "keys", "Wq", "Wk", "v"), ("context", "weights"),
               ("dquery", "dkeys", "dWq", "dWk", "dv"), _attention_make,
               lambda backward, d, cache: backward(d[0], cache, dweights=d[1]),
               _attention_forward, _attention_sizes),
        *_convlstm_specs(),
        OpSpec("conv2d_same", "conv2d_same_forward", "conv2d_same_backward", ("x", "W"),
               ("out",), ("dx", "dW"), _conv_make,
               lambda backward, d, cache: backward(d[0], cache), sizes=image),
        OpSpec("im2col", "im2col", "col2im", ("x",), ("cols",), ("dx",),  # backward: col2im
               lambda rng, N, T, C, H: ({"x": rng.standard_normal((N, C, *_CONV_IMAGE))}, {}),
               lambda backward, d, x_shape: (backward(d[0], x_shape, _CONV_K),),
               _im2col_forward, image),
        OpSpec("layer_norm", "layer_norm_forward", "layer_norm_backward", ("x", "gamma", "beta"),
               ("y",), ("dx", "dgamma", "dbeta"), _layer_norm_make,
               lambda backward, d, cache: backward(d[0], cache), _layer_norm_forward,
               lambda N, T, D, H: {"N": N, "T": T, "E": D}),
        OpSpec("gelu", "gelu_forward", "gelu_backward", ("x",), ("y",), ("dx",),
               lambda rng, N, T, D, H: ({"x": rng.uniform(-4.0, 4.0, (N, T, D))}, {}),
               lambda backward, d, cache: (backward(d[0], cache),),
               sizes=lambda N, T, D, H: {"N": N, "T": T, "E": D}),
        OpSpec("causal_self_attention", "causal_self_attention_forward",
               "causal_self_attention_backward", ("x", "Wqkv", "bqkv", "Wo", "bo"), ("y",),
               ("dx", "dWqkv", "dbqkv", "dWo", "dbo"), _self_attention_make,
               lambda backward, d, cache: backward(d[0], cache), _self_attention_forward,
               _self_attention_sizes),
    ]
    return {s.name: s for s in specs}


OPS = _spec_table()


def check_op(name, N=2, T=3, D=4, H=5, *, seed=0, tol=DEFAULT_TOL, xp=None):
    """Gradient-check the functional op ``name`` (a key of ``OPS``) on random float64 inputs."""
    if name not in OPS:
        raise ValueError(f"check_op: name must be one of {', '.join(OPS)}, got {name!r}")
    spec = OPS[name]
    rng = np.random.default_rng(seed)
    inputs, consts = spec.make(rng, N, T, D, H)
    return check_pair(lambda **a: spec.forward(consts, **a), spec.backward, inputs,
                      op=name, tol=tol, seed=seed + 1, xp=xp)


def check_params(params, grads, loss, *, op="model", tol=1e-6, h=DEFAULT_STEP):
    """Gradient-check a whole model: every parameter against centred differences.

    params, grads: dicts name -> float64 numpy arrays (a Module's ``params``/``grads``);
    loss: ``loss(backward) -> float``; it runs the forward pass and, when ``backward`` is
        True, the backward pass that adds into ``grads`` (which this function zeroes first).
    Returns a GradcheckReport with one row per parameter.
    """
    for k, p in params.items():
        if not (isinstance(p, np.ndarray) and p.dtype == np.float64):
            raise TypeError(f"check_params: parameter {k} must be a float64 numpy array "
                            f"(build the model after backend.set_default_dtype('float64')), "
                            f"got {getattr(p, 'dtype', type(p).__name__)}")
    for g in grads.values():
        g[...] = 0
    loss(True)
    analytic = {k: g.copy() for k, g in grads.items()}
    report = GradcheckReport()
    for k, p in params.items():
        num = numerical_gradient(lambda: np.asarray(loss(False)), p, np.ones(()), h)
        report.results.append(GradResult(op, k, rel_error(analytic[k], num), tol))
    return report


# --------------------------------------------------------------------------------------
# How far back a gradient reaches
# --------------------------------------------------------------------------------------

def gradient_norms_through_time(cell, x, weights, dh_last):
    """``||dL/dh_t||`` at every distance ``k = T-1-t`` from a loss that reads only the
    last hidden state: the picture of vanishing and exploding gradients.

    cell: "rnn", "lstm" or "gru"; x: (N, T, D) inputs;
    weights: the cell's weights in DESIGN's order, ``(Wx, Wh, b)`` or for the GRU
        ``(Wx, Wh, bx, bh)``; dh_last: (N, H) the gradient arriving at h_{T-1}.
    Runs the step functions forward from zero states, then backward one step at a
    time, the LSTM's dc starting at zero, and records the norm of the carried dL/dh_t
    over the whole batch.
    Returns ``(norms, caches)``: norms (T + 1,), entry k for h_{T-1-k} (k = T is the
    initial state); caches: the T step caches, to look at the gates.
    """
    spec = get_cell(cell, "gradient_norms_through_time: cell")
    N, T = x.shape[0], x.shape[1]
    H = weights[1].shape[0]
    state = tuple(np.zeros((N, H), dtype=x.dtype) for _ in spec.states)
    caches = []
    for t in range(T):
        state, cache = spec.step(x[:, t], state, weights)
        caches.append(cache)
    dstate = (dh_last,) + tuple(np.zeros_like(dh_last) for _ in spec.states[1:])
    norms = [np.linalg.norm(dh_last)]
    for cache in reversed(caches):
        _, dstate, _ = spec.step_back(dstate, cache)
        norms.append(np.linalg.norm(dstate[0]))
    return np.array(norms), caches
