"""The Conv-LSTM task: next-frame prediction on moving squares (docs/convlstm.md).

    cfg = ConvLSTMConfig(time_budget=600, out="runs/convlstm")
    result = train(cfg)                    # progress bar, metrics.jsonl, checkpoint.npz
    model, meta = load_convlstm("runs/convlstm/checkpoint.npz")

Every training step draws a fresh batch of sequences (seeds ``[1, seed, step]``, never the
held-out one). Every ``eval_every`` steps the model is scored on the fixed held-out set
(``minirnn.data.moving.held_out_set``) by per-pixel BCE with probabilities clipped to
``[0.01, 0.99]`` (``val_bce``, also the ``val_loss`` of the curve), next to the
copy-last-frame baseline scored by the same rule. At the end ``prediction.png`` shows one
held-out sequence: the input frames, the true future and the prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import backend
from ..checkpoint import load_module
from ..data.moving import clipped_bce, copy_last_frame_bce, held_out_set, moving_squares
from ..nn import NextFrameModel
from .config import RunConfig, SettingError, positive, setting
from .loop import Task

FIGURE = "prediction.png"


@dataclass
class ConvLSTMConfig(RunConfig):
    """Every setting of a Conv-LSTM run (the flags of ``minirnn convlstm train``)."""
    task: str = setting("moving-squares", "the video task generated in code",
                        choices=("moving-squares",))
    hidden_channels: int = positive(16, "channels of each Conv-LSTM layer")
    kernel_size: int = positive(3, "side of the square convolution kernels (odd)")
    num_layers: int = positive(1, "stacked Conv-LSTM layers")
    batch_size: int = positive(16, "sequences per batch")
    n_test: int = setting(1000, "held-out sequences scored", low=1, high=1000,
                          high_open=False)
    lr: float = positive(1e-2, "learning rate", may_change=True)
    out: str = setting("runs/convlstm", "run folder: checkpoint.npz, metrics.jsonl, "
                       "loss.png and prediction.png go here", may_change=True)

    def __post_init__(self):
        super().__post_init__()
        if self.kernel_size % 2 == 0:
            raise SettingError(type(self).__name__, "kernel_size", f"must be odd (same "
                               f"padding needs k = 2p + 1), got {self.kernel_size}")


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


class ConvLSTMTask(Task):
    kind = "convlstm"
    unit = "frames"

    def __init__(self, cfg, log=print):
        super().__init__(cfg, log)
        self.test_in, self.test_out = held_out_set(cfg.n_test)

    def build_model(self):
        c = self.cfg
        return NextFrameModel(c.hidden_channels, c.kernel_size, c.num_layers, c.seed)

    def batch(self, step):
        x, y = moving_squares(self.cfg.batch_size, seed=[1, self.cfg.seed, step])
        dtype = backend.default_dtype()
        return {"inputs": backend.asarray(x, dtype), "targets": backend.asarray(y, dtype)}

    def items(self, batch):
        return int(batch["targets"].shape[0] * batch["targets"].shape[1])

    def evaluate(self, model):
        bce, baseline = evaluate(model, self.test_in, self.test_out)
        return {"val_loss": bce, "val_bce": bce, "baseline_bce": baseline}

    def report(self, step, m):
        return (f"step {step}: held-out BCE {m['val_bce']:.4f} (copy-last-frame "
                f"{m['baseline_bce']:.4f})")

    def figures(self, model, out):
        from ..viz import plot_prediction
        probs = predict_probs(model, self.test_in[:1])
        return [plot_prediction(self.test_in[0], self.test_out[0], probs[0], out / FIGURE)]

    def describe(self, model):
        return (f"{self.cfg.task}: fresh batches of {self.cfg.batch_size}, "
                f"{len(self.test_in):,} held-out sequences; {model.num_parameters():,} "
                f"parameters")

    def title(self):
        return f"Conv-LSTM {self.cfg.task}: {self.cfg.num_layers}x{self.cfg.hidden_channels}"


def load_convlstm(path):
    """(model, metadata) from a checkpoint written by the Conv-LSTM task."""
    model, _, meta = load_module(path, {"convlstm": NextFrameModel})
    return model.eval(), meta
