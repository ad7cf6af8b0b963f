"""GELU, the tanh approximation of GPT-2 (PyTorch's ``F.gelu(x, approximate="tanh")``).

Elementwise, with ``c = sqrt(2 / pi)`` (``C``) and ``k = 0.044715`` (``K``):

    u   = c * (x + k * x^3)
    phi = (1 + tanh(u)) / 2           = sigmoid(2 u), a soft gate in (0, 1)
    y   = x * phi

Backward (docs/derivations/gelu.md#backward), using ``tanh' = 1 - tanh^2``:

    s          = 2 x du/dx = 2 c x (1 + 3 k x^2)
    x dphi/dx  = phi (1 - phi) s         since 1 - tanh(u)^2 = 4 phi (1 - phi)
    dx         = dy * (phi + phi (1 - phi) s)

The cache keeps ``x`` and ``phi``: the slope needs nothing else.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ..backend import get_array_module
from . import _checks as check

C = math.sqrt(2.0 / math.pi)
K = 0.044715


class GeluCache(NamedTuple):
    x: object    # input, any shape
    phi: object  # (1 + tanh(u)) / 2, shaped like x


def gelu_forward(x):
    """GELU with the tanh approximation, elementwise.

    Inputs:
      x: (N, T, E), or any shape.
    Returns:
      y: (N, T, E) shaped like x, ``x * (1 + tanh(c (x + k x^3))) / 2``;
      cache: GeluCache for ``gelu_backward``.
    Equations: docs/derivations/gelu.md#forward
    """
    op = "gelu_forward"
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        raise TypeError(f"{op}: x must be a float array, got {type(x).__name__}")
    check.float_array(op, "x", x, x.ndim, "any shape")
    xp = get_array_module(x)
    # Python-float constants keep float32 float32 (NumPy treats them as weak scalars).
    phi = x * x
    phi *= C * K
    phi += C
    phi *= x                 # u = c x + c k x^3
    xp.tanh(phi, out=phi)
    phi += 1
    phi *= 0.5               # phi = (1 + tanh u) / 2, in place
    return x * phi, GeluCache(x, phi)


def gelu_backward(dy, cache):
    """Backward pass of ``gelu_forward``.

    Inputs:
      dy: (N, T, E) upstream gradient, shaped like x; cache: from ``gelu_forward``.
    Returns:
      dx (N, T, E), shaped like x.
    Equations: docs/derivations/gelu.md#backward
    """
    x, phi = cache
    check.upstream("gelu_backward", "dy", dy, tuple(x.shape), None, x.dtype)
    s = x * x
    s *= 6 * C * K
    s += 2 * C
    s *= x                   # s = 2 x du/dx = 2c x (1 + 3k x^2)
    dx = 1 - phi
    dx *= phi                # phi (1 - phi) = (1 - tanh(u)^2) / 4
    dx *= s                  # x dphi/dx
    dx += phi
    dx *= dy
    return dx
