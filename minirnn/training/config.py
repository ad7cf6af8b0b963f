"""``RunConfig``: the settings every training run has, whatever its task.

The budget, the optimizer's step size and clipping, the evaluation and checkpoint
intervals, the seed and the run folder. A task's config subclasses it and adds its own
fields, made with ``minirnn.settings.setting`` like these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..settings import SettingError, check_settings, may_change_on_resume, positive, setting

__all__ = ["RunConfig", "SettingError", "check_settings", "may_change_on_resume",
           "positive", "setting"]


@dataclass
class RunConfig:
    """The settings every training run has; a task's config adds its own after these."""
    out: str = setting("runs/run", "run folder: checkpoint.npz, metrics.jsonl and the "
                       "figures go here", may_change=True)
    steps: Optional[int] = positive(None, "optimizer steps in all, counting those before a "
                                    "--resume (default: the task's own when no "
                                    "--time-budget is given)", kind=int, optional=True,
                                    may_change=True)
    time_budget: Optional[float] = positive(None, "seconds of training in all (evaluation "
                                            "not counted)", kind=float, optional=True,
                                            may_change=True)
    lr: float = positive(2e-3, "learning rate", may_change=True)
    lr_schedule: str = setting("constant", "constant, or cosine: from --lr down to a tenth of "
                               "it over the run (its --steps, or its --time-budget of "
                               "training time)", choices=("constant", "cosine"))
    warmup: int = setting(0, "steps over which the learning rate first rises linearly to "
                          "--lr", low=0)
    clip: float = positive(5.0, "largest global gradient norm (clipped to it)")
    eval_every: int = positive(200, "steps between evaluations", may_change=True)
    save_every: int = positive(500, "steps between checkpoints (one is also written at "
                               "the end and on Ctrl-C)", may_change=True)
    seed: int = setting(0, "random seed of the weights, dropout and batches", low=0)
    threads: Optional[int] = setting(None, "BLAS threads (default: chosen as the run goes, "
                                     "by timing steps on 1 thread and on every core)",
                                     kind=int, optional=True, low=1, may_change=True)
    progress: bool = setting(True, "show a progress bar", may_change=True)

    default_steps = 2000  # when neither steps nor time_budget is given

    def __post_init__(self):
        check_settings(self)
        if self.steps is None and self.time_budget is None:
            self.steps = self.default_steps

    def budget_text(self):
        parts = ([f"{self.steps} steps"] if self.steps is not None else []) + \
            ([f"{self.time_budget:g} s"] if self.time_budget is not None else [])
        return " or ".join(parts)
