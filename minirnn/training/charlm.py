"""The char-LM task: a recurrent language model on a text corpus, truncated BPTT.

    cfg = TrainConfig(data="tinyshakespeare", steps=2000, out="runs/shakespeare")
    result = train(cfg)             # progress bar, metrics.jsonl, checkpoint.npz, loss.png

What one step does (char-rnn's recipe):
  1. take batch ``i`` of N parallel streams, ``ids`` and ``targets = ids`` shifted by one;
  2. run the model from the state the previous batch ended in (zeros at a stream start);
  3. backpropagate through these T steps only (the state is carried, its gradient is not).
The carried state belongs to this task, not to the model: the batch hands it to
``CharRNN.loss`` and ``after_step`` keeps the model's ``final_state`` for the next batch.
Every ``eval_every`` steps the whole validation split is read (its own carried state)
and reported in nats per symbol, bits per symbol (nats / ln 2) and perplexity (e^nats),
with a sample of text.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .. import backend
from ..checkpoint import load_module
from ..data import StreamBatcher, load_corpus, shrink_to_fit, vocab_from_json
from ..functional.cells import CELLS
from ..nn import GPT, CharRNN
from .config import RunConfig, SettingError, positive, setting
from .loop import OPTIMIZERS, Task


@dataclass
class TrainConfig(RunConfig):
    """Every setting of a language-model run (the flags of ``minirnn train``)."""
    data: str = setting("tinyshakespeare", "corpus name (tinyshakespeare, ptb) or the path "
                        "of a text file")
    level: str = setting("char", "model characters or words", choices=("char", "word"))
    model: str = setting("rnn", "rnn: a recurrent net (--cell) over carried-state streams; "
                         "gpt: a transformer over random windows of --seq-len",
                         choices=("rnn", "gpt"))
    cell: str = setting("lstm", "recurrent cell", choices=tuple(CELLS))
    hidden_size: int = positive(256, "units per recurrent layer")
    num_layers: int = positive(2, "stacked recurrent layers (transformer blocks for --model "
                               "gpt)")
    embedding_dim: Optional[int] = positive(None, "size of a learned embedding (none: "
                                            "one-hot input); the transformer's width for "
                                            "--model gpt, which needs it", kind=int,
                                            optional=True)
    num_heads: int = positive(4, "attention heads of --model gpt (they divide "
                              "--embedding-dim)")
    dropout: float = setting(0.0, "dropout between layers and before the output layer",
                             low=0.0, high=1.0)
    batch_size: int = positive(64, "parallel streams per batch (N)")
    seq_len: int = positive(64, "steps of truncated backprop through time (T); the "
                            "context window of --model gpt")
    optimizer: str = setting("adam", "update rule", choices=tuple(sorted(OPTIMIZERS)))
    eval_batches: Optional[int] = positive(None, "validation batches per evaluation (none: "
                                           "the whole split)", kind=int, optional=True,
                                           may_change=True)
    sample_length: int = setting(200, "characters of sample text after each evaluation",
                                 low=0, may_change=True)
    val_fraction: float = setting(0.1, "the end of the text held out for validation",
                                  low=0.0, high=1.0)
    encoding: str = setting("utf-8", "text encoding of --data")
    max_vocab: int = positive(10000, "largest vocabulary: most distinct characters (char "
                              "level) or most frequent words kept (word level)")
    init_from: Optional[str] = setting(None, "start from the weights of this language-model "
                                       "checkpoint (fine-tuning on --data): its cell and "
                                       "sizes are kept, and symbols it has not seen get new "
                                       "rows", kind=str, optional=True)
    out: str = setting("runs/charrnn", "run folder: checkpoint.npz, metrics.jsonl and "
                       "loss.png go here", may_change=True)

    def __post_init__(self):
        super().__post_init__()
        if self.model != "gpt":
            return
        owner = type(self).__name__
        if self.embedding_dim is None:
            raise SettingError(owner, "embedding_dim", "must be set for --model gpt (the "
                                                       "transformer's width), got None")
        if self.embedding_dim % self.num_heads:
            raise SettingError(owner, "num_heads", f"must divide --embedding-dim "
                                                   f"{self.embedding_dim} into equal heads, "
                                                   f"got {self.num_heads}")
        if self.init_from is not None:
            raise SettingError(owner, "init_from", "fine-tunes a recurrent model; it does not "
                                                   "take --model gpt (train a GPT from "
                                                   "scratch)")


def evaluate(model, batcher, max_batches=None):
    """Mean loss (nats per symbol) over a split, reading it in order with a carried state."""
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    n = len(batcher) if max_batches is None else min(len(batcher), max_batches)
    for i in range(n):
        x, y = batcher.batch(i)
        loss, _ = model.loss({"ids": backend.asarray(x), "targets": backend.asarray(y),
                              "state": state})
        state = model.final_state
        total += float(loss) * y.size
        count += y.size
    model.train(was_training)
    return total / count if count else float("nan")


class LanguageModelTask(Task):
    """A corpus split into training and validation ids, and how to score and sample a
    language model on it: what the char-LM and the GPT share."""

    def __init__(self, cfg, log=print):
        self.base, base_vocab = None, None
        if cfg.init_from is not None:
            self.base, base_vocab, cfg = _start_from(cfg, log)
        corpus = load_corpus(cfg.data, level=cfg.level, val_fraction=cfg.val_fraction,
                             encoding=cfg.encoding, max_vocab=cfg.max_vocab,
                             base_vocab=base_vocab)
        if corpus.note:
            log(f"note: {corpus.note}")
        n_train, n_val = len(corpus.train_ids), len(corpus.val_ids)
        if n_train < 2:
            held = (f", after --val-fraction {cfg.val_fraction} kept {n_val} for validation"
                    if n_val else "")
            raise ValueError(
                f"{corpus.name}: the training split has {n_train} {cfg.level}(s) (of "
                f"{n_train + n_val} in the corpus{held}); training needs at least 2 (one "
                f"input and its target). Use a longer text"
                + (" or --val-fraction 0." if n_val else "."))
        N, T, msg = shrink_to_fit(n_train, cfg.batch_size, cfg.seq_len,
                                  what="the training split")
        if msg:
            log(f"note: {msg}")
            cfg = dataclasses.replace(cfg, batch_size=N, seq_len=T)
        super().__init__(cfg, log)
        self.corpus, self.vocab = corpus, corpus.vocab
        self.unit = f"{cfg.level}s"
        self.evaluate_at_start = self.base is not None  # the loss before fine-tuning
        if self.base is not None:
            log(f"fine-tuning {cfg.init_from} on {corpus.name}: "
                f"{len(self.vocab) - len(base_vocab)} new {cfg.level}(s) get new rows, the "
                f"{len(base_vocab)} the model knows keep theirs")
        self.val_batches = None
        if n_val >= 2:
            vN, vT, vmsg = shrink_to_fit(n_val, N, T, what="the validation split")
            if vmsg:
                log(f"note: {vmsg}")
            self.val_batches = StreamBatcher(corpus.val_ids, vN, vT)
        else:
            log(f"note: the validation split has {n_val} {cfg.level}(s) (--val-fraction "
                f"{cfg.val_fraction}), fewer than the 2 one batch needs; no validation loss")

    def items(self, batch):
        return int(batch["targets"].size)

    def evaluate(self, model):
        if self.val_batches is None:
            return {}
        nats = evaluate(model, self.val_batches, self.cfg.eval_batches)
        return {"val_loss": nats, "val_bpc": nats / math.log(2),
                "val_ppl": math.exp(min(nats, 700))}

    def report(self, step, m):
        level = self.cfg.level
        return (f"step {step}: val {m['val_loss']:.4f} nats/{level}, {m['val_bpc']:.3f} "
                f"bits/{level}, perplexity {m['val_ppl']:.2f}")

    def sample(self, model, step):
        if not self.cfg.sample_length:
            return ""
        from ..generate import sample
        return sample(model, self.vocab, prompt=self.vocab.decode(self.corpus.train_ids[:1]),
                      length=self.cfg.sample_length, temperature=0.8, seed=self.cfg.seed + step)

    def metadata(self):
        return {"vocab": self.vocab.to_json()}

    def load_state(self, arrays, meta):
        if self.vocab.to_json() != meta["vocab"]:
            raise ValueError("vocabulary: the corpus now gives a different vocabulary from "
                             "the checkpoint's")

    def activation_bytes(self):
        """What one training step keeps in memory for the backward pass, roughly."""
        raise NotImplementedError

    def refuse_batches_larger_than_memory(self):
        cfg = self.cfg
        need, have = self.activation_bytes(), _physical_memory()
        if have and need > have:
            raise ValueError(f"batches of {cfg.batch_size}x{cfg.seq_len} need about "
                             f"{_megabytes(need)} for their activations, more than this "
                             f"machine's {_megabytes(have)} of memory; use a smaller "
                             f"--batch-size or --seq-len")

    def data_text(self):
        c, level = self.corpus, self.cfg.level
        return (f"{c.name}: {len(c.train_ids):,} train / {len(c.val_ids):,} val {level}s, "
                f"vocabulary {len(self.vocab)}")


class CharLMTask(LanguageModelTask):
    """A CharRNN over N parallel streams of the training ids, the state carried."""

    kind = "charrnn"

    def __init__(self, cfg, log=print):
        super().__init__(cfg, log)
        cfg = self.cfg
        self.batches = StreamBatcher(self.corpus.train_ids, cfg.batch_size, cfg.seq_len)
        self.batch_index, self.carried = 0, None
        self.refuse_batches_larger_than_memory()

    def build_model(self):
        c = self.cfg
        if self.base is not None:
            return self.base.grown(len(self.vocab), seed=c.seed, dropout=c.dropout)
        return CharRNN(len(self.vocab), c.hidden_size, c.num_layers, c.cell, c.embedding_dim,
                       c.dropout, c.seed)

    def batch(self, step):
        if self.batch_index >= len(self.batches):  # end of the streams: start over from zeros
            self.batch_index, self.carried = 0, None
        x, y = self.batches.batch(self.batch_index)
        return {"ids": backend.asarray(x), "targets": backend.asarray(y), "state": self.carried}

    def after_step(self, model):
        self.carried = model.final_state
        self.batch_index += 1

    def describe(self, model):
        c = self.cfg
        return (f"{self.data_text()}; model {c.num_layers}x{c.cell.upper()} {c.hidden_size}, "
                f"{model.num_parameters():,} parameters; batches {c.batch_size}x{c.seq_len}, "
                f"whose activations take about {_megabytes(self.activation_bytes())}")

    def activation_bytes(self):
        """What one training step keeps in memory for the backward pass, roughly: per
        layer the inputs, the gates, c, tanh(c) and h of every step and their gradients,
        and the logits with their gradient."""
        c = self.cfg
        k = CELLS[c.cell].gates
        E = c.embedding_dim or len(self.vocab)
        per_step = sum((E if layer == 0 else c.hidden_size) + 2 * (k + 3) * c.hidden_size
                       for layer in range(c.num_layers)) + 3 * len(self.vocab)
        return c.batch_size * c.seq_len * per_step * backend.default_dtype().itemsize

    def title(self):
        c = self.cfg
        return f"{self.corpus.name}: {c.cell} {c.num_layers}x{c.hidden_size}"

    def state(self):
        arrays = {} if self.carried is None else \
            {f"state/{i}": s for i, s in enumerate(self.carried)}
        return arrays, {"batch_index": self.batch_index}

    def load_state(self, arrays, meta):
        super().load_state(arrays, meta)
        self.batch_index = meta["task"]["batch_index"]
        n = len(arrays)
        self.carried = tuple(backend.asarray(arrays[f"state/{i}"]) for i in range(n)) or None


def _start_from(cfg, log):
    """(model, vocabulary, cfg) to fine-tune from ``cfg.init_from``: the config takes the
    checkpoint's cell and sizes (a note says so when they differ from the flags)."""
    model, vocab, meta = load_model(cfg.init_from)
    if not isinstance(model, CharRNN):
        raise ValueError(f"--init-from {cfg.init_from} holds a {meta['kind']} model; "
                         f"fine-tuning takes a recurrent one (a charrnn checkpoint)")
    if vocab.kind != cfg.level:
        raise ValueError(f"--init-from {cfg.init_from} is a {vocab.kind}-level model; pass "
                         f"--level {vocab.kind}")
    kept = {k: model.config[k] for k in ("cell", "hidden_size", "num_layers", "embedding_dim")}
    changed = {k: v for k, v in kept.items() if getattr(cfg, k) != v}
    if changed:
        log("note: --init-from keeps the checkpoint's " + ", ".join(
            f"{k.replace('_', '-')} {v}" for k, v in changed.items()))
    return model, vocab, dataclasses.replace(cfg, **kept)


def _megabytes(n):
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def _physical_memory():
    """Bytes of memory this machine has (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


LANGUAGE_MODELS = {"charrnn": CharRNN, "gpt": GPT}


def load_model(path):
    """(model, vocab, metadata) from a language-model checkpoint (``minirnn train``).

    Refuses a checkpoint whose weights hold NaN or Inf, naming them."""
    model, _, meta = load_module(path, LANGUAGE_MODELS)
    bad = [k for k, p in model.params.items() if not np.isfinite(backend.to_numpy(p)).all()]
    if bad:
        raise ValueError(f"load_model: {path} holds non-finite weights in {', '.join(bad)}; "
                         "this checkpoint cannot be sampled from (train again or resume "
                         "from an earlier one)")
    return model, vocab_from_json(meta["vocab"]), meta
