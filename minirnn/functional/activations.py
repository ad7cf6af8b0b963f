"""Elementwise nonlinearities written so that no input can overflow.

``sigmoid(x) = 1 / (1 + exp(-x))`` overflows ``exp`` for ``x < -88`` in float32.
The identity ``sigmoid(x) = (1 + tanh(x / 2)) / 2`` needs no branch and no
``exp``: ``tanh`` saturates to exactly +-1 instead of overflowing. See
``docs/derivations/lstm.md#sigmoid``.
"""

from __future__ import annotations

from ..backend import get_array_module


def sigmoid(x, out=None):
    """Logistic sigmoid of ``x`` (any shape), stable for any finite input.

    ``out`` may be ``x`` itself to compute in place (the recurrent loops do this
    on slices of their preallocated gate buffers). Keeps the dtype of ``x``.
    """
    xp = get_array_module(x)
    out = xp.multiply(x, 0.5, out=out)
    xp.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def tanh(x, out=None):
    """Hyperbolic tangent (NumPy's is already stable); here for symmetry with ``sigmoid``."""
    return get_array_module(x).tanh(x, out=out)
