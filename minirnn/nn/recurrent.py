"""Stacked recurrent layers: RNN (tanh), LSTM and GRU, and one cell stepped by hand.

``layer.forward(x, state=None) -> (hs, state)`` with ``x (N, T, D)``, ``hs (N, T, H)``
(the top layer's outputs) and ``state`` a tuple of ``(L, N, H)`` arrays: ``(h, c)`` for the
LSTM, ``(h,)`` for the RNN and GRU (PyTorch's layout). Dropout is applied between layers
in training. ``layer.backward(dhs, dstate=None) -> (dx, dstate0)`` adds the weight
gradients into ``grads``; ``dstate`` is the gradient with respect to the returned final
state (None for zeros: truncated BPTT stops at the batch boundary).

Parameters of layer ``l`` are ``"l.Wx"``, ``"l.Wh"`` and the cell's biases (``"l.b"``;
the GRU's ``"l.bx"``, ``"l.bh"``). What differs between the cells comes from the cell
table, ``minirnn.functional.cells``: nothing here switches on the cell's name.
"""

from __future__ import annotations

import numpy as np

from .. import backend
from ..functional.cells import get_cell
from .module import Dropout, Module


def cell_weights(cell, input_size, hidden_size, rng):
    """Initial weights of one cell, as PyTorch draws them: uniform in ``[-1/sqrt(H),
    1/sqrt(H)]``. ``cell`` is a cell-table entry; returns ``{"Wx", "Wh", *biases}``.

    PyTorch keeps two RNN/LSTM biases that always add up; a single bias is drawn
    uniformly over the range of their sum, which keeps that range (their sum itself is
    triangular, not uniform). The GRU's two biases act apart, so each keeps the range.
    """
    k, H = cell.gates, hidden_size
    bound = 1.0 / np.sqrt(H)
    out = {"Wx": rng.uniform(-bound, bound, (input_size, k * H)),
           "Wh": rng.uniform(-bound, bound, (H, k * H))}
    scale = 2 if len(cell.biases) == 1 else 1
    for name in cell.biases:
        out[name] = rng.uniform(-scale * bound, scale * bound, k * H)
    return out


def _positive(owner, name, v):
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {v!r}")
    return int(v)


class Recurrent(Module):
    """``num_layers`` stacked cells of one kind (a name from the cell table)."""

    def __init__(self, cell, input_size, hidden_size, num_layers=1, dropout=0.0, seed=0):
        super().__init__()
        name = type(self).__name__
        self.spec = get_cell(cell, f"{name}: cell")
        self.cell = cell
        self.input_size = _positive(name, "input_size", input_size)
        self.hidden_size = _positive(name, "hidden_size", hidden_size)
        self.num_layers = _positive(name, "num_layers", num_layers)
        rng = np.random.default_rng(seed)
        for layer in range(self.num_layers):
            D = self.input_size if layer == 0 else self.hidden_size
            for key, value in cell_weights(self.spec, D, self.hidden_size, rng).items():
                self.register(f"{layer}.{key}", value)
        self.dropout = self.add("dropout", Dropout(dropout, seed=seed + 1))
        self._caches = []

    @property
    def n_state(self):
        return self.spec.n_state

    def initial_state(self, batch_size, xp=None):
        """Zeros of shape (L, N, H) (h, and c for the LSTM), on the weights' array module
        and in their dtype (a float64 model gets float64 states whatever the default)."""
        w = self.params["0.Wx"]
        xp = backend.get_array_module(w) if xp is None else xp
        shape = (self.num_layers, batch_size, self.hidden_size)
        return tuple(xp.zeros(shape, dtype=w.dtype) for _ in range(self.n_state))

    def _weights(self, layer):
        return tuple(self.params[f"{layer}.{name}"] for name in self.spec.weight_names)

    def forward(self, x, state=None):
        """x: (N, T, D) -> hs (N, T, H) of the top layer, and the final state."""
        xp = backend.get_array_module(x)
        if state is None:
            state = self.initial_state(x.shape[0], xp)
        self._check_state(state, x)
        self._caches, finals = [], []
        hs = x
        for layer in range(self.num_layers):
            mask = None
            if layer > 0:  # dropout on the time-major buffer behind hs: no copy
                hs = self.dropout.forward(hs.transpose(1, 0, 2)).transpose(1, 0, 2)
                mask = self.dropout._mask
            state0 = tuple(s[layer] for s in state)
            hs, final, cache = self.spec.sequence(hs, state0, self._weights(layer))
            finals.append(final)
            self._caches.append((cache, mask))
        return hs, tuple(xp.stack(f) for f in zip(*finals))

    def backward(self, dhs, dstate=None):
        """dhs: (N, T, H) -> dx (N, T, D) and the gradient of the initial state."""
        xp = backend.get_array_module(dhs)
        if not self._caches:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        dstate0 = [None] * self.num_layers
        for layer in range(self.num_layers - 1, -1, -1):
            cache, mask = self._caches[layer]
            dfinal = None if dstate is None else tuple(d[layer] for d in dstate)
            dx, dstate0[layer], dweights = self.spec.sequence_back(dhs, dfinal, cache)
            for name, g in zip(self.spec.weight_names, dweights):
                self.grads[f"{layer}.{name}"] += g
            dhs = dx if mask is None else (dx.transpose(1, 0, 2) * mask).transpose(1, 0, 2)
        return dhs, tuple(xp.stack(d) for d in zip(*dstate0))

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


class RecurrentCell(Module):
    """One cell of any kind, stepped by hand (a decoder whose input depends on its output).

    Its weights are initialised as ``Recurrent``'s are (``cell_weights``).
    """

    def __init__(self, cell, input_size, hidden_size, rng=None):
        super().__init__()
        self.spec = get_cell(cell, f"{type(self).__name__}: cell")
        self.cell, self.hidden_size = cell, hidden_size
        rng = np.random.default_rng(0) if rng is None else rng
        for key, value in cell_weights(self.spec, input_size, hidden_size, rng).items():
            self.register(key, value)

    def initial_state(self, batch_size, xp, dtype):
        shape = (batch_size, self.hidden_size)
        return tuple(xp.zeros(shape, dtype=dtype) for _ in range(self.spec.n_state))

    def forward(self, x, state):
        """x (N, D), state (h,) or (h, c) -> (h, state, cache)."""
        weights = tuple(self.params[name] for name in self.spec.weight_names)
        state, cache = self.spec.step(x, state, weights)
        return state[0], state, cache

    def backward(self, dh, dstate, cache):
        """dh: gradient on h from outside; dstate: gradient on the state from step t+1.

        Returns (dx, dstate_prev)."""
        dstate = (dh + dstate[0],) + tuple(dstate[1:])
        dx, dstate_prev, dweights = self.spec.step_back(dstate, cache)
        for name, g in zip(self.spec.weight_names, dweights):
            self.grads[name] += g
        return dx, dstate_prev
