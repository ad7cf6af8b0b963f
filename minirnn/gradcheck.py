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

@dataclass(frozen=True)
class OpSpec:
    """How to gradient-check one functional op on random inputs.

    ``make(rng, N, T, D, H)`` returns ``(inputs, consts)``: the float64 arrays to
    differentiate and the non-differentiable arguments (ids, targets, masks).
    ``forward(consts, **inputs) -> (outputs, cache)``; ``backward(douts, cache)``
    returns one gradient per input, in order.
    """
    name: str
    make: Callable
    forward: Callable
    backward: Callable


def _weights(rng, D, H, k, biases=("b",)):
    out = {"Wx": rng.standard_normal((D, k * H)) / np.sqrt(D),
           "Wh": rng.standard_normal((H, k * H)) / np.sqrt(H)}
    for name in biases:
        out[name] = 0.5 * rng.standard_normal(k * H)
    return out


def _recurrent_spec(name, k, states, forward, backward, biases=("b",), sequence=True):
    """A check for a recurrent op: random x, states and weights in DESIGN's argument order.

    ``backward(douts, cache)`` receives one upstream gradient per output (the LSTM's
    sequence op has two: dhs and dc_last, so the dc_last path is checked too).
    """
    def make(rng, N, T, D, H):
        x_shape = (N, T, D) if sequence else (N, D)
        inputs = {"x": rng.standard_normal(x_shape)}
        inputs.update({s: rng.standard_normal((N, H)) for s in states})
        inputs.update(_weights(rng, D, H, k, biases))
        return inputs, {}

    def run(consts, **arrays):
        *outputs, cache = forward(**arrays)
        return tuple(outputs), cache

    return OpSpec(name, make, run, backward)


def _embedding_make(rng, N, T, D, H, V=7):
    return {"W": rng.standard_normal((V, D))}, {"ids": rng.integers(0, V, size=(N, T))}


def _embedding_forward(consts, W):
    out, cache = F.embedding_forward(backend.get_array_module(W).asarray(consts["ids"]), W)
    return (out,), cache


def _affine_make(rng, N, T, D, H):
    return {"x": rng.standard_normal((N, T, D)), "W": rng.standard_normal((D, H)) / np.sqrt(D),
            "b": rng.standard_normal(H)}, {}


def _affine_forward(consts, **arrays):
    out, cache = F.affine_forward(**arrays)
    return (out,), cache


def _loss_make(rng, N, T, D, H, V=7):
    # masked, with at least one counted position per row
    mask = np.concatenate([np.ones((N, 1), bool), rng.random((N, T - 1)) < 0.7], axis=1)
    return ({"logits": 3 * rng.standard_normal((N, T, V))},
            {"targets": rng.integers(0, V, size=(N, T)), "mask": mask})


def _loss_forward(consts, logits):
    xp = backend.get_array_module(logits)
    loss, dlogits = F.softmax_cross_entropy(logits, xp.asarray(consts["targets"]),
                                            xp.asarray(consts["mask"]))
    return (loss,), dlogits  # the "cache" of the loss is its gradient


_CONV_IMAGE, _CONV_K = (2, 3), 3  # a tiny H != W image; a 3 x 3 kernel exercises padding


def _convlstm_spec(name, states, forward, backward, sequence=True):
    """Conv-LSTM checks: D is the input channels C, H the hidden channels F (k = 3)."""
    def make(rng, N, T, C, Fh):
        (Hi, Wi), k = _CONV_IMAGE, _CONV_K
        inputs = {"x": rng.standard_normal((N, T, C, Hi, Wi) if sequence else (N, C, Hi, Wi))}
        inputs.update({s: rng.standard_normal((N, Fh, Hi, Wi)) for s in states})
        inputs["Wx"] = rng.standard_normal((4 * Fh, C, k, k)) / np.sqrt(C * k * k)
        inputs["Wh"] = rng.standard_normal((4 * Fh, Fh, k, k)) / np.sqrt(Fh * k * k)
        inputs["b"] = 0.5 * rng.standard_normal(4 * Fh)
        return inputs, {}

    def run(consts, **arrays):
        *outputs, cache = forward(**arrays)
        return tuple(outputs), cache

    return OpSpec(name, make, run, backward)


def _conv_make(rng, N, T, C, Fo):
    return {"x": rng.standard_normal((N, C, *_CONV_IMAGE)),
            "W": rng.standard_normal((Fo, C, _CONV_K, _CONV_K))}, {}


def _conv_forward(consts, **arrays):
    out, cache = F.conv2d_same_forward(**arrays)
    return (out,), cache


def _signed(rng, shape, scale):
    """Entries of magnitude in [0.5, 1.5] * scale with random signs: none near zero."""
    return scale * rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 1.5, size=shape)


