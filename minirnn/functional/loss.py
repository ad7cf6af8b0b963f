"""Losses: each returns the loss and its gradient with respect to the logits at once.

``softmax_cross_entropy``: over the last axis, averaged over the unmasked positions
(``docs/derivations/embedding-affine-loss.md#softmax-cross-entropy``).
``sigmoid_binary_cross_entropy``: per element, for 0/1 targets such as pixels
(``docs/derivations/embedding-affine-loss.md#sigmoid-binary-cross-entropy``).
"""

from __future__ import annotations

from ..backend import get_array_module
from . import _checks as check


def softmax_cross_entropy(logits, targets, mask=None):
    """Mean negative log-likelihood of ``targets`` under ``softmax(logits)``.

    Inputs:
      logits: (N, T, V) unnormalised scores (any leading shape ``(..., V)`` works);
      targets: (N, T) integer classes in [0, V);
      mask: (N, T) bool, True where the position counts, or None for all positions.
    Returns:
      loss: 0-d array in the dtype of ``logits``, the mean over counted positions;
      dlogits: (N, T, V) gradient of ``loss`` with respect to ``logits``
      (``(softmax - onehot) / count`` at counted positions, zero elsewhere).
    The log-sum-exp is taken after subtracting each row's maximum, so logits of any
    finite size give finite results.
    """
    op = "softmax_cross_entropy"
    if not (hasattr(logits, "shape") and hasattr(logits, "dtype")):
        raise TypeError(f"{op}: logits must be an array of shape (N, T, V), "
                        f"got {type(logits).__name__}")
    check.float_array(op, "logits", logits, max(logits.ndim, 1), "..., V")
    check.int_array(op, "targets", targets)
    lead, V = tuple(logits.shape[:-1]), logits.shape[-1]
    if tuple(targets.shape) != lead:
        raise ValueError(f"{op}: targets must have shape {lead} (logits without the "
                         f"class axis), got {tuple(targets.shape)}")
    xp = get_array_module(logits, targets, mask)
    check.ids_in_range(op, "targets", targets, V, xp)
    if mask is not None:
        check.bool_mask(op, "mask", mask, lead, None, like="targets")

    z = logits.reshape(-1, V)
    y = targets.reshape(-1)
    M = z.shape[0]
    rows = xp.arange(M)
    shifted = z - z.max(axis=1, keepdims=True)            # (M, V), max 0 in each row
    lse = xp.log(xp.exp(shifted).sum(axis=1))             # (M,)
    nll = lse - shifted[rows, y]                          # (M,) -log p(target)
    probs = xp.exp(shifted - lse[:, None])                # (M, V) softmax
    probs[rows, y] -= 1                                   # d nll / d z = p - onehot
    if mask is None:
        count = M
        loss = nll.sum() / count
    else:
        w = mask.reshape(-1).astype(logits.dtype)
        count = int(w.sum())
        if count == 0:
            raise ValueError(f"{op}: mask selects no positions, so the mean is undefined; "
                             "pass at least one True")
        loss = (nll * w).sum() / count
        probs *= w[:, None]
    probs /= count
    return loss.astype(logits.dtype), probs.reshape(logits.shape)


def sigmoid_binary_cross_entropy(logits, targets):
    """Mean per-element binary cross-entropy of ``sigmoid(logits)`` against 0/1 targets.

    Inputs:
      logits: any shape, float; targets: the same shape, values in [0, 1].
    Returns:
      loss: float, the mean over every element of
            ``-t log s(z) - (1 - t) log(1 - s(z)) = max(z, 0) - z t + log(1 + exp(-|z|))``
            (the log-sum-exp form: no exp of a positive number, finite for any z);
      dlogits: same shape as logits, ``(s(z) - t) / logits.size``.
    Equations: docs/derivations/embedding-affine-loss.md#sigmoid-binary-cross-entropy
    """
    op = "sigmoid_binary_cross_entropy"
    check.float_array(op, "logits", logits, getattr(logits, "ndim", 0), "...")
    if tuple(logits.shape) != tuple(targets.shape):
        raise ValueError(f"{op}: targets must have the shape of logits {tuple(logits.shape)}, "
                         f"got {tuple(targets.shape)}")
    xp = get_array_module(logits, targets)
    t = targets.astype(logits.dtype, copy=False)
    e = xp.exp(-xp.abs(logits))                          # in (0, 1]: never overflows
    loss = xp.maximum(logits, 0) - logits * t + xp.log1p(e)
    s = xp.where(logits >= 0, 1 / (1 + e), e / (1 + e))  # sigmoid, stable on both sides
    return float(loss.mean()), (s - t) / logits.dtype.type(logits.size)
