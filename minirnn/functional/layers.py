"""Embedding lookup and the affine map over the last axis.

Derivations: ``docs/derivations/embedding-affine-loss.md``.
"""

from __future__ import annotations

from ..backend import get_array_module, scatter_add
from . import _checks as check


def embedding_forward(ids, W):
    """Look up one row of ``W`` per token id.

    Inputs:
      ids: (N, T) integer token ids in [0, V) (any shape works);
      W: (V, D) embedding table.
    Returns:
      out: (N, T, D) with ``out[n, t] = W[ids[n, t]]``; cache: (ids, W).
    Equations: docs/derivations/embedding-affine-loss.md#embedding
    """
    op = "embedding_forward"
    check.int_array(op, "ids", ids)
    check.float_array(op, "W", W, 2, "V, D")
    check.ids_in_range(op, "ids", ids, W.shape[0], get_array_module(ids, W))
    return W[ids], (ids, W)


def embedding_backward(dout, cache):
    """Gradient of the embedding table: each row collects the gradients of its tokens.

    Inputs:
      dout: (N, T, D) upstream gradient; cache: from ``embedding_forward``.
    Returns:
      dW: (V, D); rows of tokens that did not occur are zero, repeated tokens add up.
    Equations: docs/derivations/embedding-affine-loss.md#embedding
    """
    ids, W = cache
    D = W.shape[1]
    check.upstream("embedding_backward", "dout", dout, tuple(ids.shape) + (D,), None, W.dtype)
    xp = get_array_module(dout, W)
    dW = xp.zeros_like(W)
    scatter_add(dW, ids.reshape(-1), dout.reshape(-1, D))
    return dW


def affine_forward(x, W, b):
    """``x @ W + b`` over the last axis.

    Inputs:
      x: (..., D), for example (N, T, D) hidden states; W: (D, M); b: (M,).
    Returns:
      out: (..., M); cache: (x, W).
    Equations: docs/derivations/embedding-affine-loss.md#affine
    """
    op = "affine_forward"
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        raise TypeError(f"{op}: x must be an array of shape (..., D), got {type(x).__name__}")
    check.float_array(op, "x", x, max(x.ndim, 1), "..., D")
    check.float_array(op, "W", W, 2, "D, M")
    if x.shape[-1] != W.shape[0]:
        raise ValueError(f"{op}: x must have D = {W.shape[0]} features on its last axis to "
                         f"match W {tuple(W.shape)}, got x of shape {tuple(x.shape)}")
    check.float_array(op, "b", b, 1, "M")
    check.shape_is(op, "b", b, (W.shape[1],), ("M",))
    check.same_dtype(op, x=x, W=W, b=b)
    # One matrix product over all leading positions (free to reshape when x is
    # contiguous): BLAS runs one big product much faster than many small ones.
    out = x.reshape(-1, W.shape[0]) @ W
    out += b
    return out.reshape(tuple(x.shape[:-1]) + (W.shape[1],)), (x, W)


def affine_backward(dout, cache):
    """Backward pass of ``affine_forward``.

    Inputs:
      dout: (..., M) upstream gradient; cache: from ``affine_forward``.
    Returns:
      dx (..., D), dW (D, M), db (M,).
    Equations: docs/derivations/embedding-affine-loss.md#affine
    """
    x, W = cache
    D, M = W.shape
    check.upstream("affine_backward", "dout", dout, tuple(x.shape[:-1]) + (M,), None, x.dtype)
    dout2 = dout.reshape(-1, M)
    dW = x.reshape(-1, D).T @ dout2
    return (dout2 @ W.T).reshape(x.shape), dW, dout2.sum(axis=0)
