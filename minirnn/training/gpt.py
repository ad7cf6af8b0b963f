"""The GPT task: a decoder-only transformer on a text corpus, trained on random windows.

    cfg = TrainConfig(model="gpt", num_layers=4, embedding_dim=128, num_heads=4,
                      seq_len=64, batch_size=12, lr=1e-3, time_budget=300)
    result = train(cfg)             # the same loop, metrics, checkpoints and figures

What one step does (nanoGPT's recipe):
  1. draw N windows of ``seq_len`` tokens from anywhere in the training ids, and their
     targets, each window shifted by one (``WindowBatcher``: batch ``s`` depends only on
     the seed and ``s``, so ``--resume`` reads the batches an uninterrupted run reads);
  2. run the model over each window from nothing: no state is carried;
  3. backpropagate through the whole window.
The corpus, the evaluation, the report and the sample are the char-LM's
(``LanguageModelTask``): the validation split is read in order, in windows of
``seq_len`` tokens, each scored on its own.
"""

from __future__ import annotations

from .. import backend
from ..data import WindowBatcher
from ..nn import GPT
from .charlm import LanguageModelTask, _megabytes


class GPTTask(LanguageModelTask):
    """A GPT over random windows of the training ids."""

    kind = "gpt"

    def __init__(self, cfg, log=print):
        super().__init__(cfg, log)
        cfg = self.cfg
        self.windows = WindowBatcher(self.corpus.train_ids, cfg.batch_size, cfg.seq_len,
                                     cfg.seed)
        self.refuse_batches_larger_than_memory()

    def build_model(self):
        c = self.cfg
        return GPT(len(self.vocab), block_size=c.seq_len, num_layers=c.num_layers,
                   embedding_dim=c.embedding_dim, num_heads=c.num_heads, dropout=c.dropout,
                   seed=c.seed)

    def batch(self, step):
        x, y = self.windows.batch(step)
        return {"ids": backend.asarray(x), "targets": backend.asarray(y)}

    def activation_bytes(self):
        """What one training step keeps for the backward pass, roughly: per layer and
        position about 24 E numbers (the inputs and outputs of the layer norms, the
        projections and the 4E-wide MLP) and two rows of attention weights per head, and
        the logits with their gradient."""
        c = self.cfg
        E, heads, V = c.embedding_dim, c.num_heads, len(self.vocab)
        per_position = c.num_layers * (24 * E + 2 * heads * c.seq_len) + 3 * V + 2 * E
        return c.batch_size * c.seq_len * per_position * backend.default_dtype().itemsize

    def describe(self, model):
        c = self.cfg
        return (f"{self.data_text()}; model GPT {c.num_layers} blocks x {c.embedding_dim}, "
                f"{c.num_heads} heads, context {c.seq_len}, {model.num_parameters():,} "
                f"parameters; batches of {c.batch_size} random windows, whose activations "
                f"take about {_megabytes(self.activation_bytes())}")

    def title(self):
        c = self.cfg
        return f"{self.corpus.name}: GPT {c.num_layers}x{c.embedding_dim}, {c.num_heads} heads"
