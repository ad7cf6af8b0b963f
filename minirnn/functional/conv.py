"""Same-padding 2-D convolution as im2col plus one matrix product.

A convolution with an odd ``k x k`` kernel, stride 1 and ``p = (k - 1) / 2`` zeros of
padding keeps the image size: output pixel ``(r, s)`` is the dot product of the kernel
with the ``k x k`` patch centred on input pixel ``(r, s)``, over all input channels.
``im2col`` writes every patch out as one row, so the whole convolution is one product:

    cols = im2col(x, k)                   (N*H*W, C*k*k)   one row per output pixel
    out  = cols @ W.reshape(F, C*k*k).T   (N*H*W, F)       then viewed as (N, F, H, W)

The columns of ``cols`` are ordered ``(c, u, v)``, channel then kernel offset: the
order of ``W.reshape(F, -1)``, so the weights need no rearranging. Backward is rule (P1)
on that product, then ``col2im``, which adds every row of ``dcols`` back onto the patch
it was copied from: patches overlap, so an input pixel collects up to ``k*k``
contributions. Derivation: ``docs/derivations/convlstm.md#convolution-as-one-matrix-product``.

Inside, images are channels-last, ``(..., H, W, C)``, so that a row of the product is a
pixel (``_im2col_nhwc`` / ``_col2im_nhwc``, shared with ``convlstm.py``). The public
functions take and give the usual ``(N, C, H, W)``. The only Python loops run over the
``k*k`` kernel offsets, each moving a whole shifted image, never over pixels, and every
array function comes from ``get_array_module``: the same code runs on CuPy.
"""

from __future__ import annotations

import math
import operator
from typing import NamedTuple

from ..backend import get_array_module
from . import _checks as check


def _odd_k(op, k):
    """``k`` as an int, which must be odd and positive (same padding needs k = 2p + 1)."""
    try:
        k = operator.index(k)
    except TypeError:
        raise TypeError(f"{op}: k must be an odd int, got {type(k).__name__}") from None
    if k < 1 or k % 2 == 0:
        raise ValueError(f"{op}: k must be odd and positive (same padding needs "
                         f"k = 2p + 1), got k = {k}")
    return k


def _kernel_size(op, name, W):
    """The kernel size ``k`` of ``W (F, C, k, k)``: square and odd, or a ValueError."""
    kh, kw = W.shape[2], W.shape[3]
    if kh != kw:
        raise ValueError(f"{op}: {name} must have a square k x k kernel, got shape "
                         f"{tuple(W.shape)}")
    if kh % 2 == 0:
        raise ValueError(f"{op}: {name} must have an odd kernel size k (same padding "
                         f"needs k = 2p + 1), got k = {kh} in shape {tuple(W.shape)}")
    return kh


def _im2col_nhwc(x, k, out=None):
    """Patch rows of a channels-last batch of images.

    x: (..., H, W, C), any strides (a transposed view is fine);
    out: optional contiguous buffer of the result's shape to write into.
    Returns cols (B*H*W, C*k*k), B the product of the leading axes: row (b, r, s)
    holds x[b, r + u - p, s + v - p, c] in column (c, u, v), zero off the image.
    """
    xp = get_array_module(x)
    *lead, H, W, C = x.shape
    p = k // 2
    if out is None:
        out = xp.empty((math.prod(lead) * H * W, C * k * k), dtype=x.dtype)
    if p:
        xpad = xp.zeros((*lead, H + 2 * p, W + 2 * p, C), dtype=x.dtype)
        xpad[..., p:p + H, p:p + W, :] = x
    else:
        xpad = x
    patches = out.reshape(*lead, H, W, C, k, k)  # a view of out
    for u in range(k):
        for v in range(k):  # kernel offset (u, v): one shifted copy of the whole batch
            patches[..., u, v] = xpad[..., u:u + H, v:v + W, :]
    return out


def _col2im_nhwc(dcols, shape, k):
    """The adjoint of ``_im2col_nhwc``: add every patch row back onto its pixels.

    dcols: (B*H*W, C*k*k); shape: (..., H, W, C), the channels-last image shape.
    Returns dx of that shape (a view into a zero-padded buffer).
    """
    xp = get_array_module(dcols)
    *lead, H, W, C = shape
    p = k // 2
    dpad = xp.zeros((*lead, H + 2 * p, W + 2 * p, C), dtype=dcols.dtype)
    dpatches = dcols.reshape(*lead, H, W, C, k, k)
    for u in range(k):
        for v in range(k):  # overlapping patches: fan-out adds (P4)
            dpad[..., u:u + H, v:v + W, :] += dpatches[..., u, v]
    return dpad[..., p:p + H, p:p + W, :]


