"""Classroom assignments generated from the library's own source.

``make`` writes a student workspace: the package with the graded modules' solution
regions (``### BEGIN SOLUTION`` ... ``### END SOLUTION``) replaced by ``raise
NotImplementedError()``, the matching notebook with nbgrader cell metadata, and public
tests. ``grade`` scores workspaces: the student's code runs in a child process that
sees only what it needs, on cases only the teacher's side can draw, and every value it
returns is judged in the teacher's process. See docs/classroom.md.

An assignment is one entry of ``ASSIGNMENTS``: the ops it grades are names of
``minirnn.gradcheck.OPS`` (which says how to make their inputs and call them), each with
the points of its forward and its backward function. The modules the student edits are
the ones that hold those functions.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Assignment:
    name: str
    notebook: str   # notebooks/<notebook>.ipynb walks through it
    title: str
    graded: tuple   # ((op in gradcheck.OPS, forward points, backward points), ...)

    @property
    def modules(self):
        """The modules holding the graded functions, e.g. ``("minirnn.functional.lstm",)``,
        in the order the ops name them (read from the library, so never out of step)."""
        from .. import functional as F
        from ..gradcheck import OPS

        names = []
        for op, _, _ in self.graded:
            for fn in (OPS[op].forward_fn, OPS[op].backward_fn):
                module = getattr(F, fn).__module__
                if module not in names:
                    names.append(module)
        return tuple(names)

    @property
    def files(self):
        """The files the student edits, e.g. ``("minirnn/functional/lstm.py",)``."""
        return tuple(m.replace(".", "/") + ".py" for m in self.modules)


ASSIGNMENTS = {a.name: a for a in (
    Assignment("rnn", "01_vanilla_rnn", "the vanilla RNN: step and sequence, forward and "
               "backward through time", (("rnn_step", 2, 3), ("rnn", 2, 3))),
    Assignment("lstm", "02_lstm", "the LSTM: gates, cell state, backward through time",
               (("lstm_step", 2, 3), ("lstm", 2, 3))),
    Assignment("gru", "03_gru", "the GRU (PyTorch/cuDNN form): forward and backward",
               (("gru_step", 2, 3), ("gru", 2, 3))),
    Assignment("attention", "05_attention",
               "additive (Bahdanau) attention: masked softmax, forward and backward",
               (("additive_attention", 4, 6),)),
    Assignment("transformer", "07_gpt", "the transformer's layer norm and causal multi-head "
               "self-attention: forward and backward",
               (("layer_norm", 2, 3), ("causal_self_attention", 4, 6))),
)}


def get(name):
    """The assignment called ``name``; ValueError listing the names otherwise."""
    if name not in ASSIGNMENTS:
        raise ValueError(f"assignment must be one of {', '.join(ASSIGNMENTS)}, got {name!r}")
    return ASSIGNMENTS[name]
