"""Training and using a Seq2Seq model on a task generated in code (dates, reverse, sort).

    cfg = Seq2SeqConfig(task="dates", time_budget=300, out="runs/dates")
    result = train_seq2seq(cfg)            # progress bar, metrics.jsonl, checkpoint.npz
    model, vocab, meta = load_seq2seq("runs/dates/checkpoint.npz")
    translate(model, vocab, ["tue 3 march 2020"], beam_width=4)   # ["2020-03-03"]

Every ``eval_every`` steps the held-out test set (1,000 pairs, fixed by the task's seed)
is decoded greedily and scored by exact match.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from . import backend, generate, optim
from .checkpoint import load_module, save_checkpoint
from .data.tasks import TASKS, Seq2SeqVocab, TaskData, encode_batch, exact_match
from .nn import Seq2Seq
from .train import check_positive, check_run_budget, progress_bar

CHECKPOINT = "checkpoint.npz"


@dataclass
class Seq2SeqConfig:
    task: str = "dates"
    cell: str = "lstm"
    bidirectional: bool = True
    embedding_dim: int = 32
    hidden_size: int = 64
    attention_size: int = 32
    batch_size: int = 64
    lr: float = 5e-3
    clip: float = 5.0
    steps: Optional[int] = None
    time_budget: Optional[float] = None
    eval_every: int = 250
    n_train: int = 50_000
    n_test: int = 1000
    seed: int = 0
    out: str = "runs/seq2seq"
    progress: bool = True

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"Seq2SeqConfig: task must be one of {TASKS}, got {self.task!r}")
        if self.cell not in ("lstm", "gru"):
            raise ValueError(f"Seq2SeqConfig: cell must be 'lstm' or 'gru', got {self.cell!r}")
        check_positive(self, ("embedding_dim", "hidden_size", "attention_size", "batch_size",
                              "eval_every", "n_train", "n_test"))
        check_run_budget(self, default_steps=3000)


def _device_batch(batch):
    return {k: backend.asarray(v) for k, v in batch.items()}


def _encode_sources(vocab, sources):
    """Source strings -> padded ids (N, S) and their mask, on the backend."""
    rows = [vocab.encode(s) for s in sources]  # names unknown characters
    S = max(len(r) for r in rows)
    src = np.full((len(rows), S), vocab.pad_id, dtype=np.int32)
    mask = np.zeros((len(rows), S), dtype=bool)
    for n, r in enumerate(rows):
        src[n, :len(r)], mask[n, :len(r)] = r, True
    return backend.asarray(src), backend.asarray(mask)


def translate(model, vocab, sources, beam_width=1, max_len=None, length_norm=1.0):
    """Decode each source string; greedy for beam_width 1, else beam search. -> strings."""
    if isinstance(sources, str):
        raise TypeError("translate: sources must be a list of strings, got one str")
    for s in sources:
        if not isinstance(s, str) or not s:
            raise ValueError(f"translate: every source must be a non-empty string, got {s!r}")
    src, mask = _encode_sources(vocab, sources)
    max_len = max_len or 2 * src.shape[1] + 10
    model.eval()
    keys, _ = model.encode(src, mask)
    state = model.initial_state(keys, mask)
    xp = backend.get_array_module(src)
    start = xp.full(len(sources), vocab.sos_id, dtype=src.dtype)
    if beam_width == 1:
        ids, _ = generate.greedy_decode(model.step, state, start, max_len, eos_id=vocab.eos_id)
        return [vocab.decode(row) for row in ids]
    beams = generate.beam_search(model.step, state, start, beam_width, max_len,
                                 eos_id=vocab.eos_id, length_norm=length_norm)
    return [vocab.decode(np.asarray(hyps[0][0])) for hyps in beams]


def attention_weights(model, vocab, source, target):
    """The attention weights (T, S) of producing ``target`` (+ <eos>) from ``source``."""
    batch = _device_batch(encode_batch(vocab, [(source, target)]))
    model.loss(batch["src"], batch["src_mask"], batch["tgt_in"], batch["tgt_out"],
               batch["tgt_mask"])
    model._cache = None
    return backend.to_numpy(model.last_weights[0])


def evaluate_exact_match(model, data, batch_size=500):
    preds = []
    for i in range(0, len(data.test_pairs), batch_size):
        chunk = data.test_pairs[i:i + batch_size]
        preds += translate(model, data.vocab, [s for s, _ in chunk])
    return exact_match(preds, [t for _, t in data.test_pairs])


def train_seq2seq(cfg: Seq2SeqConfig, log=print):
    """Train a Seq2Seq model on ``cfg.task``; returns (model, vocab, history dict)."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    data = TaskData(cfg.task, n_train=cfg.n_train, n_test=cfg.n_test, seed=cfg.seed)
    vocab = data.vocab
    model = Seq2Seq(len(vocab), cfg.embedding_dim, cfg.hidden_size, cfg.attention_size,
                    cfg.cell, cfg.bidirectional, cfg.seed)
    opt = optim.Adam(model.params, model.grads, lr=cfg.lr)
    batches = data.batches(cfg.batch_size, np.random.default_rng(cfg.seed))
    log(f"{cfg.task}: {len(data.train_pairs):,} training pairs, {len(data.test_pairs):,} held "
        f"out; vocabulary {len(vocab)}; {model.num_parameters():,} parameters")
    bar = progress_bar(cfg.progress, cfg.steps, 0)
    step, train_time, accuracy = 0, 0.0, None
    with open(out / "metrics.jsonl", "w", encoding="utf-8") as metrics:
        while (cfg.steps is None or step < cfg.steps) and \
                (cfg.time_budget is None or train_time < cfg.time_budget):
            t0 = time.perf_counter()
            b = _device_batch(next(batches))
            model.train()
            model.zero_grad()
            loss, dlogits = model.loss(b["src"], b["src_mask"], b["tgt_in"], b["tgt_out"],
                                       b["tgt_mask"])
            loss = float(loss)
            if not math.isfinite(loss):
                raise RuntimeError(f"train_seq2seq: the loss became {loss} at step {step + 1}; "
                                   f"try a lower lr (now {cfg.lr})")
            model.backward(dlogits)
            norm = optim.clip_grad_norm(model.grads, cfg.clip)
            opt.step()
            step += 1
            train_time += time.perf_counter() - t0
            metrics.write(json.dumps({"step": step, "train_time": round(train_time, 3),
                                      "loss": loss, "grad_norm": norm}) + "\n")
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            if step % cfg.eval_every == 0:
                accuracy = evaluate_exact_match(model, data)
                metrics.write(json.dumps({"step": step, "train_time": round(train_time, 3),
                                          "exact_match": accuracy}) + "\n")
                metrics.flush()
                bar.write(f"step {step}: exact match {accuracy:.4f} on {len(data.test_pairs)} "
                          f"held-out pairs ({train_time:.0f} s of training)")
        bar.close()
        if step % cfg.eval_every or accuracy is None:
            accuracy = evaluate_exact_match(model, data)
            metrics.write(json.dumps({"step": step, "train_time": round(train_time, 3),
                                      "exact_match": accuracy}) + "\n")
    save_checkpoint(out / CHECKPOINT, {f"model/{k}": v for k, v in model.params.items()},
                    {"kind": "seq2seq", "model": model.config, "train": asdict(cfg),
                     "vocab": vocab.to_json(), "step": step, "train_time": train_time,
                     "exact_match": accuracy})
    log(f"stopped at step {step} after {train_time:.0f} s of training: exact match "
        f"{accuracy:.4f}; checkpoint {out / CHECKPOINT}")
    return model, vocab, {"step": step, "train_time": train_time, "exact_match": accuracy}


def load_seq2seq(path):
    """(model, vocab, metadata) from a checkpoint written by ``train_seq2seq``."""
    model, _, meta = load_module(path, "seq2seq", Seq2Seq)
    return model.eval(), Seq2SeqVocab.from_json(meta["vocab"]), meta
