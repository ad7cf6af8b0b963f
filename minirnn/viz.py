"""Figures: the training curve of a run (from its ``metrics.jsonl``), attention heatmaps
and predicted frames.

matplotlib is imported lazily with the Agg backend, so nothing here needs a screen.
"""

from __future__ import annotations

import json
import math
from pathlib import Path


def read_metrics(path):
    """The records of a ``metrics.jsonl`` file (or a run directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"read_metrics: no metrics file at {path}; is this a run "
                                "directory written by `minirnn train`?")
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                records.append(json.loads(line))
    return records


def new_figure(nrows=1, ncols=1, **kwargs):
    """``(fig, axes)`` as from pyplot's ``subplots``, but a bare ``matplotlib.figure.Figure``:
    no pyplot, no GUI backend and no global state, so drawing a PNG from a script, a
    test or a notebook never changes how that notebook shows its own plots."""
    from matplotlib.figure import Figure
    squeeze = kwargs.pop("squeeze", True)
    fig = Figure(**kwargs)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def save_figure(fig, out_path):
    """Lay out and write to ``out_path`` (making its folder); returns the path."""
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path)
    return out_path


def plot_training(runs, out_path, title=None, x="step"):
    """Plot training and validation loss of one or more runs into a PNG.

    runs: a run directory / metrics file, or a dict label -> directory / metrics file;
    x: "step" or "time" (seconds of training) on the horizontal axis.
    Training loss is drawn smoothed (a trailing mean over 2% of the steps), validation loss
    as points joined by lines. Returns the output path.
    """
    if x not in ("step", "time"):
        raise ValueError(f"plot_training: x must be 'step' or 'time', got {x!r}")
    if not isinstance(runs, dict):
        runs = {Path(runs).name if Path(runs).is_dir() else Path(runs).parent.name: runs}
    fig, ax = new_figure(figsize=(8, 4.5), dpi=110)
    key = "step" if x == "step" else "train_time"
    for i, (label, run) in enumerate(runs.items()):
        records = read_metrics(run)
        color = f"C{i}"
        train = [r for r in records if "loss" in r]
        if train:
            # A trailing mean over 2% of the run: smooth enough to read, short enough not
            # to lag behind the curve.
            w = max(1, len(train) // 50)
            losses = [r["loss"] for r in train]
            sums = [0.0]
            for v in losses:
                sums.append(sums[-1] + v)
            ys = [(sums[i + 1] - sums[max(0, i + 1 - w)]) / min(w, i + 1)
                  for i in range(len(losses))]
            ax.plot([r[key] for r in train], ys, color=color, alpha=0.45, lw=1,
                    label=f"{label} train (mean of {w})")
        val = [r for r in records if "val_loss" in r]
        if val:
            ax.plot([r[key] for r in val], [r["val_loss"] for r in val], "o-", color=color,
                    ms=3, lw=1.6, label=f"{label} validation")
    ax.set_xlabel("step" if x == "step" else "training time (s)")
    ax.set_ylabel("loss (nats per symbol)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    lo, hi = ax.get_ylim()
    ax.set_ylim(max(lo, 0), min(hi, 5.0) if math.isfinite(hi) else 5.0)
    return save_figure(fig, out_path)


def plot_attention(weights, source, output, out_path, title=None):
    """Heatmap of attention weights: output characters (rows) against source characters.

    weights: (T, S) array, row t the weights output step t gave the S source positions
    (an ``<eos>`` step may be the last row); source, output: the strings (or token lists)
    labelling the columns and rows. Returns the output path.
    """
    import numpy as np

    w = np.asarray(weights, dtype=float)
    src, out = list(source), list(output)
    if w.ndim != 2:
        raise ValueError(f"plot_attention: weights must be 2-D (T, S), got shape {w.shape}")
    if len(src) > w.shape[1]:
        raise ValueError(f"plot_attention: {len(src)} source labels for {w.shape[1]} columns")
    out = (out + ["<eos>"])[: w.shape[0]]
    w = w[: len(out), : len(src)]
    fig, ax = new_figure(figsize=(0.32 * len(src) + 1.8, 0.32 * len(out) + 1.4), dpi=120)
    ax.imshow(w, cmap="viridis", vmin=0.0, vmax=max(float(w.max()), 1e-9), aspect="equal")
    ax.set_xticks(range(len(src)), [c if c != " " else "␣" for c in src], fontsize=9)
    ax.set_yticks(range(len(out)), out, fontsize=9)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, out_path)


def plot_prediction(inputs, targets, probs, out_path, title=None):
    """One sequence of frames: the inputs, the true future and the predicted one.

    inputs: (T_in, 1, H, W) frames; targets and probs: (n_out, 1, H, W), the true frames
    and the predicted probability of each pixel being on. Returns the output path.
    """
    frames_in, frames_true, frames_pred = inputs[:, 0], targets[:, 0], probs[:, 0]
    cols = max(len(frames_in), len(frames_true))
    fig, axes = new_figure(3, cols, figsize=(1.2 * cols, 4.0), dpi=110, squeeze=False)
    rows = (("input", frames_in), ("true", frames_true), ("predicted", frames_pred))
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
