"""LSTM: one step, and a whole sequence with backprop through time.

Gates are stacked in the order i, f, g, o (PyTorch/Keras), so ``Wx`` is ``(D, 4H)``:

    a_t  = x_t Wx + h_{t-1} Wh + b                  (N, 4H)
    i_t  = sigmoid(a_t[:, 0:H])      input gate
    f_t  = sigmoid(a_t[:, H:2H])     forget gate
    g_t  = tanh(a_t[:, 2H:3H])       candidate cell
    o_t  = sigmoid(a_t[:, 3H:4H])    output gate
    c_t  = f_t * c_{t-1} + i_t * g_t
    tc_t = tanh(c_t)
    h_t  = o_t * tc_t

Derivation of the backward pass: ``docs/derivations/lstm.md``. The cell's forward and
backward live once each (``_lstm_cell_forward`` / ``_lstm_cell_backward``) and are
shared by the step functions and the sequence loop.
"""

from __future__ import annotations

from typing import NamedTuple

from ..backend import get_array_module
from . import _checks as check


def _gate_affine(H, dtype, xp):
    """``(scale, shift)``, each (4H,), so that ``shift + scale * tanh(scale * a)`` gives all
    four gates at once: sigmoid(a) = 1/2 + 1/2 tanh(a/2) for i, f, o and tanh(a) for g.

    One tanh over whole contiguous rows is much faster than four operations on column
    slices of them; see docs/derivations/lstm.md#sigmoid.
    """
    half = xp.full(H, 0.5, dtype=dtype)
    scale = xp.concatenate([half, half, xp.ones(H, dtype=dtype), half])
    shift = xp.concatenate([half, half, xp.zeros(H, dtype=dtype), half])
    return scale, shift


def _lstm_cell_forward(a, c_prev, c, tc, h, scale, shift):
    """Gates from pre-activations, in place.

    a: (N, 4H) pre-activations, overwritten with the gate values [i, f, g, o];
    c_prev: (N, H); scale, shift: from ``_gate_affine``.
    Writes c, tc = tanh(c) and h (each (N, H)) into the given buffers.
    """
    ### BEGIN SOLUTION
    xp = get_array_module(a)
    H = c_prev.shape[1]
    a *= scale                 # i, f, o: sigmoid(a) = 1/2 + 1/2 tanh(a/2); g: tanh(a)
    xp.tanh(a, out=a)
    a *= scale
    a += shift
    i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
    xp.multiply(f, c_prev, out=c)
    c += i * g
    xp.tanh(c, out=tc)
    xp.multiply(o, tc, out=h)
    ### END SOLUTION


def _lstm_cell_backward(dh, dc, gates, c_prev, tc, da, deriv):
    """Gradients through one cell, given dL/dh_t and dL/dc_t from above.

    dh, dc: (N, H) total gradients reaching h_t and c_t (dc is updated in place);
    gates: (N, 4H) [i, f, g, o]; c_prev, tc: (N, H); deriv: (N, 4H) scratch buffer.
    Writes dL/da_t into da (N, 4H) and returns dL/dc_{t-1} (N, H).
    """
    ### BEGIN SOLUTION
    xp = get_array_module(dh)
    H = tc.shape[1]
    i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    dc += dh * o * (1 - tc * tc)                  # through h_t = o_t tanh(c_t)
    xp.multiply(dc, g, out=da[:, :H])             # di
    xp.multiply(dc, c_prev, out=da[:, H:2 * H])   # df
    xp.multiply(dc, i, out=da[:, 2 * H:3 * H])    # dg
    xp.multiply(dh, tc, out=da[:, 3 * H:])        # do
    # Through the activations, over whole rows: sigmoid' = s (1 - s) for i, f, o ...
    xp.subtract(1, gates, out=deriv)
    deriv *= gates
    # ... and tanh' = 1 - g^2 for the g block.
    dg = deriv[:, 2 * H:3 * H]
    xp.multiply(g, g, out=dg)
    xp.subtract(1, dg, out=dg)
    da *= deriv
    return dc * f
    ### END SOLUTION


