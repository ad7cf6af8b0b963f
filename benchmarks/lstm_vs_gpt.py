#!/usr/bin/env python
"""LSTM against GPT on tiny Shakespeare at the same CPU budget: the headline table.

Three models, each trained by ``minirnn train``'s own loop (``minirnn.training.train``)
on tiny Shakespeare (90/10 split), one after the other, for 300 s and then, resumed
exactly, to 600 s of training time (evaluation not counted; the budgets are
``--budgets``):

- ``lstm``: the README's model, a 2-layer LSTM of 512 units over a 64-wide embedding,
  64 streams of 64 characters, Adam 2e-3, clipping at 5;
- ``gpt``: nanoGPT's CPU recipe, 4 blocks of width 128 with 4 heads, a context of 64,
  12 random windows per batch, AdamW 1e-3, clipping at 1;
- ``gpt-large``: 6 blocks of width 192 with 6 heads, a context of 128, 8 windows per
  batch (1,024 characters a step), the same optimizer: about 4.5 times the recipe's work
  per step, so fewer steps for more capacity and context.

The validation loss (nats per character over the whole validation split) is taken at
the end of each budget and every ``eval_every`` steps in between (each model's own,
about a dozen evaluations in 600 s). The BLAS threads are the loop's choice, as for any
``minirnn train`` (``--threads`` fixes them).

    python benchmarks/lstm_vs_gpt.py                    # 3 x 600 s, about 35 minutes
    python benchmarks/lstm_vs_gpt.py --budgets 10,20 --only gpt     # a quick look

Writes ``<out>/<model>/`` (each run's folder: metrics.jsonl, checkpoint.npz, loss.png),
``<out>/summary.json`` (per model: its settings, parameters, and per budget the steps
and the validation nats and bits per character), prints the table in Markdown, and
draws the validation curves of all three against training time into ``--plot``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from minirnn.training import TrainConfig, train  # noqa: E402
from minirnn.viz import new_figure, read_metrics, save_figure  # noqa: E402

MODELS = {
    "lstm": dict(cell="lstm", hidden_size=512, num_layers=2, embedding_dim=64,
                 batch_size=64, seq_len=64, optimizer="adam", lr=2e-3, clip=5.0,
                 eval_every=100),
    "gpt": dict(model="gpt", num_layers=4, embedding_dim=128, num_heads=4, seq_len=64,
                batch_size=12, optimizer="adamw", lr=1e-3, clip=1.0, eval_every=1000),
    "gpt-large": dict(model="gpt", num_layers=6, embedding_dim=192, num_heads=6,
                      seq_len=128, batch_size=8, optimizer="adamw", lr=1e-3, clip=1.0,
                      eval_every=250),
}


def run(name, budgets, args):
    """Train model ``name`` to each budget in turn; returns its row of the table."""
    settings = MODELS[name]
    row = {"settings": settings, "budgets": {}}
    for i, budget in enumerate(budgets):
        cfg = TrainConfig(data="tinyshakespeare", val_fraction=0.1, dropout=0.0,
                          time_budget=budget, save_every=10**9, sample_length=0,
                          seed=args.seed, threads=args.threads, out=str(args.out / name),
                          progress=args.progress, **settings)
        result = train(cfg, resume=i > 0, log=print)
        row["parameters"] = result.model.num_parameters()
        row["budgets"][f"{budget:g}"] = {
            "steps": result.step, "train_time_s": round(result.train_time, 1),
            "val_nats": result.val_loss, "val_bits": result.val_loss / math.log(2)}
    return row


def table(rows, budgets):
    head = "| model | parameters | " + " | ".join(
        f"steps, val nats/char after {b:g} s" for b in budgets) + " |"
    lines = [head, "|" + "---|" * (2 + len(budgets))]
    for name, row in rows.items():
        cells = [f"{r['steps']:,}, {r['val_nats']:.3f}" for r in row["budgets"].values()]
        lines.append(f"| {name} | {row['parameters']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows, out, path):
    fig, ax = new_figure(figsize=(8, 4.5), dpi=110)
    for i, name in enumerate(rows):
        val = [r for r in read_metrics(out / name / "metrics.jsonl") if "val_loss" in r]
        ax.plot([r["train_time"] for r in val], [r["val_loss"] for r in val], "o-", ms=3,
                color=f"C{i}", label=f"{name} ({rows[name]['parameters']:,} parameters)")
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("validation loss (nats per character)")
    ax.set_title("tiny Shakespeare: LSTM and GPT at the same CPU budget")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budgets", default="300,600",
                   help="seconds of training at which to report, increasing (comma-separated)")
    p.add_argument("--only", choices=list(MODELS), action="append",
                   help="train only this model (may be repeated)")
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS threads (default: the loop's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--progress", action="store_true", help="show the progress bars")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "lstm_vs_gpt")
    p.add_argument("--plot", default=str(ROOT / "docs" / "lstm_vs_gpt.png"))
    args = p.parse_args(argv)
    budgets = [float(b) for b in args.budgets.split(",")]
    if not budgets or any(b <= 0 for b in budgets) or budgets != sorted(set(budgets)):
        p.error(f"--budgets must be increasing positive seconds, got {args.budgets!r}")
    rows = {name: run(name, budgets, args) for name in (args.only or MODELS)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    plot(rows, args.out, args.plot)
    print(table(rows, budgets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
