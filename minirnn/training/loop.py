"""The training loop: one for every task (char-LM, seq2seq, Conv-LSTM, ...).

    result = train(cfg)          # cfg: a task's config; the loop picks the task by it

A task supplies only what differs between jobs (``Task`` below): build the model, give
the batch of step ``s``, evaluate, show a sample, draw its figures, and carry whatever a
step leaves for the next (the char-LM's recurrent state). The loop owns the rest:

* the budget: ``steps`` and/or ``time_budget`` (seconds of training; evaluation is not
  counted), a progress bar, one ``metrics.jsonl`` record per step and per evaluation;
* one step: ``loss, dlogits = model.loss(batch)``, ``model.backward(dlogits)``, clip the
  global gradient norm, check that the loss and the norm are finite (and that the loss
  has not risen above 3x the run's first loss), then the optimizer's update. The model
  is flattened first (``Module.flatten``), so zeroing, clipping and the update are each
  a few whole-array operations over all the parameters at once;
* checkpoints, written atomically every ``save_every`` steps, at the end and on Ctrl-C;
  the weights are checked for NaN/Inf before every save and evaluation;
* divergence stops the run with ``TrainingDiverged``, naming the last good checkpoint,
  which is left untouched;
* exact resume: ``train(cfg, resume=True)`` continues from the checkpoint so that an
  interrupted-and-resumed run ends with the weights of an uninterrupted one, and
  ``metrics.jsonl`` continues from the checkpoint's step;
* the learning rate: ``lr``, after an optional linear ``warmup``, or a cosine from ``lr``
  to ``lr / 10`` over the run (``lr_schedule``);
* the BLAS thread count: ``threads`` if the config sets it, else ``backend.ThreadChoice``
  now and then runs a few steps on one thread and on every core in turns and keeps the
  faster (an idle machine gets its cores; a busy one is spared threads that wait on each
  other);
* at the end ``loss.png`` and the task's figures.

The first Ctrl-C asks the loop to stop after the current step and save; a second one
interrupts at once (the unfinished step is dropped; if the weights were half-updated,
the checkpoint on disk is kept instead of a new one written).

Everything the loop knows about a run in progress is one ``RunState``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from .. import backend, optim
from ..checkpoint import (
    is_finite_checkpoint, load_checkpoint, remove_stale_temporaries, save_checkpoint,
)
from ..nn import Dropout
from .config import may_change_on_resume
from .instruments import MetricsLog, ProgressBar, StopOnCtrlC

CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.jsonl"
OPTIMIZERS = {"sgd": optim.SGD, "momentum": optim.SGD, "adagrad": optim.Adagrad,
              "rmsprop": optim.RMSProp, "adam": optim.Adam, "adamw": optim.AdamW}


class TrainingDiverged(RuntimeError):
    """The loss, the gradient norm, the weights or an evaluation became NaN/Inf, or the
    loss rose above 3x the run's first loss."""


class Task:
    """What a job supplies to the loop. Subclasses set ``kind`` (the checkpoint's kind)
    and implement the methods that raise here; the others have sensible defaults."""

    kind = "task"
    unit = "items"  # what items_per_s counts
    evaluate_at_start = False  # also evaluate before the first step (fine-tuning)

    def __init__(self, cfg, log=print):
        self.cfg, self.log = cfg, log

    def build_model(self):
        raise NotImplementedError

    def batch(self, step):
        """The batch of step ``step`` (0 = the first), as the model's ``loss`` takes it."""
        raise NotImplementedError

    def items(self, batch):
        """How many ``unit``s one batch holds (for the throughput shown)."""
        raise NotImplementedError

    def evaluate(self, model):
        """Held-out metrics: a dict of floats that includes ``val_loss``."""
        raise NotImplementedError

    def report(self, step, metrics):
        """One line about an evaluation, for the progress bar."""
        return f"step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())

    def after_step(self, model):
        """Keep what the finished step leaves for the next (default: nothing)."""

    def sample(self, model, step):
        """Text to show after an evaluation (default: none)."""
        return ""

    def figures(self, model, out):
        """Draw the task's own figures into ``out``; return their paths."""
        return []

    def describe(self, model):
        return f"{self.kind}: {model.num_parameters():,} parameters"

    def title(self):
        return self.kind

    def metadata(self):
        """JSON-able facts a checkpoint needs to be used again (a vocabulary, ...)."""
        return {}

    def state(self):
        """``(arrays, meta)`` that exact resume needs beyond the model and optimizer."""
        return {}, {}

    def load_state(self, arrays, meta):
        """Restore ``state()``; refuse a checkpoint this task cannot continue from."""


