"""The table of recurrent cells: what differs between the RNN, the LSTM and the GRU.

Everything above ``functional`` that works with "a cell of some kind" (the stacked
layers of ``nn.Recurrent``, the seq2seq decoder cell, the gradient checks, the
assignments, the CLI's ``--cell`` choices) reads this table instead of switching on
the cell's name. A cell is described by:

    gates    k, the number of H-wide gate blocks: Wx is (D, kH), Wh is (H, kH)
    states   the names of its state arrays: ("h",) or ("h", "c")
    biases   the names of its bias vectors, each (kH,): ("b",) or ("bx", "bh")
    step_forward / step_backward, forward / backward: its four functions

and the calling convention of those functions, which DESIGN.md fixes, is the same for
every cell once the state is a tuple::

    *state, cache      = step_forward(x, *state, *weights)
    dx, *dstate, *dW   = step_backward(*dstate, cache)
    hs, *rest, cache   = forward(x, *state0, *weights)      rest: (c_last,) or ()
    dx, *dstate0, *dW  = backward(dhs, cache, *drest)       drest: (dc_last,) or ()

where ``weights`` is ``(Wx, Wh, *biases)``. ``Cell.step``, ``Cell.step_back``,
``Cell.sequence`` and ``Cell.sequence_back`` below are those four lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import gru, lstm, rnn


@dataclass(frozen=True)
class Cell:
    """One recurrent cell kind, as the rest of minirnn sees it."""
    name: str
    gates: int
    states: tuple
    biases: tuple
    step_forward: Callable
    step_backward: Callable
    forward: Callable
    backward: Callable

    @property
    def n_state(self):
        return len(self.states)

    @property
    def weight_names(self):
        """The weights in DESIGN's argument order: ("Wx", "Wh", *biases)."""
        return ("Wx", "Wh") + self.biases

    @property
    def step_inputs(self):
        """The step forward's array arguments, e.g. ("x", "h_prev", "c_prev", "Wx", ...)."""
        return ("x",) + tuple(f"{s}_prev" for s in self.states) + self.weight_names

    @property
    def sequence_inputs(self):
        """The sequence forward's array arguments, e.g. ("x", "h0", "c0", "Wx", ...)."""
        return ("x",) + tuple(f"{s}0" for s in self.states) + self.weight_names

    @property
    def step_outputs(self):
        """The step forward's outputs before the cache: ("h",) or ("h", "c")."""
        return self.states

    @property
    def sequence_outputs(self):
        """The sequence forward's outputs before the cache: ("hs",) or ("hs", "c_last")."""
        return ("hs",) + tuple(f"{s}_last" for s in self.states[1:])

    @property
    def step_grads(self):
        """The step backward's returns, e.g. ("dx", "dh_prev", "dc_prev", "dWx", ...)."""
        return tuple("d" + name for name in self.step_inputs)

    @property
    def sequence_grads(self):
        """The sequence backward's returns, e.g. ("dx", "dh0", "dc0", "dWx", ...)."""
        return tuple("d" + name for name in self.sequence_inputs)

    def step(self, x, state, weights):
        """One step: ``x (N, D)``, ``state`` a tuple of (N, H) -> (new state, cache)."""
        *state, cache = self.step_forward(x, *state, *weights)
        return tuple(state), cache

    def step_back(self, dstate, cache):
        """Backward of ``step``: -> (dx, dstate_prev tuple, dweights tuple)."""
        dx, *rest = self.step_backward(*dstate, cache)
        return dx, tuple(rest[:self.n_state]), tuple(rest[self.n_state:])

    def sequence(self, x, state0, weights):
        """A sequence: ``x (N, T, D)`` -> (hs (N, T, H), final state tuple, cache)."""
        hs, *rest, cache = self.forward(x, *state0, *weights)
        return hs, (hs[:, -1],) + tuple(rest), cache

    def sequence_back(self, dhs, dfinal, cache):
        """Backward of ``sequence``: dhs (N, T, H) and the gradient of the final state
        (a tuple, or None for zeros) -> (dx, dstate0 tuple, dweights tuple).

        The final h is the last row of hs, so its gradient is added into ``dhs``; the
        other final states (the LSTM's c) have their own argument in the backward.
        """
        extra = ()
        if dfinal is not None:
            dhs = dhs.copy()
            dhs[:, -1] += dfinal[0]
            extra = tuple(dfinal[1:])
        dx, *rest = self.backward(dhs, cache, *extra)
        return dx, tuple(rest[:self.n_state]), tuple(rest[self.n_state:])


CELLS = {c.name: c for c in (
    Cell("rnn", 1, ("h",), ("b",), rnn.rnn_step_forward, rnn.rnn_step_backward,
         rnn.rnn_forward, rnn.rnn_backward),
    Cell("lstm", 4, ("h", "c"), ("b",), lstm.lstm_step_forward, lstm.lstm_step_backward,
         lstm.lstm_forward, lstm.lstm_backward),
    Cell("gru", 3, ("h",), ("bx", "bh"), gru.gru_step_forward, gru.gru_step_backward,
         gru.gru_forward, gru.gru_backward),
)}


def get_cell(name, owner="cell"):
    """The table entry called ``name``; a ValueError naming the choices otherwise."""
    if name not in CELLS:
        raise ValueError(f"{owner} must be one of {', '.join(CELLS)}, got {name!r}")
    return CELLS[name]
