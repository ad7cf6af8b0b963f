"""Stacked recurrent layers: RNN (tanh), LSTM and GRU.

``layer.forward(x, state=None) -> (hs, state)`` with ``x (N, T, D)``, ``hs (N, T, H)``
(the top layer's outputs) and ``state`` a tuple of ``(L, N, H)`` arrays: ``(h, c)`` for the
LSTM, ``(h,)`` for the RNN and GRU (PyTorch's layout). Dropout is applied between layers
in training. ``layer.backward(dhs, dstate=None) -> (dx, dstate0)`` adds the weight
gradients into ``grads``; ``dstate`` is the gradient with respect to the returned final
state (None for zeros: truncated BPTT stops at the batch boundary).

Parameters of layer ``l`` are ``"l.Wx"``, ``"l.Wh"``, ``"l.b"`` (GRU: ``"l.bx"``, ``"l.bh"``),
initialised like PyTorch's, uniform in ``[-1/sqrt(H), 1/sqrt(H)]``.
"""

from __future__ import annotations

import numpy as np

from .. import backend
from .. import functional as F
from .module import Dropout, Module

CELLS = {"rnn": 1, "gru": 3, "lstm": 4}  # gate blocks per cell


class Recurrent(Module):
    """``num_layers`` stacked cells of one kind (``"rnn"``, ``"lstm"`` or ``"gru"``)."""

    def __init__(self, cell, input_size, hidden_size, num_layers=1, dropout=0.0, seed=0):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"{type(self).__name__}: cell must be one of {sorted(CELLS)}, "
                             f"got {cell!r}")
        for name, v in (("input_size", input_size), ("hidden_size", hidden_size),
                        ("num_layers", num_layers)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive int, "
                                 f"got {v!r}")
        self.cell, self.input_size = cell, int(input_size)
        self.hidden_size, self.num_layers = int(hidden_size), int(num_layers)
        k, H = CELLS[cell], self.hidden_size
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(H)
        for layer in range(num_layers):
            D = input_size if layer == 0 else H
            self.register(f"{layer}.Wx", rng.uniform(-bound, bound, (D, k * H)))
            self.register(f"{layer}.Wh", rng.uniform(-bound, bound, (H, k * H)))
            biases = ("bx", "bh") if cell == "gru" else ("b",)
            for b in biases:
                # PyTorch keeps two LSTM/RNN biases that always add up; one bias drawn
                # uniformly over the range of their sum keeps that range (their sum
                # itself is triangular, not uniform).
                scale = 1 if cell == "gru" else 2
                self.register(f"{layer}.{b}", rng.uniform(-scale * bound, scale * bound, k * H))
        self.dropout = self.add("dropout", Dropout(dropout, seed=seed + 1))
        self._caches = []

    @property
    def n_state(self):
        return 2 if self.cell == "lstm" else 1

    def initial_state(self, batch_size, xp=None):
        """Zeros of shape (L, N, H) (h, and c for the LSTM), on the weights' array module
        and in their dtype (a float64 model gets float64 states whatever the default)."""
        w = self.params["0.Wx"]
        xp = backend.get_array_module(w) if xp is None else xp
        shape = (self.num_layers, batch_size, self.hidden_size)
        return tuple(xp.zeros(shape, dtype=w.dtype) for _ in range(self.n_state))

    def _weights(self, layer):
        p = self.params
        if self.cell == "gru":
            return p[f"{layer}.Wx"], p[f"{layer}.Wh"], p[f"{layer}.bx"], p[f"{layer}.bh"]
        return p[f"{layer}.Wx"], p[f"{layer}.Wh"], p[f"{layer}.b"]

    def forward(self, x, state=None):
        """x: (N, T, D) -> hs (N, T, H) of the top layer, and the final state."""
        xp = backend.get_array_module(x)
        if state is None:
            state = self.initial_state(x.shape[0], xp)
        self._check_state(state, x)
        self._caches = []
        finals = [[] for _ in range(self.n_state)]
        hs = x
        for layer in range(self.num_layers):
            mask = None
            if layer > 0:
                hs = self.dropout.forward(hs)
                mask = self.dropout._mask
            W = self._weights(layer)
            if self.cell == "lstm":
                hs, c_last, cache = F.lstm_forward(hs, state[0][layer], state[1][layer], *W)
                finals[1].append(c_last)
            elif self.cell == "gru":
                hs, cache = F.gru_forward(hs, state[0][layer], *W)
            else:
                hs, cache = F.rnn_forward(hs, state[0][layer], *W)
            finals[0].append(hs[:, -1])
            self._caches.append((cache, mask))
        return hs, tuple(xp.stack(f) for f in finals)

    def backward(self, dhs, dstate=None):
        """dhs: (N, T, H) -> dx (N, T, D) and the gradient of the initial state."""
        xp = backend.get_array_module(dhs)
        if not self._caches:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        dstate0 = [[None] * self.num_layers for _ in range(self.n_state)]
        for layer in range(self.num_layers - 1, -1, -1):
            cache, mask = self._caches[layer]
            if dstate is not None:  # the final h of a layer is its last output
                dhs = dhs.copy() if layer == self.num_layers - 1 else dhs
                dhs[:, -1] += dstate[0][layer]
            if self.cell == "lstm":
                dc_last = None if dstate is None else dstate[1][layer]
                dx, dh0, dc0, dWx, dWh, db = F.lstm_backward(dhs, cache, dc_last=dc_last)
                dstate0[1][layer] = dc0
                grads = (dWx, dWh, db)
            elif self.cell == "gru":
                dx, dh0, *grads = F.gru_backward(dhs, cache)
            else:
                dx, dh0, *grads = F.rnn_backward(dhs, cache)
            dstate0[0][layer] = dh0
            names = ("Wx", "Wh", "bx", "bh") if self.cell == "gru" else ("Wx", "Wh", "b")
            for name, g in zip(names, grads):
                self.grads[f"{layer}.{name}"] += g
            dhs = dx if mask is None else dx * mask
        return dhs, tuple(xp.stack(d) for d in dstate0)

    def _check_state(self, state, x):
        name = type(self).__name__
        want = (self.num_layers, x.shape[0], self.hidden_size)
        if not isinstance(state, tuple) or len(state) != self.n_state:
            raise TypeError(f"{name}.forward: state must be a tuple of {self.n_state} arrays "
                            f"of shape (L, N, H) = {want}, got {type(state).__name__}")
        for s in state:
            if tuple(s.shape) != want:
                raise ValueError(f"{name}.forward: state arrays must have shape (L, N, H) = "
                                 f"{want}, got {tuple(s.shape)}")


class RNN(Recurrent):
    """Stacked tanh RNN."""

    def __init__(self, input_size, hidden_size, num_layers=1, dropout=0.0, seed=0):
        super().__init__("rnn", input_size, hidden_size, num_layers, dropout, seed)


class LSTM(Recurrent):
    """Stacked LSTM (gates i, f, g, o)."""

    def __init__(self, input_size, hidden_size, num_layers=1, dropout=0.0, seed=0):
        super().__init__("lstm", input_size, hidden_size, num_layers, dropout, seed)


class GRU(Recurrent):
    """Stacked GRU (gates r, z, n; PyTorch form)."""

    def __init__(self, input_size, hidden_size, num_layers=1, dropout=0.0, seed=0):
        super().__init__("gru", input_size, hidden_size, num_layers, dropout, seed)
