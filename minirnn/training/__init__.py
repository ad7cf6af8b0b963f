"""Training: one loop (``loop.py``), one file per task, a config per task.

    from minirnn.training import TrainConfig, Seq2SeqConfig, ConvLSTMConfig, train
    result = train(TrainConfig(data="tinyshakespeare", time_budget=600, out="runs/s"))
    result = train(Seq2SeqConfig(task="dates", steps=3000), resume=False)
    result = train(TrainConfig(model="gpt", embedding_dim=128, num_heads=4, steps=2000))

``train(cfg)`` picks the task by the config's type and its ``model`` setting (``TASKS``).
Adding a model to train is one more file here with a config (or a ``model`` choice of
one) and a ``Task``, and one more row in ``TASKS``.
"""

from __future__ import annotations

from . import loop
from .charlm import CharLMTask, TrainConfig, evaluate, load_model
from .config import RunConfig, SettingError
from .convlstm import ConvLSTMConfig, ConvLSTMTask, load_convlstm, predict_probs
from .gpt import GPTTask
from .loop import RunResult, Task, TrainingDiverged
from .seq2seq import Seq2SeqConfig, Seq2SeqTask, evaluate_exact_match, load_seq2seq

# (config type, its ``model`` setting, None where it has none) -> the task that trains it
TASKS = {(TrainConfig, "rnn"): CharLMTask, (TrainConfig, "gpt"): GPTTask,
         (Seq2SeqConfig, None): Seq2SeqTask, (ConvLSTMConfig, None): ConvLSTMTask}


def train(cfg, resume=False, log=print):
    """Train as ``cfg`` says (its type, and its ``model`` where it has one, pick the
    task); returns a ``RunResult``.

    resume: continue the run in ``cfg.out`` from its checkpoint (see ``loop.py``).
    log: where the run's messages go (``print`` by default).
    """
    key = (type(cfg), getattr(cfg, "model", None))
    if key not in TASKS:
        configs = dict.fromkeys(c.__name__ for c, _ in TASKS)
        raise TypeError(f"train: cfg must be one of {', '.join(configs)}, "
                        f"got {type(cfg).__name__}")
    return loop.train(TASKS[key], cfg, resume=resume, log=log)


__all__ = ["train", "TASKS", "RunConfig", "SettingError", "RunResult", "Task",
           "TrainingDiverged", "TrainConfig", "CharLMTask", "GPTTask", "evaluate",
           "load_model",
           "Seq2SeqConfig", "Seq2SeqTask", "evaluate_exact_match", "load_seq2seq",
           "ConvLSTMConfig", "ConvLSTMTask", "load_convlstm", "predict_probs"]
