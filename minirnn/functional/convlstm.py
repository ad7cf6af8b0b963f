"""Conv-LSTM: the LSTM with its two matrix products replaced by same-padding convolutions.

The cell of Shi et al. (2015), without peephole terms, gates stacked i, f, g, o along
the channel axis. ``Wx`` is ``(4F, C, k, k)``, ``Wh`` is ``(4F, F, k, k)``, k odd:

    a_t  = conv(x_t, Wx) + conv(h_{t-1}, Wh) + b    (N, 4F, H, W)
    i_t, f_t, g_t, o_t, c_t, tc_t, h_t              exactly as in lstm.py, per pixel

Only ``a_t`` mixes neighbouring pixels. From ``a_t`` on, every pixel (n, r, s) runs
the ordinary LSTM cell on its own 4F gate values. So inside, every image is kept
channels-last, ``(N, H, W, F)``, and seen as a matrix of ``P = N*H*W`` rows, one per
pixel: the gate maps become ``(P, 4F)`` and the cell is ``_cell_forward`` /
``_cell_backward`` below, the LSTM's equations written once more for these rows. The
Conv-LSTM keeps this copy of its own (short, and written plainly rather than with the
LSTM's one-tanh trick) so that it works in every classroom workspace: the LSTM
assignment hands out ``lstm.py`` with its cell removed. The convolutions are im2col plus
one matrix product (conv.py), whose rows are the same pixels.

Derivation of the backward pass: ``docs/derivations/convlstm.md``.
"""

from __future__ import annotations

from typing import NamedTuple

from ..backend import get_array_module
from . import _checks as check
from .conv import _col2im_nhwc, _im2col_nhwc, _kernel_size
from .activations import sigmoid

_IMG = ("N", "F", "H", "W")


def _conv_gate_weights(op, Wx, Wh):
    """Check ``Wx (4F, C, k, k)`` against ``Wh (4F, F, k, k)``; return ``(C, F, k)``."""
    check.float_array(op, "Wx", Wx, 4, "4F, C, k, k")
    check.float_array(op, "Wh", Wh, 4, "4F, F, k, k")
    F = Wh.shape[1]
    k = _kernel_size(op, "Wh", Wh)
    if Wh.shape[0] != 4 * F:
        raise ValueError(f"{op}: Wh must have shape (4F, F, k, k) = ({4 * F}, {F}, {k}, {k}), "
                         f"got {tuple(Wh.shape)}")
    kx = _kernel_size(op, "Wx", Wx)
    if Wx.shape[0] != 4 * F:
        raise ValueError(f"{op}: Wx must have 4F = {4 * F} output channels to match Wh "
                         f"{tuple(Wh.shape)}, got {tuple(Wx.shape)}")
    if kx != k:
        raise ValueError(f"{op}: Wx must have the kernel size of Wh, k = {k}, got "
                         f"k = {kx} in shape {tuple(Wx.shape)}")
    return Wx.shape[1], F, k


def _image_inputs(op, x, C, Wx):
    if x.shape[-3] != C:
        raise ValueError(f"{op}: x must have C = {C} channels to match Wx {tuple(Wx.shape)}, "
                         f"got x of shape {tuple(x.shape)}")


def _state(op, name, a, shape):
    check.float_array(op, name, a, 4, "N, F, H, W")
    check.shape_is(op, name, a, shape, _IMG)


def _bias(op, b, F):
    check.float_array(op, "b", b, 1, "4F")
    check.shape_is(op, "b", b, (4 * F,), ("4F",))


def _rows(a):
    """(N, F, H, W) -> a new contiguous (N*H*W, F) array, one row per pixel."""
    return a.transpose(0, 2, 3, 1).copy().reshape(-1, a.shape[1])


def _images(rows, N, H, W):
    """(N*H*W, F) rows -> (N, F, H, W), a view."""
    return rows.reshape(N, H, W, -1).transpose(0, 3, 1, 2)


