"""Notebooks run under pytest (nbmake) with the fast setting: MINIRNN_FAST=1 shrinks every
training run so each notebook finishes in well under two minutes. Opened by hand, the
notebooks use the full setting and show the real results."""

import os
from pathlib import Path

os.environ.setdefault("MINIRNN_FAST", "1")
os.environ.setdefault("MINIRNN_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
