"""Training a Conv-LSTM next-frame model on moving squares (docs/convlstm.md).

    cfg = ConvLSTMConfig(time_budget=600, out="runs/convlstm")
    model, history = train_convlstm(cfg)   # progress bar, metrics.jsonl, checkpoint.npz
    model, meta = load_convlstm("runs/convlstm/checkpoint.npz")
    plot_prediction(model, inputs, targets, "prediction.png")

Every training step draws a fresh batch of sequences (seeds ``[1, seed, step]``, never the
held-out one). Every ``eval_every`` steps the model is scored on the fixed held-out set
(``minirnn.data.moving.held_out_set``) by per-pixel BCE with probabilities clipped to
``[0.01, 0.99]``, next to the copy-last-frame baseline scored by the same rule.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from . import backend, optim
from .checkpoint import load_module, save_checkpoint
from .data.moving import clipped_bce, copy_last_frame_bce, held_out_set, moving_squares
from .nn import NextFrameModel
from .train import check_positive, check_run_budget, progress_bar

CHECKPOINT = "checkpoint.npz"
FIGURE = "prediction.png"
TASKS = ("moving-squares",)


@dataclass
class ConvLSTMConfig:
    task: str = "moving-squares"
    hidden_channels: int = 16
    kernel_size: int = 3
    num_layers: int = 1
    batch_size: int = 16
    lr: float = 1e-2
    clip: float = 5.0
    steps: Optional[int] = None
    time_budget: Optional[float] = None
    eval_every: int = 200
    n_test: int = 1000
    seed: int = 0
    out: str = "runs/convlstm"
    progress: bool = True

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"ConvLSTMConfig: task must be one of {TASKS}, got {self.task!r}")
        check_positive(self, ("hidden_channels", "kernel_size", "num_layers", "batch_size",
                              "eval_every", "n_test"))
        if self.kernel_size % 2 == 0:
            raise ValueError(f"ConvLSTMConfig: kernel_size must be odd, got {self.kernel_size}")
        if self.n_test > 1000:
            raise ValueError(f"ConvLSTMConfig: n_test must be at most 1000, got {self.n_test}")
        check_run_budget(self, default_steps=2000)


def predict_probs(model, inputs, batch_size=200):
    """Host probabilities (N, n_out, 1, H, W) for host inputs (N, T_in, 1, H, W)."""
    model.eval()
    dtype = backend.default_dtype()
    out = [backend.to_numpy(model.predict(backend.asarray(inputs[i:i + batch_size], dtype)))
           for i in range(0, len(inputs), batch_size)]
    return np.concatenate(out)


def evaluate(model, inputs, targets):
    """(model BCE, baseline BCE) on a held-out set, both by ``clipped_bce``."""
    return (clipped_bce(predict_probs(model, inputs), targets),
            copy_last_frame_bce(inputs, targets))


def plot_prediction(model, inputs, targets, out_path, index=0, title=None):
    """Draw one sequence: the input frames, the true future and the model's prediction."""
    from .viz import new_figure, save_figure
    probs = predict_probs(model, inputs[index:index + 1])[0, :, 0]  # (n_out, H, W)
    frames_in, frames_true = inputs[index, :, 0], targets[index, :, 0]
    cols = max(len(frames_in), len(frames_true))
    fig, axes = new_figure(3, cols, figsize=(1.2 * cols, 4.0), dpi=110, squeeze=False)
    rows = (("input", frames_in), ("true", frames_true), ("predicted", probs))
    for r, (label, frames) in enumerate(rows):
        for c in range(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(frames):
                ax.imshow(frames[c], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                offset = 0 if r == 0 else len(frames_in)
                ax.set_title(f"t={offset + c + 1}", fontsize=7)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(label, fontsize=9)
    fig.suptitle(title or "Conv-LSTM next-frame prediction (moving squares)", fontsize=10)
    return save_figure(fig, out_path)


def train_convlstm(cfg: ConvLSTMConfig, log=print):
    """Train a NextFrameModel on ``cfg.task``; returns (model, history dict)."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model = NextFrameModel(cfg.hidden_channels, cfg.kernel_size, cfg.num_layers, cfg.seed)
    opt = optim.Adam(model.params, model.grads, lr=cfg.lr)
    test_in, test_out = held_out_set(cfg.n_test)
    dtype = backend.default_dtype()
    log(f"{cfg.task}: fresh batches of {cfg.batch_size}, {len(test_in):,} held-out sequences; "
        f"{model.num_parameters():,} parameters")
    bar = progress_bar(cfg.progress, cfg.steps, 0)
    step, train_time, bce, baseline = 0, 0.0, None, None

    def score():
        nonlocal bce, baseline
        bce, baseline = evaluate(model, test_in, test_out)
        metrics.write(json.dumps({"step": step, "train_time": round(train_time, 3),
                                  "val_bce": bce, "baseline_bce": baseline}) + "\n")
        metrics.flush()

    with open(out / "metrics.jsonl", "w", encoding="utf-8") as metrics:
        while (cfg.steps is None or step < cfg.steps) and \
                (cfg.time_budget is None or train_time < cfg.time_budget):
            t0 = time.perf_counter()
            x, y = moving_squares(cfg.batch_size, seed=[1, cfg.seed, step])
            model.train()
            model.zero_grad()
            loss, dlogits = model.loss(backend.asarray(x, dtype), backend.asarray(y, dtype))
            if not math.isfinite(loss):
                raise RuntimeError(f"train_convlstm: the loss became {loss} at step {step + 1}; "
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
                score()
                bar.write(f"step {step}: held-out BCE {bce:.4f} (copy-last-frame {baseline:.4f}) "
                          f"after {train_time:.0f} s of training")
        bar.close()
        if step % cfg.eval_every or bce is None:
            score()
    save_checkpoint(out / CHECKPOINT, {f"model/{k}": v for k, v in model.params.items()},
                    {"kind": "convlstm", "model": model.config, "train": asdict(cfg),
                     "step": step, "train_time": train_time, "val_bce": bce,
                     "baseline_bce": baseline})
    plot_prediction(model, test_in, test_out, out / FIGURE)
    log(f"stopped at step {step} after {train_time:.0f} s of training: held-out BCE {bce:.4f}, "
        f"copy-last-frame {baseline:.4f}; checkpoint {out / CHECKPOINT}, figure {out / FIGURE}")
    return model, {"step": step, "train_time": train_time, "val_bce": bce,
                   "baseline_bce": baseline}


def load_convlstm(path):
    """(model, metadata) from a checkpoint written by ``train_convlstm``."""
    model, _, meta = load_module(path, "convlstm", NextFrameModel)
    return model.eval(), meta