class LSTMStepCache(NamedTuple):
    x: object       # (N, D)
    h_prev: object  # (N, H)
    c_prev: object  # (N, H)
    Wx: object      # (D, 4H)
    Wh: object      # (H, 4H)
    gates: object   # (N, 4H) i, f, g, o
    tc: object      # (N, H) tanh(c)


class LSTMCache(NamedTuple):
    x_tm: object   # (T*N, D) the inputs, time-major
    h0: object     # (N, H)
    c0: object     # (N, H)
    Wx: object     # (D, 4H)
    Wh: object     # (H, 4H)
    gates: object  # (T, N, 4H) i, f, g, o of every step
    cs: object     # (T, N, H) every c_t
    tcs: object    # (T, N, H) every tanh(c_t)
    hs: object     # (T, N, H) every h_t


def lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b):
    """One LSTM step.

    Inputs:
      x: (N, D); h_prev: (N, H); c_prev: (N, H);
      Wx: (D, 4H); Wh: (H, 4H); b: (4H,), gates in the order i, f, g, o.
    Returns:
      h: (N, H) next hidden state; c: (N, H) next cell state;
      cache: LSTMStepCache for ``lstm_step_backward``.
    Equations: docs/derivations/lstm.md#forward
    """
    op = "lstm_step_forward"
    N, D, H = check.step_inputs(op, x, h_prev, Wx, Wh, 4)
    check.float_array(op, "c_prev", c_prev, 2, "N, H")
    check.shape_is(op, "c_prev", c_prev, (N, H), ("N", "H"))
    check.bias(op, "b", b, 4 * H, 4)
    check.same_dtype(op, x=x, h_prev=h_prev, c_prev=c_prev, Wx=Wx, Wh=Wh, b=b)
    xp = get_array_module(x, h_prev, c_prev, Wx, Wh, b)
    ### BEGIN SOLUTION
    gates = x @ Wx + h_prev @ Wh + b  # (N, 4H) pre-activations, then gate values
    h, c, tc = (xp.empty_like(h_prev) for _ in range(3))
    _lstm_cell_forward(gates, c_prev, c, tc, h, *_gate_affine(H, x.dtype, xp))
    return h, c, LSTMStepCache(x, h_prev, c_prev, Wx, Wh, gates, tc)
    ### END SOLUTION


def lstm_step_backward(dh, dc, cache):
    """Backward pass of one LSTM step.

    Inputs:
      dh: (N, H) gradient with respect to h; dc: (N, H) gradient with respect to c
      (from the next step's cell, or zeros); cache: from ``lstm_step_forward``.
    Returns:
      dx (N, D), dh_prev (N, H), dc_prev (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).
    Equations: docs/derivations/lstm.md#one-step
    """
    ### BEGIN SOLUTION
    x, h_prev, c_prev, Wx, Wh, gates, tc = cache
    op = "lstm_step_backward"
    check.upstream(op, "dh", dh, tc.shape, ("N", "H"), tc.dtype)
    check.upstream(op, "dc", dc, tc.shape, ("N", "H"), tc.dtype)
    xp = get_array_module(dh, dc, gates)
    da = xp.empty_like(gates)
    dc_prev = _lstm_cell_backward(dh, dc.copy(), gates, c_prev, tc, da, xp.empty_like(gates))
    return da @ Wx.T, da @ Wh.T, dc_prev, x.T @ da, h_prev.T @ da, da.sum(axis=0)
    ### END SOLUTION


