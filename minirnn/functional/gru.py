"""GRU in the PyTorch/cuDNN form: one step, and a whole sequence with backprop through time.

Gates are stacked r, z, n; the reset gate multiplies the recurrent product *after*
``h_{t-1} Wh_n`` (so all three recurrent products are one ``h_{t-1} Wh``):

    ax_t = x_t Wx + bx                         (N, 3H) input part
    ah_t = h_{t-1} Wh + bh                     (N, 3H) recurrent part
    r_t  = sigmoid(ax_t[:, 0:H]  + ah_t[:, 0:H])     reset gate
    z_t  = sigmoid(ax_t[:, H:2H] + ah_t[:, H:2H])    update gate
    hn_t = ah_t[:, 2H:3H]                            recurrent part of the candidate
    n_t  = tanh(ax_t[:, 2H:3H] + r_t * hn_t)         candidate
    h_t  = (1 - z_t) * n_t + z_t * h_{t-1}

Derivation of the backward pass: ``docs/derivations/gru.md``. The cell's forward and
backward live once each and are shared by the step functions and the sequence loop.
"""

from __future__ import annotations

from typing import NamedTuple

from ..backend import get_array_module
from . import _checks as check
from .activations import sigmoid


def _gru_cell_forward(ax, ah, h_prev, gates, h):
    """One GRU cell from its two pre-activation halves.

    ax, ah: (N, 3H) input and recurrent parts (``ah`` is left unchanged);
    h_prev: (N, H). Writes [r, z, n] into gates (N, 3H) and h_t into h (N, H).
    """
    ### BEGIN SOLUTION
    xp = get_array_module(ax)
    H = h_prev.shape[1]
    rz = gates[:, :2 * H]
    xp.add(ax[:, :2 * H], ah[:, :2 * H], out=rz)
    sigmoid(rz, out=rz)
    r, z, n = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:]
    xp.multiply(r, ah[:, 2 * H:], out=n)
    n += ax[:, 2 * H:]
    xp.tanh(n, out=n)
    xp.subtract(h_prev, n, out=h)  # h = n + z * (h_prev - n)
    h *= z
    h += n
    ### END SOLUTION


def _gru_cell_backward(dh, gates, hn, h_prev, dah, dan):
    """Gradients through one GRU cell.

    dh: (N, H) total gradient reaching h_t; gates: (N, 3H) [r, z, n];
    hn: (N, H) recurrent part of the candidate; h_prev: (N, H).
    Writes dL/dah_t into dah (N, 3H) and the candidate's input-side gradient
    dL/dax_t[:, 2H:] into dan (N, H) (the r and z columns of dL/dax_t equal those
    of dL/dah_t). Returns the part of dL/dh_{t-1} that skips ``Wh`` (dh * z).
    """
    ### BEGIN SOLUTION
    xp = get_array_module(dh)
    H = h_prev.shape[1]
    r, z, n = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:]
    xp.multiply(dh * (1 - z), 1 - n * n, out=dan)                 # dn * tanh'
    xp.multiply(dan * hn, r * (1 - r), out=dah[:, :H])            # dr * sigmoid'
    xp.multiply(dh * (h_prev - n), z * (1 - z), out=dah[:, H:2 * H])  # dz * sigmoid'
    xp.multiply(dan, r, out=dah[:, 2 * H:])                       # through r * hn
    return dh * z
    ### END SOLUTION


def _gru_weights(op, Wx, Wh, bx, bh):
    D, H = check.gate_weights(op, Wx, Wh, 3)
    check.bias(op, "bx", bx, 3 * H, 3)
    check.bias(op, "bh", bh, 3 * H, 3)
    return D, H


class GRUStepCache(NamedTuple):
    x: object       # (N, D)
    h_prev: object  # (N, H)
    Wx: object      # (D, 3H)
    Wh: object      # (H, 3H)
    gates: object   # (N, 3H) r, z, n
    hn: object      # (N, H) h_prev Wh_n + bh_n


class GRUCache(NamedTuple):
    x_tm: object   # (T*N, D) the inputs, time-major
    h0: object     # (N, H)
    Wx: object     # (D, 3H)
    Wh: object     # (H, 3H)
    gates: object  # (T, N, 3H) r, z, n of every step
    hns: object    # (T, N, H) every h_{t-1} Wh_n + bh_n
    hs: object     # (T, N, H) every h_t


def gru_step_forward(x, h_prev, Wx, Wh, bx, bh):
    """One GRU step (PyTorch/cuDNN form, reset applied after ``h_prev @ Wh_n``).

    Inputs:
      x: (N, D); h_prev: (N, H); Wx: (D, 3H); Wh: (H, 3H); bx: (3H,); bh: (3H,),
      gates in the order r, z, n.
    Returns:
      h: (N, H) next hidden state; cache: GRUStepCache for ``gru_step_backward``.
    Equations: docs/derivations/gru.md#forward
    """
    op = "gru_step_forward"
    N, D, H = check.step_inputs(op, x, h_prev, Wx, Wh, 3)
    _gru_weights(op, Wx, Wh, bx, bh)
    check.same_dtype(op, x=x, h_prev=h_prev, Wx=Wx, Wh=Wh, bx=bx, bh=bh)
    xp = get_array_module(x, h_prev, Wx, Wh, bx, bh)
    ### BEGIN SOLUTION
    ax = x @ Wx + bx       # (N, 3H)
    ah = h_prev @ Wh + bh  # (N, 3H)
    gates, h = xp.empty_like(ax), xp.empty_like(h_prev)
    _gru_cell_forward(ax, ah, h_prev, gates, h)
    return h, GRUStepCache(x, h_prev, Wx, Wh, gates, ah[:, 2 * H:])
    ### END SOLUTION


