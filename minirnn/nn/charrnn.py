"""CharRNN: a recurrent language model over characters (or words).

    ids (N, T) -> one-hot or embedding (N, T, E) -> stacked RNN/LSTM/GRU (N, T, H)
        -> dropout -> Linear (N, T, V) logits

``loss(batch) -> (loss, dlogits)`` with ``batch = {"ids": (N, T), "targets": (N, T),
"state": the state to start from (None for zeros)}`` runs the forward pass and the
softmax cross-entropy; ``backward(dlogits)`` fills ``grads`` (truncated at the batch).
The state the batch ends in is ``final_state``: carrying it into the next batch is the
trainer's business. ``step(ids, state)`` is one step of inference for sampling.

Inside, the activations are time-major, ``(T, N, ...)``: the sequence functions keep
their buffers that way (one contiguous block per step), so the layers hand them on as
batch-first *views* and nothing is copied between the embedding, the layers and the
output layer. ``loss`` works on the time-major logits too, so its ``dlogits`` is
``(T, N, V)``: what ``backward`` takes. ``forward`` returns the usual ``(N, T, V)``.
"""

from __future__ import annotations

import numpy as np

from .. import backend
from .. import functional as F
from ..functional.cells import get_cell
from .module import Dropout, Embedding, Linear, Module
from .recurrent import Recurrent


class CharRNN(Module):
    """Language model: ``vocab_size`` symbols, ``num_layers`` cells of ``hidden_size``.

    embedding_dim=None feeds one-hot vectors (char-rnn's way); an int learns an embedding.
    dropout is applied between recurrent layers and before the output layer.
    """

    def __init__(self, vocab_size, hidden_size, num_layers=1, cell="lstm",
                 embedding_dim=None, dropout=0.0, seed=0):
        super().__init__()
        if not isinstance(vocab_size, (int, np.integer)) or vocab_size < 1:
            raise ValueError(f"CharRNN: vocab_size must be a positive int, got {vocab_size!r}")
        get_cell(cell, "CharRNN: cell")
        if embedding_dim is not None and (not isinstance(embedding_dim, (int, np.integer))
                                          or embedding_dim < 1):
            raise ValueError(f"CharRNN: embedding_dim must be None (one-hot) or a positive "
                             f"int, got {embedding_dim!r}")
        self.config = dict(vocab_size=int(vocab_size), hidden_size=int(hidden_size),
                           num_layers=int(num_layers), cell=cell,
                           embedding_dim=None if embedding_dim is None else int(embedding_dim),
                           dropout=float(dropout), seed=int(seed))
        rng = np.random.default_rng(seed)
        self.vocab_size = int(vocab_size)
        self.embed = None
        if embedding_dim is not None:
            self.embed = self.add("embed", Embedding(vocab_size, embedding_dim, rng))
        in_size = vocab_size if embedding_dim is None else embedding_dim
        self.rnn = self.add("rnn", Recurrent(cell, in_size, hidden_size, num_layers,
                                             dropout, seed=seed + 1))
        self.drop = self.add("drop", Dropout(dropout, seed=seed + 2))
        self.head = self.add("head", Linear(hidden_size, vocab_size, rng))
        self.final_state = None

    def initial_state(self, batch_size):
        return self.rnn.initial_state(batch_size)

    def grown(self, vocab_size, seed=0, dropout=None):
        """A copy of this model for a vocabulary of ``vocab_size`` symbols whose first
        ``V`` are this model's (``CharVocab.extended``): every weight is copied, and the
        rows of the new symbols (in the embedding or one-hot input, and the output
        layer) are drawn as a new model's would be. Every old row keeps its meaning."""
        c = dict(self.config, vocab_size=int(vocab_size), seed=seed)
        if dropout is not None:
            c["dropout"] = dropout
        if c["vocab_size"] < self.vocab_size:
            raise ValueError(f"CharRNN.grown: vocab_size must be at least the model's "
                             f"{self.vocab_size}, got {vocab_size}")
        new = CharRNN(**c)
        for k, p in self.params.items():
            new.params[k][tuple(slice(0, n) for n in p.shape)] = p
        return new

    def _inputs(self, ids_tm):
        """ids_tm (T, N) -> the inputs (T, N, E), looked up time-major."""
        if self.embed is not None:
            return self.embed.forward(ids_tm)
        # One-hot rows are the rows of an identity table: the embedding lookup checks ids.
        xp = backend.get_array_module(ids_tm)
        eye = xp.eye(self.vocab_size, dtype=self.params["head.W"].dtype)
        return F.embedding_forward(ids_tm, eye)[0]  # (T, N, V)

    def _logits_tm(self, ids, state):
        """ids (N, T) -> time-major logits (T, N, V) and the final state."""
        x = self._inputs(ids.T)                                       # (T, N, E)
        hs, state = self.rnn.forward(x.transpose(1, 0, 2), state)    # (N, T, H) view
        hs_tm = self.drop.forward(hs.transpose(1, 0, 2))              # (T, N, H)
        return self.head.forward(hs_tm), state                        # (T, N, V)

    def forward(self, ids, state=None):
        """ids: (N, T) ints -> logits (N, T, V) and the final recurrent state."""
        logits, state = self._logits_tm(ids, state)
        return logits.transpose(1, 0, 2), state

    def loss(self, batch):
        """Mean cross-entropy (nats per symbol) of predicting ``batch["targets"]`` from
        ``batch["ids"]``, starting from ``batch.get("state")`` -> (loss, dlogits).

        ``loss`` is a 0-d array and ``dlogits`` is time-major, (T, N, V); the state the
        batch ends in becomes ``final_state``.
        """
        logits, self.final_state = self._logits_tm(batch["ids"], batch.get("state"))
        mask = batch.get("mask")
        return F.softmax_cross_entropy(logits, batch["targets"].T,
                                       None if mask is None else mask.T)

    def backward(self, dlogits):
        """Add the gradient of the last ``loss`` into ``grads`` (truncated at the batch);
        ``dlogits`` is time-major (T, N, V), as ``loss`` returns it."""
        dhs_tm = self.drop.backward(self.head.backward(dlogits))     # (T, N, H)
        dx, _ = self.rnn.backward(dhs_tm.transpose(1, 0, 2))
        if self.embed is not None:
            self.embed.backward(dx.transpose(1, 0, 2))                # (T, N, E)

    def step(self, ids, state):
        """One step of inference: ids (N,) -> logits (N, V), next state."""
        logits, state = self.forward(ids[:, None], state)
        return logits[:, 0], state