def lstm_forward(x, h0, c0, Wx, Wh, b):
    """An LSTM over a whole sequence.

    Inputs:
      x: (N, T, D); h0: (N, H); c0: (N, H);
      Wx: (D, 4H); Wh: (H, 4H); b: (4H,), gates i, f, g, o.
    Returns:
      hs: (N, T, H) hidden states (a time-major buffer seen through a transpose);
      c_last: (N, H) the cell state after the last step (to carry into the next batch);
      cache: LSTMCache for ``lstm_backward``.
    Equations: docs/derivations/lstm.md#forward
    """
    op = "lstm_forward"
    N, T, D, H = check.sequence_inputs(op, x, h0, Wx, Wh, 4)
    check.float_array(op, "c0", c0, 2, "N, H")
    check.shape_is(op, "c0", c0, (N, H), ("N", "H"))
    check.bias(op, "b", b, 4 * H, 4)
    check.same_dtype(op, x=x, h0=h0, c0=c0, Wx=Wx, Wh=Wh, b=b)
    xp = get_array_module(x, h0, c0, Wx, Wh, b)

    ### BEGIN SOLUTION
    x_tm = x.transpose(1, 0, 2).reshape(T * N, D)  # time-major so each step is contiguous
    gates = x_tm @ Wx
    gates += b
    gates = gates.reshape(T, N, 4 * H)  # (T, N, 4H): input part of every a_t
    cs, tcs, hs = (xp.empty((T, N, H), dtype=x.dtype) for _ in range(3))
    hWh = xp.empty((N, 4 * H), dtype=x.dtype)  # one buffer for every step's product
    scale, shift = _gate_affine(H, x.dtype, xp)
    h, c = h0, c0
    for t in range(T):
        gates[t] += xp.matmul(h, Wh, out=hWh)  # the only product left in the loop
        _lstm_cell_forward(gates[t], c, cs[t], tcs[t], hs[t], scale, shift)
        h, c = hs[t], cs[t]
    cache = LSTMCache(x_tm, h0, c0, Wx, Wh, gates, cs, tcs, hs)
    return hs.transpose(1, 0, 2), cs[T - 1].copy(), cache
    ### END SOLUTION


def lstm_backward(dhs, cache, dc_last=None):
    """Backpropagation through time for ``lstm_forward``.

    Inputs:
      dhs: (N, T, H) gradient with respect to every hidden state;
      cache: from ``lstm_forward``;
      dc_last: (N, H) gradient with respect to ``c_last``, or None for zeros.
    Returns:
      dx (N, T, D), dh0 (N, H), dc0 (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).
    Equations: docs/derivations/lstm.md#backward-through-time
    """
    ### BEGIN SOLUTION
    x_tm, h0, c0, Wx, Wh, gates, cs, tcs, hs = cache
    T, N, H = hs.shape
    D = Wx.shape[0]
    op = "lstm_backward"
    check.upstream(op, "dhs", dhs, (N, T, H), ("N", "T", "H"), hs.dtype)
    xp = get_array_module(dhs, hs)
    if dc_last is None:
        dc = xp.zeros_like(c0)
    else:
        check.upstream(op, "dc_last", dc_last, (N, H), ("N", "H"), hs.dtype)
        dc = dc_last.copy()

    da = xp.empty_like(gates)  # (T, N, 4H): dL/da_t for every step
    dh = xp.zeros_like(h0)     # gradient reaching h_t from step t+1
    WhT = xp.ascontiguousarray(Wh.T)  # BLAS runs this product faster on a contiguous copy
    deriv = xp.empty((N, 4 * H), dtype=hs.dtype)  # scratch for the activations' slopes
    for t in range(T - 1, -1, -1):
        dh += dhs[:, t]
        c_prev = cs[t - 1] if t > 0 else c0
        dc = _lstm_cell_backward(dh, dc, gates[t], c_prev, tcs[t], da[t], deriv)
        xp.matmul(da[t], WhT, out=dh)

    da2 = da.reshape(T * N, 4 * H)
    dWh = h0.T @ da[0] + hs[:-1].reshape((T - 1) * N, H).T @ da2[N:]
    dWx = x_tm.T @ da2
    dx = (da2 @ Wx.T).reshape(T, N, D).transpose(1, 0, 2)
    return dx, dh, dc, dWx, dWh, da2.sum(axis=0)
    ### END SOLUTION
