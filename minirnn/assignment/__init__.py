"""Classroom assignments generated from the library's own source.

``make`` writes a student workspace: the package with one module's solution regions
(``### BEGIN SOLUTION`` ... ``### END SOLUTION``) replaced by ``raise
NotImplementedError()``, the matching notebook with nbgrader cell metadata, and the
graded tests. ``grade`` runs those tests against a workspace in a separate process and
scores every function. See docs/classroom.md.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Assignment:
    name: str
    module: str     # minirnn/functional/<module>.py holds the solution regions
    notebook: str   # notebooks/<notebook>.ipynb walks through it
    title: str


ASSIGNMENTS = {a.name: a for a in (
    Assignment("rnn", "rnn", "01_vanilla_rnn", "the vanilla RNN: step and sequence, "
               "forward and backward through time"),
    Assignment("lstm", "lstm", "02_lstm", "the LSTM: gates, cell state, backward through time"),
    Assignment("gru", "gru", "03_gru", "the GRU (PyTorch/cuDNN form): forward and backward"),
    Assignment("attention", "attention", "05_attention",
               "additive (Bahdanau) attention: masked softmax, forward and backward"),
)}


def get(name):
    """The assignment called ``name``; ValueError listing the names otherwise."""
    if name not in ASSIGNMENTS:
        raise ValueError(f"assignment must be one of {', '.join(ASSIGNMENTS)}, got {name!r}")
    return ASSIGNMENTS[name]