def _cell_forward(a, c_prev, c, tc, h):
    """The LSTM cell at every pixel.

    a: (P, 4F) pre-activations, overwritten with the gates [i, f, g, o];
    c_prev: (P, F). Writes c, tanh(c) and h (each (P, F)) into the given buffers.
    """
    xp = get_array_module(a)
    F = c_prev.shape[1]
    g = xp.tanh(a[:, 2 * F:3 * F])
    sigmoid(a, out=a)                     # i, f, o (and g's block, replaced next)
    a[:, 2 * F:3 * F] = g
    i, f, o = a[:, :F], a[:, F:2 * F], a[:, 3 * F:]
    c[...] = f * c_prev + i * g
    xp.tanh(c, out=tc)
    xp.multiply(o, tc, out=h)


def _cell_backward(dh, dc, gates, c_prev, tc, da):
    """Gradients through the cell at every pixel.

    dh, dc: (P, F) total gradients reaching h_t and c_t; gates: (P, 4F) [i, f, g, o];
    c_prev, tc: (P, F). Writes dL/da_t into da (P, 4F); returns dL/dc_{t-1} (P, F).
    """
    F = tc.shape[1]
    i, f, g, o = gates[:, :F], gates[:, F:2 * F], gates[:, 2 * F:3 * F], gates[:, 3 * F:]
    dc = dc + dh * o * (1 - tc * tc)          # through h_t = o_t tanh(c_t)
    da[:, :F] = dc * g * i * (1 - i)          # di * sigmoid'
    da[:, F:2 * F] = dc * c_prev * f * (1 - f)  # df * sigmoid'
    da[:, 2 * F:3 * F] = dc * i * (1 - g * g)   # dg * tanh'
    da[:, 3 * F:] = dh * tc * o * (1 - o)       # do * sigmoid'
    return dc * f


class ConvLSTMStepCache(NamedTuple):
    x_cols: object  # (N*H*W, C*k*k) im2col of x
    h_cols: object  # (N*H*W, F*k*k) im2col of h_prev
    c_prev: object  # (N*H*W, F)
    Wx: object      # (4F, C, k, k)
    Wh: object      # (4F, F, k, k)
    gates: object   # (N*H*W, 4F) i, f, g, o
    tc: object      # (N*H*W, F) tanh(c)
    size: tuple     # (N, H, W): the images the rows come from


class ConvLSTMCache(NamedTuple):
    x_cols: object   # (T*P, C*k*k) im2col of every x_t, time-major (P = N*H*W pixels)
    c0_rows: object  # (P, F)
    Wx: object       # (4F, C, k, k)
    Wh: object       # (4F, F, k, k)
    gates: object    # (T, P, 4F) i, f, g, o of every step
    cs: object       # (T, P, F) every c_t
    tcs: object      # (T, P, F) every tanh(c_t)
    hs: object       # (T, N, H, W, F) every h_t, channels-last
    h_cols: object   # (T, P, F*k*k) im2col of every h_{t-1}


def convlstm_step_forward(x, h_prev, c_prev, Wx, Wh, b):
    """One Conv-LSTM step.

    Inputs:
      x: (N, C, H, W); h_prev: (N, F, H, W); c_prev: (N, F, H, W);
      Wx: (4F, C, k, k); Wh: (4F, F, k, k), k odd; b: (4F,), gates i, f, g, o.
    Returns:
      h: (N, F, H, W) next hidden state; c: (N, F, H, W) next cell state;
      cache: ConvLSTMStepCache for ``convlstm_step_backward``.
    Equations: docs/derivations/convlstm.md#forward
    """
    op = "convlstm_step_forward"
    C, F, k = _conv_gate_weights(op, Wx, Wh)
    check.float_array(op, "x", x, 4, "N, C, H, W")
    _image_inputs(op, x, C, Wx)
    N, _, H, W = x.shape
    _state(op, "h_prev", h_prev, (N, F, H, W))
    _state(op, "c_prev", c_prev, (N, F, H, W))
    _bias(op, b, F)
    check.same_dtype(op, x=x, h_prev=h_prev, c_prev=c_prev, Wx=Wx, Wh=Wh, b=b)
    xp = get_array_module(x, h_prev, c_prev, Wx, Wh, b)

    x_cols = _im2col_nhwc(x.transpose(0, 2, 3, 1), k)       # (N*H*W, C*k*k)
    h_cols = _im2col_nhwc(h_prev.transpose(0, 2, 3, 1), k)  # (N*H*W, F*k*k)
    # (N*H*W, 4F): pre-activations, then gate values
    gates = x_cols @ Wx.reshape(4 * F, -1).T + h_cols @ Wh.reshape(4 * F, -1).T + b
    c_rows = _rows(c_prev)
    h, c, tc = (xp.empty_like(c_rows) for _ in range(3))
    _cell_forward(gates, c_rows, c, tc, h)
    cache = ConvLSTMStepCache(x_cols, h_cols, c_rows, Wx, Wh, gates, tc, (N, H, W))
    return _images(h, N, H, W), _images(c, N, H, W), cache


