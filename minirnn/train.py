"""The char-RNN trainer: truncated BPTT with the hidden state carried across batches.

    cfg = TrainConfig(data="tinyshakespeare", steps=2000, out="runs/shakespeare")
    result = train(cfg)             # progress bar, metrics.jsonl, checkpoint.npz, loss.png

What one step does (char-rnn's recipe):
  1. take batch ``i`` of N parallel streams, ``x`` and ``y = x`` shifted by one (N, T);
  2. run the model from the state the previous batch ended in (zeros at a stream start);
  3. backpropagate through these T steps only (the state is carried, its gradient is not);
  4. clip the global gradient norm, take an optimizer step.
Every ``eval_every`` steps the whole validation split is read (its own carried state)
and reported in nats per symbol, bits per symbol (nats / ln 2) and perplexity (e^nats),
with a sample of text. The time budget counts training steps only, not evaluation.

A run directory holds ``metrics.jsonl`` (one JSON record per step and per evaluation),
``checkpoint.npz`` (written atomically every ``save_every`` steps, at the end and on
Ctrl-C) and ``loss.png``. ``resume=True`` continues from the checkpoint so exactly that
an interrupted-and-resumed run ends with the parameters of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from . import backend, generate, optim
from .checkpoint import is_finite_checkpoint, load_checkpoint, load_module, save_checkpoint
from .data import StreamBatcher, load_corpus, shrink_to_fit, vocab_from_json
from .nn import CharRNN, Dropout

OPTIMIZERS = {"sgd": optim.SGD, "momentum": optim.SGD, "adagrad": optim.Adagrad,
              "rmsprop": optim.RMSProp, "adam": optim.Adam, "adamw": optim.AdamW}
CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.jsonl"

# Settings that may differ on --resume (everything else must match the checkpoint).
RESUME_MAY_CHANGE = ("steps", "time_budget", "lr", "eval_every", "eval_batches", "save_every",
                     "progress", "sample_length", "out")


def check_positive(cfg, names, kind=int, optional=False):
    """Refuse the first of ``names`` in the config ``cfg`` that is not a positive ``kind``
    (``None`` passes when ``optional``), with a message naming the field and its value."""
    for name in names:
        v = getattr(cfg, name)
        if optional and v is None:
            continue
        if not isinstance(v, kind) or isinstance(v, bool) or v <= 0:
            what = "integer" if kind is int else "number"
            raise ValueError(f"{type(cfg).__name__}: {name} must be a positive {what}, "
                             f"got {v!r}")


def check_run_budget(cfg, default_steps):
    """The settings every trainer's config shares: ``lr`` and ``clip`` > 0, ``steps`` and
    ``time_budget`` each None or > 0; with neither given, ``default_steps`` steps."""
    check_positive(cfg, ("lr", "clip"), (int, float))
    check_positive(cfg, ("steps",), optional=True)
    check_positive(cfg, ("time_budget",), (int, float), optional=True)
    if cfg.steps is None and cfg.time_budget is None:
        cfg.steps = default_steps


@dataclass
class TrainConfig:
    """Every setting of a training run (the CLI's flags map one to one)."""
    data: str = "tinyshakespeare"
    level: str = "char"
    cell: str = "lstm"
    hidden_size: int = 256
    num_layers: int = 2
    embedding_dim: Optional[int] = None
    dropout: float = 0.0
    batch_size: int = 64
    seq_len: int = 64
    optimizer: str = "adam"
    lr: float = 2e-3
    clip: float = 5.0
    steps: Optional[int] = None
    time_budget: Optional[float] = None
    eval_every: int = 200
    eval_batches: Optional[int] = None
    save_every: int = 500
    sample_length: int = 200
    seed: int = 0
    val_fraction: float = 0.1
    encoding: str = "utf-8"
    max_vocab: int = 10000
    out: str = "runs/charrnn"
    progress: bool = True

    def __post_init__(self):
        check_positive(self, ("hidden_size", "num_layers", "batch_size", "seq_len",
                              "eval_every", "save_every"))
        check_run_budget(self, default_steps=2000)
        check_positive(self, ("eval_batches", "embedding_dim"), optional=True)
        if self.level not in ("char", "word"):
            raise ValueError(f"TrainConfig: level must be 'char' or 'word', got {self.level!r}")
        if self.cell not in ("rnn", "lstm", "gru"):
            raise ValueError(f"TrainConfig: cell must be 'rnn', 'lstm' or 'gru', got {self.cell!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"TrainConfig: optimizer must be one of {sorted(OPTIMIZERS)}, "
                             f"got {self.optimizer!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"TrainConfig: dropout must be in [0, 1), got {self.dropout!r}")
        if self.sample_length < 0:
            raise ValueError(f"TrainConfig: sample_length must be >= 0, got {self.sample_length!r}")


class TrainingDiverged(RuntimeError):
    """The loss, the gradient norm, the weights or the validation loss became NaN/Inf, or
    the loss rose above 3x the run's first loss."""


@dataclass
class TrainResult:
    model: CharRNN
    vocab: object
    step: int
    train_loss: float
    val_loss: Optional[float]
    out: Path
    stopped_by: str


def make_optimizer(name, model, lr):
    cls = OPTIMIZERS[name]
    if name == "momentum":
        return cls(model.params, model.grads, lr=lr, momentum=0.9)
    return cls(model.params, model.grads, lr=lr)


def _dropouts(model):
    found, stack = [], [model]
    while stack:
        m = stack.pop()
        if isinstance(m, Dropout):
            found.append(m)
        stack.extend(m._children.values())
    return found


def evaluate(model, batcher, max_batches=None):
    """Mean loss (nats per symbol) over a split, reading it in order with a carried state."""
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    n = len(batcher) if max_batches is None else min(len(batcher), max_batches)
    for i in range(n):
        x, y = batcher.batch(i)
        loss, state = model.loss(backend.asarray(x), backend.asarray(y), state)
        total += float(loss) * y.size
        count += y.size
    model.train(was_training)
    return total / count if count else float("nan")


def _checkpoint_arrays(model, opt, state):
    arrays = {f"model/{k}": v for k, v in model.params.items()}
    arrays.update({f"optim/{k}": v for k, v in opt.state_dict()["arrays"].items()})
    if state is not None:
        arrays.update({f"state/{i}": s for i, s in enumerate(state)})
    return arrays


def _save(out, model, opt, vocab, cfg, step, batch_index, state, train_time, extra=None):
    metadata = {
        "kind": "charrnn",
        "model": model.config,
        "train": asdict(cfg),
        "vocab": vocab.to_json(),
        "optim": opt.state_dict()["hyper"],
        "step": step,
        "batch_index": batch_index,
        "has_state": state is not None,
        "dropout_rng": [d.rng_state() for d in _dropouts(model)],
        "train_time": train_time,
        **(extra or {}),
    }
    return save_checkpoint(out / CHECKPOINT, _checkpoint_arrays(model, opt, state), metadata)


def load_model(path):
    """(model, vocab, metadata) from a checkpoint written by the trainer."""
    model, _, meta = load_module(path, "charrnn", CharRNN)
    bad = [k for k, p in model.params.items() if not np.isfinite(backend.to_numpy(p)).all()]
    if bad:
        raise ValueError(f"load_model: {path} holds non-finite weights in {', '.join(bad)}; "
                         "this checkpoint cannot be sampled from (train again or resume "
                         "from an earlier one)")
    return model, vocab_from_json(meta["vocab"]), meta


def _fmt_loss(x):
    return "none yet" if x is None or not math.isfinite(x) else f"{x:.4g}"


def _fmt_setting(x):
    return "none" if x is None else str(x)


def _resume_differences(old, new):
    diffs = []
    for key in old:
        if key in RESUME_MAY_CHANGE:
            continue
        if old[key] != new.get(key):
            diffs.append(f"{key}: checkpoint has {old[key]!r}, now {new.get(key)!r}")
    return diffs


def train(cfg: TrainConfig, resume=False, log=print):
    """Train a CharRNN as ``cfg`` says; returns a TrainResult. See the module docstring."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = load_corpus(cfg.data, level=cfg.level, val_fraction=cfg.val_fraction,
                         encoding=cfg.encoding, max_vocab=cfg.max_vocab)
    if corpus.note:
        log(f"note: {corpus.note}")
    n_train, n_val = len(corpus.train_ids), len(corpus.val_ids)
    if n_train < 2:
        held = (f", after --val-fraction {cfg.val_fraction} kept {n_val} for validation"
                if n_val else "")
        raise ValueError(
            f"{corpus.name}: the training split has {n_train} {cfg.level}(s) (of "
            f"{n_train + n_val} in the corpus{held}); training needs at least 2 (one input "
            f"and its target). Use a longer text" + (" or --val-fraction 0." if n_val else "."))
    N, T, msg = shrink_to_fit(n_train, cfg.batch_size, cfg.seq_len, what="the training split")
    if msg:
        log(f"note: {msg}")
        cfg = dataclasses.replace(cfg, batch_size=N, seq_len=T)
    batches = StreamBatcher(corpus.train_ids, N, T)
    val_batches = None
    if n_val >= 2:
        vN, vT, vmsg = shrink_to_fit(n_val, N, T, what="the validation split")
        if vmsg:
            log(f"note: {vmsg}")
        val_batches = StreamBatcher(corpus.val_ids, vN, vT)
    else:
        log(f"note: the validation split has {n_val} {cfg.level}(s) (--val-fraction "
            f"{cfg.val_fraction}), fewer than the 2 one batch needs; no validation loss")
    vocab = corpus.vocab

    model = CharRNN(len(vocab), cfg.hidden_size, cfg.num_layers, cfg.cell,
                    cfg.embedding_dim, cfg.dropout, cfg.seed)
    opt = make_optimizer(cfg.optimizer, model, cfg.lr)
    step, batch_index, state, train_time = 0, 0, None, 0.0
    first_loss, last_loss = None, float("nan")  # first: the reference of the 3x rule
    saved_step = None  # the step of the checkpoint on disk that this run stands on
    metrics_mode = "w"

    if resume:
        ckpt = out / CHECKPOINT
        arrays, meta = load_checkpoint(ckpt)
        diffs = _resume_differences(meta["train"], asdict(cfg))
        if vocab.to_json() != meta["vocab"]:
            diffs.append("vocabulary: the corpus now gives a different vocabulary")
        if diffs:
            raise ValueError(f"cannot resume from {ckpt}: settings differ from the "
                             "checkpoint's:\n  " + "\n  ".join(diffs))
        model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
        opt.load_state_dict({"hyper": meta["optim"], "arrays": {
            k[6:]: backend.asarray(v) for k, v in arrays.items() if k.startswith("optim/")}})
        if cfg.lr != meta["optim"]["lr"]:
            log(f"note: learning rate changed on resume: {meta['optim']['lr']} -> {cfg.lr}")
            opt.lr = cfg.lr
        for key in ("steps", "time_budget"):
            old = meta["train"].get(key)
            if old != getattr(cfg, key):
                log(f"note: --{key.replace('_', '-')} changed on resume: {_fmt_setting(old)} -> "
                    f"{_fmt_setting(getattr(cfg, key))} (a total for the whole run)")
        for d, s in zip(_dropouts(model), meta["dropout_rng"]):
            d.set_rng_state(s)
        step, batch_index = meta["step"], meta["batch_index"]
        train_time = meta["train_time"]
        saved_step = step
        # The divergence rule compares with the first loss of the whole run, as an
        # uninterrupted run would (not with the first loss after resuming).
        first_loss = meta.get("first_loss")
        if meta.get("last_loss") is not None:
            last_loss = meta["last_loss"]
        if meta["has_state"]:
            state = tuple(backend.asarray(arrays[f"state/{i}"])
                          for i in range(model.rnn.n_state))
        metrics_mode = "a"
        log(f"resumed from {ckpt} at step {step}")

    log(f"{corpus.name}: {len(corpus.train_ids):,} train / {len(corpus.val_ids):,} val "
        f"{cfg.level}s, vocabulary {len(vocab)}; model {cfg.num_layers}x{cfg.cell.upper()} "
        f"{cfg.hidden_size}, {model.num_parameters():,} parameters; batches {N}x{T}")

    bar = progress_bar(cfg.progress, cfg.steps, step)
    val_loss, stopped_by = None, "steps"
    norm = float("nan")  # the gradient norm of the last step
    metrics = open(out / METRICS, metrics_mode, encoding="utf-8")

    def write(record):
        metrics.write(json.dumps(record) + "\n")
        metrics.flush()

    def diverged(at_step, what):
        ckpt = out / CHECKPOINT
        if saved_step is not None:
            kept = f"The last good checkpoint, {ckpt} (step {saved_step}), was left untouched"
        elif ckpt.exists():
            kept = f"Nothing was saved by this run; {ckpt}, from an earlier run, was left untouched"
        else:
            kept = f"No checkpoint was written (the first save was due at step {cfg.save_every})"
        return TrainingDiverged(
            f"training diverged at step {at_step}: {what} (last finite loss "
            f"{_fmt_loss(last_loss)}, first {_fmt_loss(first_loss)}), gradient norm "
            f"{norm:.4g}. {kept}; try a lower --lr (now {opt.lr}) or a smaller --clip "
            f"(now {cfg.clip}).")

    def check_weights():
        # Before an evaluation or a save: an update can overflow the weights even when
        # the loss that led to it was finite; say so here instead of failing later.
        bad = is_finite_checkpoint(model.params)
        if bad:
            raise diverged(step, f"the weights {', '.join(bad)} hold NaN or Inf after the "
                                 f"update")

    def save():
        nonlocal saved_step
        check_weights()
        _save(out, model, opt, vocab, cfg, step, batch_index, state, train_time,
              {"first_loss": first_loss,
               "last_loss": last_loss if math.isfinite(last_loss) else None})
        saved_step = step

    def run_eval():
        nonlocal val_loss
        if val_batches is None:
            return
        check_weights()
        val_loss = evaluate(model, val_batches, cfg.eval_batches)
        if not math.isfinite(val_loss):
            raise diverged(step, f"validation loss {val_loss:.4g}")
        record = {"step": step, "train_time": round(train_time, 3), "val_loss": val_loss,
                  "val_bpc": val_loss / math.log(2), "val_ppl": math.exp(min(val_loss, 700))}
        write(record)
        text = ""
        if cfg.sample_length:
            model.eval()
            text = generate.sample(model, vocab, prompt=vocab.decode(corpus.train_ids[:1]),
                                   length=cfg.sample_length, temperature=0.8,
                                   seed=cfg.seed + step)
            model.train()
        bar.write(f"step {step}: val {val_loss:.4f} nats/{cfg.level}, "
                  f"{record['val_bpc']:.3f} bits/{cfg.level}, perplexity {record['val_ppl']:.2f}"
                  + (f"\n--- sample ---\n{text}\n--------------" if text else ""))

    dropouts = _dropouts(model)
    phase = "done"
    with metrics, _StopOnCtrlC() as ctrl_c:
        try:
            model.train()
            while True:
                if ctrl_c.requested:
                    stopped_by = "interrupt"
                    bar.write(f"Ctrl-C: stopping after step {step}; saving {out / CHECKPOINT}")
                    break
                if cfg.steps is not None and step >= cfg.steps:
                    stopped_by = "steps"
                    break
                if cfg.time_budget is not None and train_time >= cfg.time_budget:
                    stopped_by = "time_budget"
                    break
                if batch_index >= len(batches):  # end of the stream: start over from zeros
                    batch_index, state = 0, None
                t0 = time.perf_counter()
                rng_before = [d.rng_state() for d in dropouts]
                phase = "compute"  # what a hard interrupt would cut short (see below)
                x, y = batches.batch(batch_index)
                model.zero_grad()
                loss, new_state = model.loss(backend.asarray(x), backend.asarray(y), state)
                loss = float(loss)
                model.backward()
                norm = optim.clip_grad_norm(model.grads, cfg.clip)
                finite = math.isfinite(loss) and math.isfinite(norm)
                if first_loss is None and finite:
                    first_loss = loss
                # A one-symbol vocabulary has loss 0 throughout: no ratio to take.
                if not finite or (first_loss > 0 and loss > 3 * first_loss):
                    raise diverged(step + 1, f"loss {loss:.4g}")
                phase = "update"
                opt.step()
                state, last_loss = new_state, loss
                step += 1
                batch_index += 1
                phase = "done"
                dt = time.perf_counter() - t0
                train_time += dt
                write({"step": step, "train_time": round(train_time, 3), "loss": loss,
                       "grad_norm": norm, "lr": opt.lr, "chars_per_s": y.size / dt})
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", chars_s=f"{y.size / dt:,.0f}", refresh=False)
                if step % cfg.eval_every == 0:
                    run_eval()
                if step % cfg.save_every == 0:
                    save()
        except KeyboardInterrupt:  # a second Ctrl-C lands wherever the loop is
            stopped_by = "interrupt"
            if phase == "update":  # weights half-updated: keep the checkpoint on disk
                stopped_by = "interrupt-unsaved"
                bar.write(f"interrupted while updating the weights at step {step + 1}: "
                          f"not saving; the checkpoint on disk is kept")
            elif phase == "compute":  # undo the dropout draws of the unfinished step
                for d, saved in zip(dropouts, rng_before):
                    d.set_rng_state(saved)
                bar.write(f"interrupted during step {step + 1}: saving {out / CHECKPOINT} "
                          f"as of step {step}")
        finally:
            bar.close()
        if not stopped_by.startswith("interrupt") and (val_loss is None or step % cfg.eval_every):
            run_eval()
    if stopped_by != "interrupt-unsaved":
        save()
    try:
        from .viz import plot_training
        plot_training(out, out / "loss.png", title=f"{corpus.name}: {cfg.cell} "
                      f"{cfg.num_layers}x{cfg.hidden_size}")
    except Exception as e:  # a missing font must never cost a trained model
        log(f"note: could not draw loss.png ({e})")
    log(f"stopped by {stopped_by} at step {step}; checkpoint {out / CHECKPOINT}")
    return TrainResult(model, vocab, step, last_loss, val_loss, out, stopped_by)


class _StopOnCtrlC:
    """The first Ctrl-C asks the loop to stop at the next step boundary (so the saved
    checkpoint is a whole step); a second one interrupts at once."""

    def __init__(self):
        self.requested = False
        self._old = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix(self, **kw):
        pass

    def write(self, s):
        print(s)

    def close(self):
        pass


def progress_bar(enabled, total, initial):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)
