"""Causal multi-head self-attention (GPT's attention), and its cached step for generation.

``x (N, T, E)``; ``Wqkv (E, 3E)`` holds the columns ``[q | k | v]``, each block split
into ``n_heads`` contiguous slices of ``hs = E / n_heads`` (head ``h`` owns columns
``h*hs:(h+1)*hs`` of its block). For every sequence and head:

    qkv   = x Wqkv + bqkv                          (N, T, 3E)
    q, k, v                                        (N, n_heads, T, hs) each, split heads
    s     = q k^T / sqrt(hs)                       (N, n_heads, T, T) scores
    s[t, j] = -inf for j > t                       causal mask: t sees positions <= t
    att   = softmax(s) over j, row max subtracted  (N, n_heads, T, T) attention weights
    heads = att v                                  (N, n_heads, T, hs)
    z     = heads merged back to E features        (N, T, E) head h in columns h*hs:(h+1)*hs
    y     = z Wo + bo                              (N, T, E)

Backward (docs/derivations/self-attention.md#backward), per head:

    dz = dy Wo^T;  dheads = dz split into heads;  dv = att^T dheads
    datt = dheads v^T;  ds = att * (datt - rowsum(dheads * heads))   (softmax Jacobian)
    dq = ds k / sqrt(hs);  dk = ds^T q / sqrt(hs);  dqkv = [dq | dk | dv] merged
    dWqkv = x^T dqkv;  dx = dqkv Wqkv^T

Generation keeps the keys and values of the positions so far in a ``KVCache``, so that
each new position costs one attention row, O(T), instead of the whole O(T^2) forward
(docs/derivations/self-attention.md#generation-with-a-key-value-cache).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ..backend import get_array_module
from . import _checks as check


class SelfAttentionCache(NamedTuple):
    x: object      # (N, T, E)
    Wqkv: object   # (E, 3E)
    Wo: object     # (E, E)
    qkv: object    # (3, N, n_heads, T, hs): q (already divided by sqrt(hs)), k, v
    att: object    # (N, n_heads, T, T) attention weights, exactly 0 above the diagonal
    z: object      # (N * T, E) the heads' outputs, merged


class KVCache(NamedTuple):
    """The keys and values of the positions seen so far, for ``causal_self_attention_step``.

    ``k`` and ``v`` are preallocated buffers of ``max_len`` positions; the first
    ``length`` hold data. A step writes one position in place and returns a new
    KVCache with ``length + 1`` over the same buffers. To follow other rows of the
    batch (a beam search reordering its beams), index both: ``KVCache(k[rows], v[rows],
    length)``.
    """
    k: object     # (N, n_heads, max_len, hs)
    v: object     # (N, n_heads, max_len, hs)
    length: int   # positions filled so far


def _check_weights(op, Wqkv, bqkv, Wo, bo, n_heads):
    """Check the four weights and n_heads against each other; return E and hs."""
    check.float_array(op, "Wqkv", Wqkv, 2, "E, 3E")
    E = Wqkv.shape[0]
    check.shape_is(op, "Wqkv", Wqkv, (E, 3 * E), ("E", "3E"))
    check.float_array(op, "bqkv", bqkv, 1, "3E")
    check.shape_is(op, "bqkv", bqkv, (3 * E,), ("3E",))
    check.float_array(op, "Wo", Wo, 2, "E, E")
    check.shape_is(op, "Wo", Wo, (E, E), ("E", "E"))
    check.float_array(op, "bo", bo, 1, "E")
    check.shape_is(op, "bo", bo, (E,), ("E",))
    check.positive_int(op, "n_heads", n_heads)
    if E % n_heads:
        raise ValueError(f"{op}: n_heads must divide E = {E} (the width of Wqkv) into equal "
                         f"heads, got n_heads = {n_heads}")
    return E, E // n_heads


def causal_self_attention_forward(x, Wqkv, bqkv, Wo, bo, n_heads):
    """Causal multi-head self-attention: position t attends to positions 0..t.

    Inputs:
      x: (N, T, E); Wqkv: (E, 3E), columns [q | k | v], each block split into n_heads
      contiguous slices of hs = E / n_heads; bqkv: (3E,); Wo: (E, E); bo: (E,);
      n_heads: int dividing E.
    Returns:
      y: (N, T, E); cache: SelfAttentionCache for ``causal_self_attention_backward``.
    Equations: docs/derivations/self-attention.md#forward
    """
    op = "causal_self_attention_forward"
    E, hs = _check_weights(op, Wqkv, bqkv, Wo, bo, n_heads)
    N, T = check.sequence_x(op, x, ("E", E), ("Wqkv", Wqkv), "position")
    check.same_dtype(op, x=x, Wqkv=Wqkv, bqkv=bqkv, Wo=Wo, bo=bo)
    xp = get_array_module(x, Wqkv, bqkv, Wo, bo)

    ### BEGIN SOLUTION
    qkv = x.reshape(N * T, E) @ Wqkv
    qkv += bqkv
    # (N*T, 3E) -> (3, N, n_heads, T, hs): one copy, so every head is a contiguous matrix
    qkv = xp.ascontiguousarray(qkv.reshape(N, T, 3, n_heads, hs).transpose(2, 0, 3, 1, 4))
    q, k, v = qkv
    q *= 1 / math.sqrt(hs)  # scaling q (T x hs) is cheaper than scaling s (T x T)
    att = q @ k.transpose(0, 1, 3, 2)  # (N, n_heads, T, T) scores s
    att += xp.triu(xp.full((T, T), -xp.inf, dtype=x.dtype), 1)  # -inf where j > t
    # Stable softmax: the max of each row is finite (j = t is never masked) and makes
    # the largest exponent 0; the masked entries become exp(-inf) = 0 exactly.
    att -= att.max(axis=-1, keepdims=True)
    xp.exp(att, out=att)
    att /= att @ xp.ones((T, 1), dtype=x.dtype)  # row sums: BLAS beats sum() on short rows
    heads = att @ v                                 # (N, n_heads, T, hs)
    z = heads.transpose(0, 2, 1, 3).reshape(N * T, E)  # merge: (N, T, n_heads, hs) -> E
    y = z @ Wo
    y += bo
    return y.reshape(N, T, E), SelfAttentionCache(x, Wqkv, Wo, qkv, att, z)
    ### END SOLUTION


def causal_self_attention_backward(dy, cache):
    """Backward pass of ``causal_self_attention_forward``.

    Inputs:
      dy: (N, T, E) upstream gradient; cache: from ``causal_self_attention_forward``.
    Returns:
      dx (N, T, E), dWqkv (E, 3E), dbqkv (3E,), dWo (E, E), dbo (E,).
    Equations: docs/derivations/self-attention.md#backward
    """
    x, Wqkv, Wo, qkv, att, z = cache
    _, N, n_heads, T, hs = qkv.shape
    E = n_heads * hs
    check.upstream("causal_self_attention_backward", "dy", dy, (N, T, E), ("N", "T", "E"),
                   x.dtype)
    xp = get_array_module(dy, qkv)
    ### BEGIN SOLUTION
    q, k, v = qkv

    dy2 = dy.reshape(N * T, E)
    dWo = z.T @ dy2
    dbo = dy2.sum(axis=0)
    dz = dy2 @ Wo.T
    dheads = dz.reshape(N, T, n_heads, hs).transpose(0, 2, 1, 3)  # split: (N, n_heads, T, hs)

    dqkv = xp.empty_like(qkv)  # (3, N, n_heads, T, hs): dq, dk, dv
    xp.matmul(att.transpose(0, 1, 3, 2), dheads, out=dqkv[2])  # dv = att^T dheads
    datt = dheads @ v.transpose(0, 1, 3, 2)                     # (N, n_heads, T, T)
    # Softmax Jacobian: ds = att * (datt - sum_j att * datt), and the row sum
    # sum_j att[t, j] datt[t, j] = dheads[t] . heads[t] costs T*hs, not T*T.
    rows = xp.einsum("nthd,nthd->nht", dz.reshape(N, T, n_heads, hs),
                     z.reshape(N, T, n_heads, hs))
    datt -= rows[..., None]
    datt *= att                                     # ds: 0 exactly where att is masked
    xp.matmul(datt, k, out=dqkv[0])
    dqkv[0] *= 1 / math.sqrt(hs)                    # dq = ds k / sqrt(hs)
    xp.matmul(datt.transpose(0, 1, 3, 2), q, out=dqkv[1])  # dk = ds^T q (q holds 1/sqrt(hs))
    dqkv = dqkv.transpose(1, 3, 0, 2, 4).reshape(N * T, 3 * E)  # merge back to [q | k | v]

    x2 = x.reshape(N * T, E)
    dWqkv = x2.T @ dqkv
    dbqkv = dqkv.sum(axis=0)
    dx = (dqkv @ Wqkv.T).reshape(N, T, E)
    return dx, dWqkv, dbqkv, dWo, dbo
    ### END SOLUTION


def causal_self_attention_kv_cache(N, max_len, Wqkv, n_heads, cache=None):
    """A KVCache for ``causal_self_attention_step``: empty, or holding a forward pass's keys.

    Inputs:
      N: batch size; max_len: the most positions it will hold;
      Wqkv: (E, 3E) the layer's weights (the cache takes their dtype and array module);
      n_heads: int dividing E;
      cache: a SelfAttentionCache from ``causal_self_attention_forward`` over a prompt
        x (N, T, E) with T <= max_len, or None for an empty cache.
    Returns:
      kv: KVCache with k, v (N, n_heads, max_len, hs) and length 0, or T with the
      prompt's keys and values (the same as stepping through the prompt one position
      at a time, at the cost of one batched forward pass).
    Equations: docs/derivations/self-attention.md#generation-with-a-key-value-cache
    """
    op = "causal_self_attention_kv_cache"
    check.float_array(op, "Wqkv", Wqkv, 2, "E, 3E")
    E = Wqkv.shape[0]
    check.shape_is(op, "Wqkv", Wqkv, (E, 3 * E), ("E", "3E"))
    check.positive_int(op, "N", N)
    check.positive_int(op, "max_len", max_len)
    check.positive_int(op, "n_heads", n_heads)
    if E % n_heads:
        raise ValueError(f"{op}: n_heads must divide E = {E} (the width of Wqkv) into equal "
                         f"heads, got n_heads = {n_heads}")
    hs = E // n_heads
    xp = get_array_module(Wqkv)
    k = xp.zeros((N, n_heads, max_len, hs), dtype=Wqkv.dtype)
    v = xp.zeros_like(k)
    if cache is None:
        return KVCache(k, v, 0)
    if not isinstance(cache, SelfAttentionCache):
        raise TypeError(f"{op}: cache must be the SelfAttentionCache of "
                        f"causal_self_attention_forward or None, got {type(cache).__name__}")
    _, Nc, hc, T, hsc = cache.qkv.shape
    if (Nc, hc, hsc) != (N, n_heads, hs) or T > max_len:
        raise ValueError(f"{op}: cache must come from a forward pass over N = {N} sequences "
                         f"of at most max_len = {max_len} positions with {n_heads} heads of "
                         f"size {hs}, got N = {Nc}, T = {T}, {hc} heads of size {hsc}")
    if cache.qkv.dtype != Wqkv.dtype:
        raise TypeError(f"{op}: cache has dtype {cache.qkv.dtype} but Wqkv has {Wqkv.dtype}; "
                        "make the cache with the weights of the forward pass")
    k[:, :, :T] = cache.qkv[1]
    v[:, :, :T] = cache.qkv[2]
    return KVCache(k, v, T)


def causal_self_attention_step(x_t, kv, Wqkv, bqkv, Wo, bo, n_heads):
    """One new position of causal self-attention, attending to itself and the cached ones.

    Inputs:
      x_t: (N, E) the input at the next position, t = kv.length;
      kv: KVCache of the positions before t, from ``causal_self_attention_kv_cache`` or
        the previous step; its buffers are written in place at position t;
      Wqkv: (E, 3E); bqkv: (3E,); Wo: (E, E); bo: (E,); n_heads: int dividing E.
    Returns:
      y_t: (N, E), equal to ``y[:, t]`` of ``causal_self_attention_forward`` over the
      positions 0..t; kv: KVCache with length t + 1, over the same buffers.
    Equations: docs/derivations/self-attention.md#generation-with-a-key-value-cache
    """
    op = "causal_self_attention_step"
    E, hs = _check_weights(op, Wqkv, bqkv, Wo, bo, n_heads)
    if not isinstance(kv, KVCache):
        raise TypeError(f"{op}: kv must be a KVCache (from causal_self_attention_kv_cache), "
                        f"got {type(kv).__name__}")
    N, hk, max_len, hsk = kv.k.shape
    if (hk, hsk) != (n_heads, hs):
        raise ValueError(f"{op}: kv must hold {n_heads} heads of size {hs} to match Wqkv "
                         f"{tuple(Wqkv.shape)} and n_heads, got k of shape {tuple(kv.k.shape)}")
    t = kv.length
    if t >= max_len:
        raise ValueError(f"{op}: kv must have room for one more position, got a full cache "
                         f"(length = max_len = {max_len}); make a longer one, or start again "
                         "from a shorter prompt")
    check.float_array(op, "x_t", x_t, 2, "N, E")
    check.shape_is(op, "x_t", x_t, (N, E), ("N", "E"))
    check.same_dtype(op, x_t=x_t, Wqkv=Wqkv, bqkv=bqkv, Wo=Wo, bo=bo, **{"kv.k": kv.k})
    xp = get_array_module(x_t, Wqkv, kv.k)

    qkv_t = (x_t @ Wqkv + bqkv).reshape(N, 3, n_heads, hs)
    kv.k[:, :, t] = qkv_t[:, 1]
    kv.v[:, :, t] = qkv_t[:, 2]
    q = qkv_t[:, 0, :, None, :] * (1 / math.sqrt(hs))       # (N, n_heads, 1, hs)
    keys, values = kv.k[:, :, :t + 1], kv.v[:, :, :t + 1]   # (N, n_heads, t+1, hs)
    att = q @ keys.transpose(0, 1, 3, 2)                     # (N, n_heads, 1, t+1): one row
    att -= att.max(axis=-1, keepdims=True)                   # nothing to mask: all j <= t
    xp.exp(att, out=att)
    att /= att.sum(axis=-1, keepdims=True)
    z = (att @ values).reshape(N, E)                         # heads merged: (N, n_heads*hs)
    return z @ Wo + bo, KVCache(kv.k, kv.v, t + 1)