def gru_step_backward(dh, cache):
    """Backward pass of one GRU step.

    Inputs:
      dh: (N, H) gradient with respect to h; cache: from ``gru_step_forward``.
    Returns:
      dx (N, D), dh_prev (N, H), dWx (D, 3H), dWh (H, 3H), dbx (3H,), dbh (3H,).
    Equations: docs/derivations/gru.md#one-step
    """
    ### BEGIN SOLUTION
    x, h_prev, Wx, Wh, gates, hn = cache
    check.upstream("gru_step_backward", "dh", dh, h_prev.shape, ("N", "H"), h_prev.dtype)
    xp = get_array_module(dh, gates)
    H = h_prev.shape[1]
    dah, dax = xp.empty_like(gates), xp.empty_like(gates)
    dh_prev = _gru_cell_backward(dh, gates, hn, h_prev, dah, dax[:, 2 * H:])
    dax[:, :2 * H] = dah[:, :2 * H]
    dh_prev += dah @ Wh.T
    return (dax @ Wx.T, dh_prev, x.T @ dax, h_prev.T @ dah,
            dax.sum(axis=0), dah.sum(axis=0))
    ### END SOLUTION


def gru_forward(x, h0, Wx, Wh, bx, bh):
    """A GRU over a whole sequence.

    Inputs:
      x: (N, T, D); h0: (N, H); Wx: (D, 3H); Wh: (H, 3H); bx: (3H,); bh: (3H,).
    Returns:
      hs: (N, T, H) hidden states (a time-major buffer seen through a transpose);
      cache: GRUCache for ``gru_backward``.
    Equations: docs/derivations/gru.md#forward
    """
    op = "gru_forward"
    N, T, D, H = check.sequence_inputs(op, x, h0, Wx, Wh, 3)
    _gru_weights(op, Wx, Wh, bx, bh)
    check.same_dtype(op, x=x, h0=h0, Wx=Wx, Wh=Wh, bx=bx, bh=bh)
    xp = get_array_module(x, h0, Wx, Wh, bx, bh)

    ### BEGIN SOLUTION
    x_tm = x.transpose(1, 0, 2).reshape(T * N, D)  # time-major so each step is contiguous
    ax = x_tm @ Wx
    ax += bx
    ax = ax.reshape(T, N, 3 * H)  # (T, N, 3H): input part of every step
    gates = xp.empty_like(ax)
    hns = xp.empty((T, N, H), dtype=x.dtype)
    hs = xp.empty((T, N, H), dtype=x.dtype)
    ah = xp.empty((N, 3 * H), dtype=x.dtype)
    h = h0
    for t in range(T):
        xp.matmul(h, Wh, out=ah)  # the only product left in the loop
        ah += bh
        hns[t] = ah[:, 2 * H:]
        _gru_cell_forward(ax[t], ah, h, gates[t], hs[t])
        h = hs[t]
    cache = GRUCache(x_tm, h0, Wx, Wh, gates, hns, hs)
    return hs.transpose(1, 0, 2), cache
    ### END SOLUTION


def gru_backward(dhs, cache):
    """Backpropagation through time for ``gru_forward``.

    Inputs:
      dhs: (N, T, H) gradient with respect to every hidden state; cache: from ``gru_forward``.
    Returns:
      dx (N, T, D), dh0 (N, H), dWx (D, 3H), dWh (H, 3H), dbx (3H,), dbh (3H,).
    Equations: docs/derivations/gru.md#backward-through-time
    """
    ### BEGIN SOLUTION
    x_tm, h0, Wx, Wh, gates, hns, hs = cache
    T, N, H = hs.shape
    D = Wx.shape[0]
    check.upstream("gru_backward", "dhs", dhs, (N, T, H), ("N", "T", "H"), hs.dtype)
    xp = get_array_module(dhs, hs)

    dah = xp.empty_like(gates)  # (T, N, 3H): dL/dah_t for every step
    dax = xp.empty_like(gates)  # (T, N, 3H): dL/dax_t; only the n columns differ from dah
    dh = xp.zeros_like(h0)      # gradient reaching h_t from step t+1
    for t in range(T - 1, -1, -1):
        dh += dhs[:, t]
        h_prev = hs[t - 1] if t > 0 else h0
        skip = _gru_cell_backward(dh, gates[t], hns[t], h_prev, dah[t], dax[t, :, 2 * H:])
        dh = dah[t] @ Wh.T
        dh += skip
    dax[:, :, :2 * H] = dah[:, :, :2 * H]

    dah2, dax2 = dah.reshape(T * N, 3 * H), dax.reshape(T * N, 3 * H)
    dWh = h0.T @ dah[0] + hs[:-1].reshape((T - 1) * N, H).T @ dah2[N:]
    dWx = x_tm.T @ dax2
    dx = (dax2 @ Wx.T).reshape(T, N, D).transpose(1, 0, 2)
    return dx, dh, dWx, dWh, dax2.sum(axis=0), dah2.sum(axis=0)
    ### END SOLUTION