def convlstm_step_backward(dh, dc, cache):
    """Backward pass of one Conv-LSTM step.

    Inputs:
      dh: (N, F, H, W) gradient with respect to h; dc: (N, F, H, W) gradient with
      respect to c (from the next step's cell, or zeros); cache: from the forward pass.
    Returns:
      dx (N, C, H, W), dh_prev (N, F, H, W), dc_prev (N, F, H, W),
      dWx (4F, C, k, k), dWh (4F, F, k, k), db (4F,).
    Equations: docs/derivations/convlstm.md#one-step
    """
    x_cols, h_cols, c_prev, Wx, Wh, gates, tc, (N, H, W) = cache
    op = "convlstm_step_backward"
    F, C, k = Wh.shape[1], Wx.shape[1], Wx.shape[2]
    check.upstream(op, "dh", dh, (N, F, H, W), _IMG, tc.dtype)
    check.upstream(op, "dc", dc, (N, F, H, W), _IMG, tc.dtype)
    xp = get_array_module(dh, dc, gates)
    da = xp.empty_like(gates)  # (N*H*W, 4F)
    dc_prev = _cell_backward(_rows(dh), _rows(dc), gates, c_prev, tc, da)
    dx = _col2im_nhwc(da @ Wx.reshape(4 * F, -1), (N, H, W, C), k)       # (N, H, W, C)
    dh_prev = _col2im_nhwc(da @ Wh.reshape(4 * F, -1), (N, H, W, F), k)  # (N, H, W, F)
    dWx = (da.T @ x_cols).reshape(Wx.shape)
    dWh = (da.T @ h_cols).reshape(Wh.shape)
    return (dx.transpose(0, 3, 1, 2), dh_prev.transpose(0, 3, 1, 2), _images(dc_prev, N, H, W),
            dWx, dWh, da.sum(axis=0))


def convlstm_forward(x, h0, c0, Wx, Wh, b):
    """A Conv-LSTM over a whole sequence of images.

    Inputs:
      x: (N, T, C, H, W); h0: (N, F, H, W); c0: (N, F, H, W);
      Wx: (4F, C, k, k); Wh: (4F, F, k, k), k odd; b: (4F,), gates i, f, g, o.
    Returns:
      hs: (N, T, F, H, W) hidden states (a time-major, channels-last buffer seen
      through a transpose);
      c_last: (N, F, H, W) the cell state after the last step;
      cache: ConvLSTMCache for ``convlstm_backward``.
    Equations: docs/derivations/convlstm.md#forward
    """
    op = "convlstm_forward"
    C, F, k = _conv_gate_weights(op, Wx, Wh)
    if hasattr(x, "ndim") and x.ndim == 4:
        raise ValueError(f"{op}: x must be 5-D (N, T, C, H, W) for a sequence, got 4-D shape "
                         f"{tuple(x.shape)}; use convlstm_step_forward for one step or add "
                         "a time axis with x[:, None]")
    check.float_array(op, "x", x, 5, "N, T, C, H, W")
    _image_inputs(op, x, C, Wx)
    if 0 in x.shape:
        raise ValueError(f"{op}: x must hold at least one sequence, one time step and one "
                         f"pixel, got shape {tuple(x.shape)}")
    N, T, _, H, W = x.shape
    _state(op, "h0", h0, (N, F, H, W))
    _state(op, "c0", c0, (N, F, H, W))
    _bias(op, b, F)
    check.same_dtype(op, x=x, h0=h0, c0=c0, Wx=Wx, Wh=Wh, b=b)
    xp = get_array_module(x, h0, c0, Wx, Wh, b)
    P = N * H * W  # pixels per step: the rows of every per-step matrix

    # The input convolution of all T steps: one im2col, one product, before the loop.
    x_cols = _im2col_nhwc(x.transpose(1, 0, 3, 4, 2), k)  # (T*N*H*W, C*k*k), time-major
    gates = x_cols @ Wx.reshape(4 * F, -1).T
    gates += b
    gates = gates.reshape(T, P, 4 * F)  # input part of every a_t, then the gate values
    hs = xp.empty((T, N, H, W, F), dtype=x.dtype)
    hs_rows = hs.reshape(T, P, F)       # the same memory, one row per pixel
    cs, tcs = (xp.empty((T, P, F), dtype=x.dtype) for _ in range(2))
    h_cols = xp.empty((T, P, F * k * k), dtype=x.dtype)  # kept for dWh
    WhT = xp.ascontiguousarray(Wh.reshape(4 * F, -1).T)  # (F*k*k, 4F)
    hWh = xp.empty((P, 4 * F), dtype=x.dtype)  # one buffer for every step's product
    c0_rows = _rows(c0)
    h, c = h0.transpose(0, 2, 3, 1), c0_rows  # channels-last view; rows
    for t in range(T):
        _im2col_nhwc(h, k, out=h_cols[t])
        gates[t] += xp.matmul(h_cols[t], WhT, out=hWh)  # conv(h_{t-1}, Wh)
        _cell_forward(gates[t], c, cs[t], tcs[t], hs_rows[t])
        h, c = hs[t], cs[t]
    cache = ConvLSTMCache(x_cols, c0_rows, Wx, Wh, gates, cs, tcs, hs, h_cols)
    c_last = xp.ascontiguousarray(_images(cs[T - 1], N, H, W))
    return hs.transpose(1, 0, 4, 2, 3), c_last, cache