@dataclass
class RunState:
    """Where a run stands; saved in every checkpoint."""
    step: int = 0
    train_time: float = 0.0
    first_loss: Optional[float] = None   # the reference of the 3x rule
    last_loss: Optional[float] = None
    grad_norm: Optional[float] = None
    saved_step: Optional[int] = None     # the step of the checkpoint this run stands on
    evaluated_step: Optional[int] = None
    val: dict = field(default_factory=dict)  # the last evaluation's metrics


SAVED_FIELDS = ("step", "train_time", "first_loss", "last_loss", "val")


@dataclass
class RunResult:
    model: object
    task: Task
    step: int
    train_time: float
    train_loss: Optional[float]
    val: dict
    out: Path
    stopped_by: str

    @property
    def vocab(self):
        return getattr(self.task, "vocab", None)

    @property
    def val_loss(self):
        return self.val.get("val_loss")


def make_optimizer(name, model, lr):
    """The optimizer ``name`` over ``model`` (over its flat buffers once flattened)."""
    extra = {"momentum": 0.9} if name == "momentum" else {}
    return OPTIMIZERS[name](model.params, model.grads, lr=lr, flat=model.flat, **extra)


def dropouts(model):
    """The model's Dropout layers, in a fixed order (their generators are saved)."""
    return [m for m in model.modules() if isinstance(m, Dropout)]


def _fmt(x):
    return "none yet" if x is None or not math.isfinite(x) else f"{x:.4g}"