def _attention_make(rng, N, T, D, H):
    """Attention checks over S = T + 2 keys of size Hk = D, attention size A = H + 1 and
    query size Hq = A + 1, with a mask that allows at least three positions per row.

    At least three positions and two features, keys spread apart along every feature
    and no weight entry near zero keep every gradient of the score path well above the
    ~1e-11 rounding of the centred differences; see
    docs/derivations/attention.md#checking-the-gradients.
    """
    S, Hk, A = T + 2, D, H + 1
    Hq = A + 1
    grid = np.linspace(-1.5, 1.5, S)
    keys = rng.permuted(np.broadcast_to(grid[None, :, None], (N, S, Hk)), axis=1)
    inputs = {"query": rng.standard_normal((N, Hq)),
              "keys": keys + rng.uniform(-0.1, 0.1, size=(N, S, Hk)),
              "Wq": _signed(rng, (Hq, A), 0.5 / np.sqrt(Hq)),
              "Wk": _signed(rng, (Hk, A), 1 / np.sqrt(Hk)),
              "v": _signed(rng, A, 1.5 / np.sqrt(A))}
    order = rng.permuted(np.tile(np.arange(S), (N, 1)), axis=1)  # 3 random positions stay
    return inputs, {"mask": (order < 3) | (rng.random((N, S)) < 0.5)}


def _attention_forward(consts, **arrays):
    xp = backend.get_array_module(arrays["query"])
    context, weights, cache = F.additive_attention_forward(**arrays,
                                                           mask=xp.asarray(consts["mask"]))
    return (context, weights), cache  # both outputs carry a gradient: dcontext, dweights


def _spec_table():
    specs = [
        _recurrent_spec("rnn_step", 1, ["h_prev"], F.rnn_step_forward,
                        lambda d, cache: F.rnn_step_backward(d[0], cache), sequence=False),
        _recurrent_spec("rnn", 1, ["h0"], F.rnn_forward,
                        lambda d, cache: F.rnn_backward(d[0], cache)),
        _recurrent_spec("lstm_step", 4, ["h_prev", "c_prev"], F.lstm_step_forward,
                        lambda d, cache: F.lstm_step_backward(d[0], d[1], cache), sequence=False),
        _recurrent_spec("lstm", 4, ["h0", "c0"], F.lstm_forward,
                        lambda d, cache: F.lstm_backward(d[0], cache, dc_last=d[1])),
        _recurrent_spec("gru_step", 3, ["h_prev"], F.gru_step_forward,
                        lambda d, cache: F.gru_step_backward(d[0], cache), ("bx", "bh"),
                        sequence=False),
        _recurrent_spec("gru", 3, ["h0"], F.gru_forward,
                        lambda d, cache: F.gru_backward(d[0], cache), ("bx", "bh")),
        OpSpec("embedding", _embedding_make, _embedding_forward,
               lambda d, cache: (F.embedding_backward(d[0], cache),)),
        OpSpec("affine", _affine_make, _affine_forward,
               lambda d, cache: F.affine_backward(d[0], cache)),
        OpSpec("softmax_cross_entropy", _loss_make, _loss_forward,
               lambda d, dlogits: (d[0] * dlogits,)),
        OpSpec("additive_attention", _attention_make, _attention_forward,
               lambda d, cache: F.additive_attention_backward(d[0], cache, dweights=d[1])),
        _convlstm_spec("convlstm_step", ["h_prev", "c_prev"], F.convlstm_step_forward,
                       lambda d, cache: F.convlstm_step_backward(d[0], d[1], cache),
                       sequence=False),
        _convlstm_spec("convlstm", ["h0", "c0"], F.convlstm_forward,
                       lambda d, cache: F.convlstm_backward(d[0], cache, dc_last=d[1])),
        OpSpec("conv2d_same", _conv_make, _conv_forward,
               lambda d, cache: F.conv2d_same_backward(d[0], cache)),
        OpSpec("im2col",  # its backward is col2im
               lambda rng, N, T, C, H: ({"x": rng.standard_normal((N, C, *_CONV_IMAGE))}, {}),
               lambda consts, x: ((F.im2col(x, _CONV_K),), x.shape),
               lambda d, x_shape: (F.col2im(d[0], x_shape, _CONV_K),)),
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

_STEPS = {  # cell -> (step forward, step backward, number of state arrays)
    "rnn": (F.rnn_step_forward, F.rnn_step_backward, 1),
    "lstm": (F.lstm_step_forward, F.lstm_step_backward, 2),
    "gru": (F.gru_step_forward, F.gru_step_backward, 1),
}


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
    if cell not in _STEPS:
        raise ValueError(f"gradient_norms_through_time: cell must be one of "
                         f"{', '.join(_STEPS)}, got {cell!r}")
    forward, backward, n_state = _STEPS[cell]
    N, T = x.shape[0], x.shape[1]
    H = weights[1].shape[0]
    state = tuple(np.zeros((N, H), dtype=x.dtype) for _ in range(n_state))
    caches = []
    for t in range(T):
        *state, cache = forward(x[:, t], *state, *weights)
        caches.append(cache)
    dstate = (dh_last,) + tuple(np.zeros_like(dh_last) for _ in range(n_state - 1))
    norms = [np.linalg.norm(dh_last)]
    for cache in reversed(caches):
        grads = backward(*dstate, cache)  # (dx, dh_prev[, dc_prev], dW...)
        dstate = grads[1:1 + n_state]
        norms.append(np.linalg.norm(dstate[0]))
    return np.array(norms), caches
