"""CharRNN: a recurrent language model over characters (or words).

    ids (N, T) -> one-hot or embedding (N, T, E) -> stacked RNN/LSTM/GRU (N, T, H)
        -> dropout -> Linear (N, T, V) logits

``loss(batch) -> (loss, dlogits)`` with ``batch = {"ids": (N, T), "targets": (N, T),
"state": the state to start from (None for zeros)}`` runs the forward pass and the
softmax cross-entropy; ``backward(dlogits)`` fills ``grads`` (truncated at the batch).
The state the batch ends in is ``final_state``: carrying it into the next batch is the
trainer's business. ``step(ids, state)`` is one step of inference for sampling.
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

    def _inputs(self, ids):
        if self.embed is not None:
            return self.embed.forward(ids)
        # One-hot rows are the rows of an identity table: the embedding lookup checks ids.
        xp = backend.get_array_module(ids)
        eye = xp.eye(self.vocab_size, dtype=self.params["head.W"].dtype)
        return F.embedding_forward(ids, eye)[0]  # (N, T, V)

    def forward(self, ids, state=None):
        """ids: (N, T) ints -> logits (N, T, V) and the final recurrent state."""
        hs, state = self.rnn.forward(self._inputs(ids), state)
        return self.head.forward(self.drop.forward(hs)), state

    def loss(self, batch):
        """Mean cross-entropy (nats per symbol) of predicting ``batch["targets"]`` from
        ``batch["ids"]``, starting from ``batch.get("state")`` -> (loss, dlogits).

        ``loss`` is a 0-d array; the state the batch ends in becomes ``final_state``.
        """
        logits, self.final_state = self.forward(batch["ids"], batch.get("state"))
        return F.softmax_cross_entropy(logits, batch["targets"], batch.get("mask"))

    def backward(self, dlogits):
        """Add the gradient of the last ``loss`` into ``grads`` (truncated at the batch)."""
        dhs = self.drop.backward(self.head.backward(dlogits))
        dx, _ = self.rnn.backward(dhs)
        if self.embed is not None:
            self.embed.backward(dx)

    def step(self, ids, state):
        """One step of inference: ids (N,) -> logits (N, V), next state."""
        logits, state = self.forward(ids[:, None], state)
        return logits[:, 0], state