def im2col(x, k):
    """Every k x k patch of a batch of images, one row per pixel (same padding).

    Inputs:
      x: (N, C, H, W); k: odd kernel size.
    Returns:
      cols: (N*H*W, C*k*k), row (n, r, s), column (c, u, v), so that
      ``cols @ W.reshape(F, -1).T`` is the convolution with W (F, C, k, k).
    Equations: docs/derivations/convlstm.md#convolution-as-one-matrix-product
    """
    op = "im2col"
    k = _odd_k(op, k)
    check.float_array(op, "x", x, 4, "N, C, H, W")
    return _im2col_nhwc(x.transpose(0, 2, 3, 1), k)


def col2im(dcols, x_shape, k):
    """Backward of ``im2col``: the sum, over the patches that hold each pixel, of their rows.

    Inputs:
      dcols: (N*H*W, C*k*k) gradient with respect to ``im2col(x, k)``;
      x_shape: (N, C, H, W); k: odd kernel size.
    Returns:
      dx: (N, C, H, W).
    Equations: docs/derivations/convlstm.md#convolution-as-one-matrix-product
    """
    op = "col2im"
    k = _odd_k(op, k)
    N, C, H, W = x_shape
    check.float_array(op, "dcols", dcols, 2, "N*H*W, C*k*k")
    check.shape_is(op, "dcols", dcols, (N * H * W, C * k * k), ("N*H*W", "C*k*k"))
    return _col2im_nhwc(dcols, (N, H, W, C), k).transpose(0, 3, 1, 2)


class Conv2dCache(NamedTuple):
    cols: object     # (N*H*W, C*k*k) im2col(x, k)
    W: object        # (F, C, k, k)
    x_shape: tuple   # (N, C, H, W)


def conv2d_same_forward(x, W):
    """A 2-D convolution, stride 1, zero padding that keeps the image size, no bias.

    Inputs:
      x: (N, C, H, W); W: (F, C, k, k) with k odd.
    Returns:
      out: (N, F, H, W) (a channels-last buffer seen through a transpose);
      cache: Conv2dCache for ``conv2d_same_backward``.
    Equations: docs/derivations/convlstm.md#convolution-as-one-matrix-product
    """
    op = "conv2d_same_forward"
    check.float_array(op, "W", W, 4, "F, C, k, k")
    k = _kernel_size(op, "W", W)
    check.float_array(op, "x", x, 4, "N, C, H, W")
    if x.shape[1] != W.shape[1]:
        raise ValueError(f"{op}: x must have C = {W.shape[1]} channels to match W "
                         f"{tuple(W.shape)}, got x of shape {tuple(x.shape)}")
    check.same_dtype(op, x=x, W=W)
    N, _, H, Wd = x.shape  # Wd: the image width (W is the kernel)
    F = W.shape[0]
    cols = _im2col_nhwc(x.transpose(0, 2, 3, 1), k)  # (N*H*W, C*k*k)
    out = cols @ W.reshape(F, -1).T                   # (N*H*W, F)
    return out.reshape(N, H, Wd, F).transpose(0, 3, 1, 2), Conv2dCache(cols, W, tuple(x.shape))


def conv2d_same_backward(dout, cache):
    """Backward pass of ``conv2d_same_forward``.

    Inputs:
      dout: (N, F, H, W) gradient with respect to out; cache: from the forward pass.
    Returns:
      dx (N, C, H, W), dW (F, C, k, k).
    Equations: docs/derivations/convlstm.md#convolution-as-one-matrix-product
    """
    cols, W, x_shape = cache
    N, C, H, Wd = x_shape
    F, k = W.shape[0], W.shape[2]
    check.upstream("conv2d_same_backward", "dout", dout, (N, F, H, Wd),
                   ("N", "F", "H", "W"), cols.dtype)
    dout_rows = dout.transpose(0, 2, 3, 1).reshape(N * H * Wd, F)  # (N*H*W, F)
    dW = (dout_rows.T @ cols).reshape(W.shape)                    # (P1): cols^T dout
    dcols = dout_rows @ W.reshape(F, -1)                          # (N*H*W, C*k*k)
    dx = _col2im_nhwc(dcols, (N, H, Wd, C), k).transpose(0, 3, 1, 2)
    return dx, dW
