"""Figures: drawn without pyplot, so they never change the caller's matplotlib set-up."""

import json
import subprocess
import sys


def test_drawing_a_png_leaves_the_callers_backend_and_figures_alone(tmp_path):
    """A notebook's inline backend (here: the pdf one, chosen by the caller) and its open
    figures stay as they were after minirnn writes its PNGs."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(
        json.dumps(r) + "\n" for r in [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5,
                                                                   "val_loss": 1.7}]))
    code = f"""
import matplotlib
matplotlib.use("pdf")
import matplotlib.pyplot as plt
import numpy as np
from minirnn.viz import plot_attention, plot_training
mine = plt.figure()
plot_training({str(run)!r}, {str(tmp_path / "loss.png")!r})
plot_attention(np.full((2, 3), 1 / 3), "abc", "xy", {str(tmp_path / "att.png")!r})
print(matplotlib.get_backend(), plt.get_fignums() == [mine.number])
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["pdf", "True"]
    for name in ("loss.png", "att.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
