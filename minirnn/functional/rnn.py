"""Vanilla (Elman) RNN with tanh: one step, and a whole sequence with backprop through time.

    a_t = x_t Wx + h_{t-1} Wh + b
    h_t = tanh(a_t)

Derivation of the backward pass: ``docs/derivations/rnn.md``.
"""

from __future__ import annotations

from typing import NamedTuple

from ..backend import get_array_module
from . import _checks as check


class RNNStepCache(NamedTuple):
    x: object       # (N, D)
    h_prev: object  # (N, H)
    Wx: object      # (D, H)
    Wh: object      # (H, H)
    h: object       # (N, H)


class RNNCache(NamedTuple):
    x_tm: object  # (T*N, D) the inputs, time-major
    h0: object    # (N, H)
    Wx: object    # (D, H)
    Wh: object    # (H, H)
    hs: object    # (T, N, H) every h_t, time-major


def rnn_step_forward(x, h_prev, Wx, Wh, b):
    """One tanh RNN step.

    Inputs:
      x: (N, D) inputs at this step; h_prev: (N, H) previous hidden state;
      Wx: (D, H); Wh: (H, H); b: (H,).
    Returns:
      h: (N, H) next hidden state ``tanh(x Wx + h_prev Wh + b)``;
      cache: RNNStepCache for ``rnn_step_backward``.
    Equations: docs/derivations/rnn.md#forward
    """
    op = "rnn_step_forward"
    N, D, H = check.step_inputs(op, x, h_prev, Wx, Wh, 1)
    check.bias(op, "b", b, H, 1)
    check.same_dtype(op, x=x, h_prev=h_prev, Wx=Wx, Wh=Wh, b=b)
    xp = get_array_module(x, h_prev, Wx, Wh, b)
    ### BEGIN SOLUTION
    h = xp.tanh(x @ Wx + h_prev @ Wh + b)
    return h, RNNStepCache(x, h_prev, Wx, Wh, h)
    ### END SOLUTION


def rnn_step_backward(dh, cache):
    """Backward pass of one tanh RNN step.

    Inputs:
      dh: (N, H) gradient of the loss with respect to the step's output h;
      cache: from ``rnn_step_forward``.
    Returns:
      dx (N, D), dh_prev (N, H), dWx (D, H), dWh (H, H), db (H,).
    Equations: docs/derivations/rnn.md#one-step
    """
    ### BEGIN SOLUTION
    x, h_prev, Wx, Wh, h = cache
    check.upstream("rnn_step_backward", "dh", dh, h.shape, ("N", "H"), h.dtype)
    da = dh * (1 - h * h)  # tanh'(a) = 1 - h^2
    return da @ Wx.T, da @ Wh.T, x.T @ da, h_prev.T @ da, da.sum(axis=0)
    ### END SOLUTION


def rnn_forward(x, h0, Wx, Wh, b):
    """A tanh RNN over a whole sequence.

    Inputs:
      x: (N, T, D) input sequence; h0: (N, H) initial hidden state;
      Wx: (D, H); Wh: (H, H); b: (H,).
    Returns:
      hs: (N, T, H) hidden states for every step (a time-major buffer seen through a
          transpose, so no copy is made);
      cache: RNNCache for ``rnn_backward``.
    The inputs of all T steps are projected with one matrix product before the loop;
    the loop keeps only the recurrent product and the tanh.
    Equations: docs/derivations/rnn.md#forward
    """
    op = "rnn_forward"
    N, T, D, H = check.sequence_inputs(op, x, h0, Wx, Wh, 1)
    check.bias(op, "b", b, H, 1)
    check.same_dtype(op, x=x, h0=h0, Wx=Wx, Wh=Wh, b=b)
    xp = get_array_module(x, h0, Wx, Wh, b)

    ### BEGIN SOLUTION
    x_tm = x.transpose(1, 0, 2).reshape(T * N, D)  # time-major so each step is contiguous
    a = x_tm @ Wx
    a += b
    hs = a.reshape(T, N, H)  # (T, N, H): x_t Wx + b for every t; h_t overwrites a_t in place
    hWh = xp.empty((N, H), dtype=x.dtype)  # one buffer for every step's product
    h = h0
    for t in range(T):
        hs[t] += xp.matmul(h, Wh, out=hWh)
        h = xp.tanh(hs[t], out=hs[t])
    cache = RNNCache(x_tm, h0, Wx, Wh, hs)
    return hs.transpose(1, 0, 2), cache
    ### END SOLUTION


def rnn_backward(dhs, cache):
    """Backpropagation through time for ``rnn_forward``.

    Inputs:
      dhs: (N, T, H) gradient of the loss with respect to every hidden state;
      cache: from ``rnn_forward``.
    Returns:
      dx (N, T, D), dh0 (N, H), dWx (D, H), dWh (H, H), db (H,).
    The weight gradients are formed after the loop with one matrix product over all
    steps. Equations: docs/derivations/rnn.md#backward-through-time
    """
    ### BEGIN SOLUTION
    x_tm, h0, Wx, Wh, hs = cache
    T, N, H = hs.shape
    D = Wx.shape[0]
    check.upstream("rnn_backward", "dhs", dhs, (N, T, H), ("N", "T", "H"), hs.dtype)
    xp = get_array_module(dhs, hs)

    da = xp.empty_like(hs)  # (T, N, H): dL/da_t for every step
    dh = xp.zeros_like(h0)  # gradient reaching h_t from step t+1
    for t in range(T - 1, -1, -1):
        dh += dhs[:, t]
        xp.multiply(dh, 1 - hs[t] * hs[t], out=da[t])
        dh = da[t] @ Wh.T

    da2 = da.reshape(T * N, H)
    dWh = h0.T @ da[0] + hs[:-1].reshape((T - 1) * N, H).T @ da2[N:]
    dWx = x_tm.T @ da2
    dx = (da2 @ Wx.T).reshape(T, N, D).transpose(1, 0, 2)
    return dx, dh, dWx, dWh, da2.sum(axis=0)
    ### END SOLUTION