def convlstm_backward(dhs, cache, dc_last=None):
    """Backpropagation through time for ``convlstm_forward``.

    Inputs:
      dhs: (N, T, F, H, W) gradient with respect to every hidden state;
      cache: from ``convlstm_forward``;
      dc_last: (N, F, H, W) gradient with respect to ``c_last``, or None for zeros.
    Returns:
      dx (N, T, C, H, W), dh0 (N, F, H, W), dc0 (N, F, H, W),
      dWx (4F, C, k, k), dWh (4F, F, k, k), db (4F,).
    Equations: docs/derivations/convlstm.md#backward-through-time
    """
    x_cols, c0_rows, Wx, Wh, gates, cs, tcs, hs, h_cols = cache
    T, N, H, W, F = hs.shape
    C, k = Wx.shape[1], Wx.shape[2]
    P = N * H * W
    op = "convlstm_backward"
    check.upstream(op, "dhs", dhs, (N, T, F, H, W), ("N", "T", "F", "H", "W"), hs.dtype)
    xp = get_array_module(dhs, hs)
    if dc_last is None:
        dc = xp.zeros((P, F), dtype=hs.dtype)
    else:
        check.upstream(op, "dc_last", dc_last, (N, F, H, W), _IMG, hs.dtype)
        dc = _rows(dc_last)

    da = xp.empty_like(gates)                    # (T, P, 4F): dL/da_t for every step
    dh = xp.zeros((N, H, W, F), dtype=hs.dtype)  # gradient reaching h_t from step t+1
    dh_rows = dh.reshape(P, F)                   # the same memory, one row per pixel
    Whm = Wh.reshape(4 * F, -1)                  # (4F, F*k*k)
    for t in range(T - 1, -1, -1):
        dh += dhs[:, t].transpose(0, 2, 3, 1)
        c_prev = cs[t - 1] if t > 0 else c0_rows
        dc = _cell_backward(dh_rows, dc, gates[t], c_prev, tcs[t], da[t])
        dh[...] = _col2im_nhwc(da[t] @ Whm, (N, H, W, F), k)  # through conv(h_{t-1}, Wh)

    da2 = da.reshape(T * P, 4 * F)
    dWx = (da2.T @ x_cols).reshape(Wx.shape)
    dWh = (da2.T @ h_cols.reshape(T * P, -1)).reshape(Wh.shape)
    dx = _col2im_nhwc(da2 @ Wx.reshape(4 * F, -1), (T, N, H, W, C), k)  # (T, N, H, W, C)
    return (dx.transpose(1, 0, 4, 2, 3), dh.transpose(0, 3, 1, 2), _images(dc, N, H, W),
            dWx, dWh, da2.sum(axis=0))
