"""Training: one loop (``loop.py``), one file per task, a config per task.

    from minirnn.training import TrainConfig, Seq2SeqConfig, ConvLSTMConfig, train
    result = train(TrainConfig(data="tinyshakespeare", time_budget=600, out="runs/s"))
    result = train(Seq2SeqConfig(task="dates", steps=3000), resume=False)

``train(cfg)`` picks the task by the config's type (``TASKS``). Adding a model to train
is one more file here with a config and a ``Task``, and one more row in ``TASKS``.
"""

from __future__ import annotations

from . import loop
from .charlm import CharLMTask, TrainConfig, evaluate, load_model
from .config import RunConfig, SettingError
from .convlstm import ConvLSTMConfig, ConvLSTMTask, load_convlstm, predict_probs
from .loop import RunResult, Task, TrainingDiverged
from .seq2seq import Seq2SeqConfig, Seq2SeqTask, evaluate_exact_match, load_seq2seq

# config type -> the task that trains it
TASKS = {TrainConfig: CharLMTask, Seq2SeqConfig: Seq2SeqTask, ConvLSTMConfig: ConvLSTMTask}


def train(cfg, resume=False, log=print):
    """Train as ``cfg`` says (its type picks the task); returns a ``RunResult``.

    resume: continue the run in ``cfg.out`` from its checkpoint (see ``loop.py``).
    log: where the run's messages go (``print`` by default).
    """
    if type(cfg) not in TASKS:
        raise TypeError(f"train: cfg must be one of {', '.join(c.__name__ for c in TASKS)}, "
                        f"got {type(cfg).__name__}")
    return loop.train(TASKS[type(cfg)], cfg, resume=resume, log=log)


__all__ = ["train", "TASKS", "RunConfig", "SettingError", "RunResult", "Task",
           "TrainingDiverged", "TrainConfig", "CharLMTask", "evaluate", "load_model",
           "Seq2SeqConfig", "Seq2SeqTask", "evaluate_exact_match", "load_seq2seq",
           "ConvLSTMConfig", "ConvLSTMTask", "load_convlstm", "predict_probs"]
