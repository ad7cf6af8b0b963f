"""The loop's instruments: the metrics file, Ctrl-C, the progress bar.

Each is a small object the loop (``loop.py``) holds for the length of a run; none knows
anything about models or tasks.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path


class MetricsLog:
    """``metrics.jsonl``, one JSON record per line, flushed as written. A resumed run
    first drops the records after the checkpoint's step, so the file holds one clean
    history (a run killed after its last save wrote rows that the resume repeats)."""

    def __init__(self, path, resumed_at=None):
        self.path, self.resumed_at = Path(path), resumed_at

    def __enter__(self):
        if self.resumed_at is None or not self.path.exists():
            self.file = open(self.path, "w", encoding="utf-8")
            return self
        kept = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= self.resumed_at]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        tmp.replace(self.path)
        self.file = open(self.path, "a", encoding="utf-8")
        return self

    def write(self, record):
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def __exit__(self, *exc):
        self.file.close()
        return False


class StopOnCtrlC:
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


class ProgressBar:
    """A tqdm bar over the steps, or over the seconds when only a time budget is set;
    with ``progress`` off, ``write`` goes to ``log`` and the rest does nothing."""

    def __init__(self, cfg, state, log=print):
        self.log = log
        self.by_time = cfg.steps is None
        self.enabled = cfg.progress
        self.total = cfg.time_budget if self.by_time else cfg.steps
        self.initial = state.train_time if self.by_time else state.step

    def __enter__(self):
        self.bar = None
        if self.enabled:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=self.total, initial=self.initial, dynamic_ncols=True,
                            unit="s" if self.by_time else "step",
                            bar_format=None if not self.by_time else
                            "{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]")
        return self

    def advance(self, steps, seconds):
        if self.bar is not None:
            self.bar.update(seconds if self.by_time else steps)

    def set_postfix(self, **kw):
        if self.bar is not None:
            self.bar.set_postfix(**kw)

    def write(self, text):
        if self.bar is not None:
            self.bar.write(text)
        else:
            self.log(text)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
        return False