class Loop:
    """One run: the task, its model and optimizer, the state, the run folder."""

    def __init__(self, task, cfg, log=print):
        self.task, self.cfg, self.log = task, cfg, log
        self.out = Path(cfg.out)
        self.model = task.build_model().flatten()  # whole-array zeroing, clipping, updates
        self.opt = make_optimizer(getattr(cfg, "optimizer", "adam"), self.model, cfg.lr)
        self.state = RunState()
        self.dropouts = dropouts(self.model)
        self.phase = "done"     # what a hard interrupt would cut short: compute or update
        self._rng_before = []   # the dropout generators before the step under way

    # -- checkpoints ---------------------------------------------------------------------
    def checkpoint_data(self):
        optimizer = self.opt.state_dict()
        arrays = {f"model/{k}": v for k, v in self.model.params.items()}
        arrays.update({f"optim/{k}": v for k, v in optimizer["arrays"].items()})
        task_arrays, task_meta = self.task.state()
        arrays.update({f"task/{k}": v for k, v in task_arrays.items()})
        saved = {k: getattr(self.state, k) for k in SAVED_FIELDS}
        meta = {"kind": self.task.kind, "model": self.model.config, "train": asdict(self.cfg),
                "optim": optimizer["hyper"], **saved, "task": task_meta,
                "dropout_rng": [d.rng_state() for d in self.dropouts],
                **self.task.metadata()}
        return arrays, meta

    def save(self):
        self.check_weights()
        save_checkpoint(self.out / CHECKPOINT, *self.checkpoint_data())
        self.state.saved_step = self.state.step

    def resume(self):
        """Continue from ``out/checkpoint.npz``: refuse other settings, restore the rest."""
        path = self.out / CHECKPOINT
        arrays, meta = load_checkpoint(path)
        if meta.get("kind") != self.task.kind:
            raise ValueError(f"cannot resume from {path}: it holds a {meta.get('kind')!r} "
                             f"run, not a {self.task.kind!r} one")
        if not {"train", "optim", "step"} <= set(meta):
            raise ValueError(f"cannot resume from {path}: it holds a model but no training "
                             f"run (made by minirnn import?); start a run from its weights "
                             f"with --init-from {path}")
        self._refuse_other_settings(path, meta)
        part = {prefix: {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
                for prefix in ("model/", "optim/", "task/")}
        try:
            self.task.load_state(part["task/"], meta)
        except ValueError as e:
            raise ValueError(f"cannot resume from {path}: {e}") from None
        self.model.load_state_dict(part["model/"])
        self.opt.load_state_dict({"hyper": meta["optim"], "arrays": {
            k: backend.asarray(v) for k, v in part["optim/"].items()}})
        self._note_changes(meta)
        for d, s in zip(self.dropouts, meta["dropout_rng"]):
            d.set_rng_state(s)
        for k in SAVED_FIELDS:
            setattr(self.state, k, meta[k])
        self.state.saved_step = self.state.step
        self.log(f"resumed from {path} at step {self.state.step}")

    def _refuse_other_settings(self, path, meta):
        old, new = meta["train"], asdict(self.cfg)
        free = may_change_on_resume(self.cfg)
        diffs = [f"{k}: checkpoint has {old[k]!r}, now {new.get(k)!r}" for k in old
                 if k not in free and old[k] != new.get(k)]
        if diffs:
            raise ValueError(f"cannot resume from {path}: settings differ from the "
                             f"checkpoint's: {'; '.join(diffs)}")

    def _note_changes(self, meta):
        if self.cfg.lr != meta["train"]["lr"]:
            self.log(f"note: learning rate changed on resume: {meta['train']['lr']} -> "
                     f"{self.cfg.lr}")
        for key in ("steps", "time_budget"):
            old, new = meta["train"].get(key), getattr(self.cfg, key)
            if old != new:
                self.log(f"note: --{key.replace('_', '-')} changed on resume: "
                         f"{'none' if old is None else old} -> {'none' if new is None else new} "
                         f"(a total for the whole run)")

    # -- divergence ----------------------------------------------------------------------
    def diverged(self, at_step, what):
        ckpt, saved = self.out / CHECKPOINT, self.state.saved_step
        if saved is not None:
            kept = f"The last good checkpoint, {ckpt} (step {saved}), was left untouched"
        elif ckpt.exists():
            kept = f"Nothing was saved by this run; {ckpt}, from an earlier run, was left untouched"
        else:
            kept = f"No checkpoint was written (the first save was due at step " \
                   f"{self.cfg.save_every})"
        norm = self.state.grad_norm
        return TrainingDiverged(
            f"training diverged at step {at_step}: {what} (last finite loss "
            f"{_fmt(self.state.last_loss)}, first {_fmt(self.state.first_loss)}), gradient "
            f"norm {float('nan') if norm is None else norm:.4g}. {kept}; try a lower --lr "
            f"(now {self.opt.lr}) or a smaller --clip (now {self.cfg.clip}).")

    def check_weights(self):
        # An update can overflow the weights even when the loss before it was finite.
        bad = is_finite_checkpoint(self.model.params)
        if bad:
            raise self.diverged(self.state.step, f"the weights {', '.join(bad)} hold NaN or "
                                                 f"Inf after the update")

    # -- one step, one evaluation --------------------------------------------------------
    def learning_rate(self):
        """The step's learning rate: ``warmup`` steps rising to ``lr``, then ``lr``, or a
        cosine from ``lr`` to ``lr / 10`` over the run (by steps, or by training time)."""
        cfg, s = self.cfg, self.state
        if s.step < cfg.warmup:
            return cfg.lr * (s.step + 1) / cfg.warmup
        if cfg.lr_schedule == "constant":
            return cfg.lr
        done = max(s.step / cfg.steps if cfg.steps else 0.0,
                   s.train_time / cfg.time_budget if cfg.time_budget else 0.0)
        return optim.cosine_between(cfg.lr, cfg.lr / 10, min(done, 1.0))

    def step_once(self, metrics, bar, threads=None):
        """One optimizer step (on ``threads`` BLAS threads); returns its seconds."""
        state, model = self.state, self.model
        t0 = time.perf_counter()
        self._rng_before = [d.rng_state() for d in self.dropouts]
        self.phase = "compute"
        batch = self.task.batch(state.step)
        model.zero_grad()
        loss, dlogits = model.loss(batch)
        loss = float(loss)
        model.backward(dlogits)
        state.grad_norm = norm = optim.clip_grad_norm(model.gradient_arrays(), self.cfg.clip)
        if state.first_loss is None and math.isfinite(loss) and math.isfinite(norm):
            state.first_loss = loss
        # A one-symbol vocabulary has loss 0 throughout: no ratio to take.
        if not (math.isfinite(loss) and math.isfinite(norm)) or (
                state.first_loss > 0 and loss > 3 * state.first_loss):
            raise self.diverged(state.step + 1, f"loss {loss:.4g}")
        self.phase = "update"
        self.opt.lr = self.learning_rate()
        self.opt.step()
        self.task.after_step(model)
        state.step += 1
        state.last_loss = loss
        self.phase = "done"
        dt = time.perf_counter() - t0
        state.train_time += dt
        rate = self.task.items(batch) / dt
        metrics.write({"step": state.step, "train_time": round(state.train_time, 3),
                       "loss": loss, "grad_norm": norm, "lr": self.opt.lr,
                       f"{self.task.unit}_per_s": rate, "threads": threads})
        bar.advance(1, dt)
        bar.set_postfix(loss=f"{loss:.3f}", **{f"{self.task.unit}_s": f"{rate:,.0f}"},
                        refresh=False)
        return dt

    def evaluate(self, metrics, bar):
        self.check_weights()
        was_training = self.model.training
        self.model.eval()
        values = self.task.evaluate(self.model)
        self.state.evaluated_step = self.state.step
        if not values:  # nothing held out to evaluate on
            self.model.train(was_training)
            return
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            raise self.diverged(self.state.step, f"{bad[0]} {values[bad[0]]:.4g}")
        self.state.val = values
        metrics.write({"step": self.state.step, "train_time": round(self.state.train_time, 3),
                       **values})
        text = self.task.sample(self.model, self.state.step)
        self.model.train(was_training)
        bar.write(self.task.report(self.state.step, values)
                  + (f"\n--- sample ---\n{text}\n--------------" if text else ""))

    # -- the run -------------------------------------------------------------------------
    def budget_left(self):
        s, cfg = self.state, self.cfg
        if cfg.steps is not None and s.step >= cfg.steps:
            return "steps"
        if cfg.time_budget is not None and s.train_time >= cfg.time_budget:
            return "time_budget"
        return None

    def run(self):
        """Train until the budget is spent or Ctrl-C; returns how it stopped."""
        choice = backend.ThreadChoice(self.cfg.threads)
        with MetricsLog(self.out / METRICS, self.state.saved_step) as metrics, \
                StopOnCtrlC() as ctrl_c, ProgressBar(self.cfg, self.state, self.log) as bar, \
                backend.blas_threads() as blas:
            try:
                self.model.train()
                if self.state.step == 0 and self.task.evaluate_at_start:
                    bar.write("before training:")
                    self.evaluate(metrics, bar)
                while True:
                    if ctrl_c.requested:
                        bar.write(f"Ctrl-C: stopping after step {self.state.step}; "
                                  f"saving {self.out / CHECKPOINT}")
                        return "interrupt"
                    stop = self.budget_left()
                    if stop:
                        break
                    threads = choice.threads_for()
                    blas.set(threads)
                    choice.record(self.step_once(metrics, bar, threads))
                    if self.state.step % self.cfg.eval_every == 0:
                        self.evaluate(metrics, bar)
                    if self.state.step % self.cfg.save_every == 0:
                        self.save()
            except KeyboardInterrupt:  # a second Ctrl-C lands wherever the loop is
                return self.hard_interrupt(bar)
            if self.state.evaluated_step != self.state.step:
                self.evaluate(metrics, bar)
            return stop

    def hard_interrupt(self, bar):
        step = self.state.step
        if self.phase == "update":  # weights half-updated: keep the checkpoint on disk
            bar.write(f"interrupted while updating the weights at step {step + 1}: not "
                      f"saving; the checkpoint on disk is kept")
            return "interrupt-unsaved"
        if self.phase == "compute":  # undo the dropout draws of the unfinished step
            for d, saved in zip(self.dropouts, self._rng_before):
                d.set_rng_state(saved)
        bar.write(f"interrupted during step {step + 1}: saving {self.out / CHECKPOINT} as "
                  f"of step {step}")
        return "interrupt"

    def finish(self):
        """Draw ``loss.png`` and the task's figures; a missing font never costs a model."""
        from ..viz import plot_training
        try:
            plot_training(self.out, self.out / "loss.png", title=self.task.title())
            self.task.figures(self.model, self.out)
        except Exception as e:  # noqa: BLE001 - a figure is never worth the run
            self.log(f"note: could not draw the figures ({e})")


def train(task, cfg, resume=False, log=print):
    """Run ``task`` (a ``Task`` subclass) on ``cfg``; returns a RunResult."""
    task = task(cfg, log)
    loop = Loop(task, task.cfg, log)  # the task may have fitted the batch to the data
    if resume:
        loop.resume()
    loop.out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(loop.out / CHECKPOINT)
    log(task.describe(loop.model))
    backend.reuse_freed_memory()
    stopped_by = loop.run()
    if stopped_by != "interrupt-unsaved":
        loop.save()
    loop.finish()
    log(f"stopped by {stopped_by} at step {loop.state.step}; checkpoint "
        f"{loop.out / CHECKPOINT}")
    s = loop.state
    return RunResult(loop.model, task, s.step, s.train_time, s.last_loss, s.val, loop.out,
                     stopped_by)
