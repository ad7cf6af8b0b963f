"""Layer normalisation over the last axis, with PyTorch's biased variance.

Each row ``x_r`` (the last axis, E features) is normalised on its own:

    mu_r   = mean(x_r)                               ()    row mean
    xc_r   = x_r - mu_r                              (E,)  centred row
    var_r  = mean(xc_r * xc_r)                       ()    biased variance (divide by E)
    rstd_r = 1 / sqrt(var_r + eps)                   ()    reciprocal standard deviation
    xhat_r = xc_r * rstd_r                           (E,)  mean 0, variance ~1
    y_r    = xhat_r * gamma + beta                   (E,)  per-feature scale and shift

Backward (docs/derivations/layer-norm.md#backward):

    dbeta  = sum_r dy_r;   dgamma = sum_r dy_r * xhat_r;   dxhat_r = dy_r * gamma
    dx_r   = rstd_r * (dxhat_r - mean(dxhat_r) - xhat_r * mean(dxhat_r * xhat_r))
"""

from __future__ import annotations

from numbers import Real
from typing import NamedTuple

from ..backend import get_array_module
from . import _checks as check


class LayerNormCache(NamedTuple):
    xhat: object   # (..., E) normalised input
    rstd: object   # (..., 1) 1 / sqrt(var + eps) of each row
    gamma: object  # (E,)


def _row_mean(a, col):
    """Mean over the last axis as a product with ``col`` = (E, 1) filled with 1/E.

    BLAS reduces many short rows several times faster than ``a.mean(axis=-1)``; the
    result keeps the reduced axis as size 1, ready to broadcast.
    """
    return a @ col


def layer_norm_forward(x, gamma, beta, eps=1e-5):
    """Layer normalisation over the last axis (PyTorch's ``F.layer_norm``).

    Inputs:
      x: (N, T, E), or any shape (..., E): every row of E features is normalised;
      gamma: (E,) scale; beta: (E,) shift;
      eps: positive float added to the biased variance.
    Returns:
      y: (N, T, E) shaped like x; cache: LayerNormCache for ``layer_norm_backward``.
    Equations: docs/derivations/layer-norm.md#forward
    """
    op = "layer_norm_forward"
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        raise TypeError(f"{op}: x must be an array of shape (..., E), got {type(x).__name__}")
    check.float_array(op, "x", x, max(x.ndim, 1), "..., E")
    E = x.shape[-1]
    if E == 0:
        raise ValueError(f"{op}: x must have at least one feature on its last axis, "
                         f"got shape {tuple(x.shape)}")
    for name, p in (("gamma", gamma), ("beta", beta)):
        check.float_array(op, name, p, 1, "E")
        check.shape_is(op, name, p, (E,), ("E",))
    check.same_dtype(op, x=x, gamma=gamma, beta=beta)
    if isinstance(eps, bool) or not isinstance(eps, Real):
        raise TypeError(f"{op}: eps must be a positive number, got {eps!r} "
                        f"({type(eps).__name__})")
    if not eps > 0:
        raise ValueError(f"{op}: eps must be a positive number, got {eps!r}")
    xp = get_array_module(x, gamma, beta)

    ### BEGIN SOLUTION
    col = xp.full((E, 1), 1.0 / E, dtype=x.dtype)
    xhat = x - _row_mean(x, col)        # xc: centred rows, normalised in place below
    rstd = _row_mean(xhat * xhat, col)  # (..., 1) biased variance ...
    rstd += eps
    xp.sqrt(rstd, out=rstd)
    xp.divide(1, rstd, out=rstd)        # ... then 1 / sqrt(var + eps)
    xhat *= rstd
    y = xhat * gamma
    y += beta
    return y, LayerNormCache(xhat, rstd, gamma)
    ### END SOLUTION


def layer_norm_backward(dy, cache):
    """Backward pass of ``layer_norm_forward``.

    Inputs:
      dy: (N, T, E) upstream gradient, shaped like x; cache: from ``layer_norm_forward``.
    Returns:
      dx (N, T, E), dgamma (E,), dbeta (E,).
    Equations: docs/derivations/layer-norm.md#backward
    """
    xhat, rstd, gamma = cache
    E = xhat.shape[-1]
    check.upstream("layer_norm_backward", "dy", dy, tuple(xhat.shape), None, xhat.dtype)
    xp = get_array_module(dy, xhat)

    ### BEGIN SOLUTION
    dy2, xhat2 = dy.reshape(-1, E), xhat.reshape(-1, E)  # rows of E features
    dy_xhat = dy2 * xhat2
    ones = xp.ones((1, dy2.shape[0]), dtype=xhat.dtype)  # column sums as products: BLAS
    dbeta = (ones @ dy2)[0]                              # beats sum(axis=0) here too
    dgamma = (ones @ dy_xhat)[0]
    # The row means of dxhat = dy * gamma and of dxhat * xhat = (dy * xhat) * gamma are
    # products with one column, gamma / E: neither product is formed.
    col = (gamma / E)[:, None]                           # (E, 1)
    dx = dy2 * gamma                                     # dxhat
    dx -= dy2 @ col                                      # - mean(dxhat)
    xp.multiply(xhat2, dy_xhat @ col, out=dy_xhat)       # xhat * mean(dxhat * xhat)
    dx -= dy_xhat
    dx *= rstd.reshape(-1, 1)
    return dx.reshape(xhat.shape), dgamma, dbeta
    ### END SOLUTION
