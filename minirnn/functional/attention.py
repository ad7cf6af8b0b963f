"""Additive (Bahdanau) attention of one query over a sequence of keys.

For each row n of the batch, with ``q = query[n]`` and ``k_j = keys[n, j]``:

    qp    = q Wq                          (A,)    query projection
    kp_j  = k_j Wk                        (A,)    key projection (keys_proj)
    a_j   = qp + kp_j                     (A,)
    u_j   = tanh(a_j)                     (A,)
    e_j   = u_j . v                       ()      score of source position j
    w_j   = exp(e_j) / sum_i exp(e_i)     ()      softmax over unmasked positions only
    c     = sum_j w_j k_j                 (Hk,)   context

Masked positions get ``w_j = 0`` exactly. The key projection does not depend on the
query, so a decoder computes it once per source sequence with
``additive_attention_project_keys`` and passes it to every step as ``keys_proj``.
Derivation of the backward pass: ``docs/derivations/attention.md``.
"""

from __future__ import annotations

from typing import NamedTuple

from ..backend import get_array_module
from . import _checks as check


class AttentionCache(NamedTuple):
    query: object    # (N, Hq)
    keys: object     # (N, S, Hk)
    Wq: object       # (Hq, A)
    Wk: object       # (Hk, A)
    v: object        # (A,)
    u: object        # (N, S, A) tanh(qp + kp_j)
    weights: object  # (N, S) w_j, exactly 0 at masked positions


def additive_attention_project_keys(keys, Wk):
    """The key projection ``kp_j = k_j Wk``, computed once and reused by every decoder step.

    Inputs:
      keys: (N, S, Hk) encoder states; Wk: (Hk, A).
    Returns:
      keys_proj: (N, S, A), to pass as ``keys_proj`` to ``additive_attention_forward``.
    Equations: docs/derivations/attention.md#forward
    """
    op = "additive_attention_project_keys"
    N, S, Hk, A = check.keys_and_Wk(op, keys, Wk)
    check.same_dtype(op, keys=keys, Wk=Wk)
    return (keys.reshape(N * S, Hk) @ Wk).reshape(N, S, A)  # one product over all N*S rows


def additive_attention_forward(query, keys, Wq, Wk, v, mask=None, keys_proj=None):
    """Additive attention: score every key against the query, softmax, average the keys.

    Inputs:
      query: (N, Hq) decoder state; keys: (N, S, Hk) encoder states;
      Wq: (Hq, A); Wk: (Hk, A); v: (A,);
      mask: (N, S) bool, True where position j may be attended, or None for all;
        every row needs at least one True;
      keys_proj: (N, S, A) ``additive_attention_project_keys(keys, Wk)``, precomputed
        to share across decoder steps, or None to compute it here. Either way the
        backward pass returns dkeys and dWk including the path through keys_proj.
    Returns:
      context: (N, Hk) ``sum_j w_j k_j``; weights: (N, S) attention weights ``w``,
      exactly 0 at masked positions, each row summing to 1;
      cache: AttentionCache for ``additive_attention_backward``.
    Equations: docs/derivations/attention.md#forward
    """
    check.attention_inputs("additive_attention_forward", query, keys, Wq, Wk, v, mask,
                           keys_proj)
    xp = get_array_module(query, keys, Wq, Wk, v, mask, keys_proj)
    if keys_proj is None:
        keys_proj = additive_attention_project_keys(keys, Wk)
    ### BEGIN SOLUTION
    u = keys_proj + (query @ Wq)[:, None, :]  # (N, S, A): a_j = qp + kp_j
    xp.tanh(u, out=u)                         # u_j = tanh(a_j), in place
    e = u @ v                                 # (N, S) scores
    if mask is not None:
        # -inf at masked positions: exp(-inf) is exactly 0, and the max below is taken
        # over the unmasked scores only, so a huge masked score cannot push every
        # unmasked exp down to 0 (and the row to 0/0).
        e = xp.where(mask, e, -xp.inf)
    e -= e.max(axis=1, keepdims=True)         # max 0 over each row's unmasked positions
    weights = xp.exp(e, out=e)                # (N, S), in place
    weights /= weights.sum(axis=1, keepdims=True)
    context = (weights[:, None, :] @ keys)[:, 0]  # (N, 1, S) @ (N, S, Hk) -> (N, Hk)
    return context, weights, AttentionCache(query, keys, Wq, Wk, v, u, weights)
    ### END SOLUTION


def additive_attention_backward(dcontext, cache, dweights=None):
    """Backward pass of ``additive_attention_forward``.

    Inputs:
      dcontext: (N, Hk) gradient with respect to context;
      cache: from ``additive_attention_forward``;
      dweights: (N, S) gradient with respect to the returned weights (for a loss on the
        attention itself, say an entropy penalty), or None for zeros.
    Returns:
      dquery (N, Hq), dkeys (N, S, Hk), dWq (Hq, A), dWk (Hk, A), dv (A,).
      dkeys and dWk include the path through keys_proj even when keys_proj was
      precomputed, so a decoder that reuses one keys_proj over T steps sums the
      dkeys and dWk of its T steps. Masked positions get dkeys exactly 0.
    Equations: docs/derivations/attention.md#backward
    """
    ### BEGIN SOLUTION
    query, keys, Wq, Wk, v, u, weights = cache
    N, S, Hk = keys.shape
    A = v.shape[0]
    op = "additive_attention_backward"
    check.upstream(op, "dcontext", dcontext, (N, Hk), ("N", "Hk"), weights.dtype)
    if dweights is not None:
        check.upstream(op, "dweights", dweights, (N, S), ("N", "S"), weights.dtype)

    dw = (keys @ dcontext[:, :, None])[:, :, 0]  # (N, S): dw_j = dcontext . k_j
    if dweights is not None:
        dw += dweights
    # Softmax Jacobian-vector product: de_j = w_j (dw_j - sum_k w_k dw_k); 0 where masked.
    de = dw
    de -= (weights * dw).sum(axis=1, keepdims=True)
    de *= weights
    dv = de.reshape(N * S) @ u.reshape(N * S, A)  # (A,): sum over n, j of de_j u_j
    da = de[:, :, None] * v                       # (N, S, A): du_j = de_j v ...
    da *= 1 - u * u                               # ... then tanh' = 1 - u^2
    dquery_proj = da.sum(axis=1)                  # (N, A): qp feeds every a_j
    da2 = da.reshape(N * S, A)                    # dkeys_proj, one row per (n, j)
    dkeys = (da2 @ Wk.T).reshape(N, S, Hk)        # score path, through keys_proj
    dkeys += weights[:, :, None] * dcontext[:, None, :]  # direct path: c = sum_j w_j k_j
    dWk = keys.reshape(N * S, Hk).T @ da2
    return dquery_proj @ Wq.T, dkeys, query.T @ dquery_proj, dWk, dv
    ### END SOLUTION
