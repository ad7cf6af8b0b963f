#!/usr/bin/env python
"""GPT, minirnn against PyTorch: the same model, data, batches, optimizer and budget.

nanoGPT's CPU recipe on tiny Shakespeare (90/10 split): 4 blocks of width 128 with 4
heads, a context of 64 characters, batches of 12 random windows, AdamW 1e-3 (weight
decay 0.01), gradient-norm clipping at 1, no dropout. Both models start from the same
weights (PyTorch's is ``minirnn.interop.to_torch`` of minirnn's, which uses
``nn.LayerNorm``, ``F.scaled_dot_product_attention(is_causal=True)`` and
``nn.GELU(approximate="tanh")``) and read the same batches in the same order (batch s
is a function of the seed and s).

The two train in this one process, interleaved: minirnn for ``--chunk`` seconds of
training, then PyTorch for as long, and so on until each has trained ``--budget``
seconds (evaluation not counted), so that whatever else the machine does hits both
alike. Both use ``--threads`` threads (NumPy's BLAS and torch's; on a machine busy with
other work, two threads per library wait on each other and both slow down many times
over: measure on a quiet machine, or with ``--threads 1``). The validation loss
(nats per character, over the whole validation split in windows of 64, the same windows
for both) is taken every ``--eval-every`` steps and at the end.

    python benchmarks/gpt_vs_torch.py                   # 300 s each, about 12 minutes
    python benchmarks/gpt_vs_torch.py --budget 20 --eval-every 100    # a quick look

Prints and writes ``<out>/summary.json``: steps, seconds, steps/s and the final
validation loss of each, and the ratios the project's targets are about (minirnn's
steps/s over torch's, at least 0.8; its validation loss minus torch's, at most 0.02);
``<out>/minirnn/metrics.jsonl`` and ``<out>/torch/metrics.jsonl``; and the plot
``--plot`` (validation loss against training time).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from minirnn import backend, optim  # noqa: E402
from minirnn.data import StreamBatcher, WindowBatcher, load_corpus  # noqa: E402
from minirnn.nn import GPT  # noqa: E402
from minirnn.viz import plot_training  # noqa: E402

RECIPE = dict(num_layers=4, embedding_dim=128, num_heads=4, block_size=64, batch_size=12,
              lr=1e-3, weight_decay=0.01, clip=1.0, dropout=0.0)


class Side:
    """One library's run: its model, its training step, its evaluation, its metrics."""

    def __init__(self, name, out):
        self.name, self.steps, self.train_time, self.val_loss = name, 0, 0.0, None
        out.mkdir(parents=True, exist_ok=True)
        self.metrics = open(out / "metrics.jsonl", "w", encoding="utf-8")

    def record(self, **r):
        self.metrics.write(json.dumps(r) + "\n")

    def train_for(self, seconds, windows, budget, eval_every, val):
        """Train until ``seconds`` more of training time (or the budget) are spent."""
        stop = min(self.train_time + seconds, budget)
        while self.train_time < stop:
            x, y = windows.batch(self.steps)
            t0 = time.perf_counter()
            loss = self.step(x, y)
            self.train_time += time.perf_counter() - t0
            self.steps += 1
            self.record(step=self.steps, train_time=round(self.train_time, 3), loss=loss)
            if self.steps % eval_every == 0:
                self.evaluate_and_record(val)

    def evaluate_and_record(self, val):
        total = sum(self.loss_of(x, y) * y.size for x, y in val)
        self.val_loss = total / sum(y.size for _, y in val)
        self.record(step=self.steps, train_time=round(self.train_time, 3),
                    val_loss=self.val_loss)
        print(f"{self.name:8s} step {self.steps:6d}: val {self.val_loss:.4f} nats/char "
              f"({self.train_time:.0f} s of training)", flush=True)


class Minirnn(Side):
    def __init__(self, model, out):
        super().__init__("minirnn", out)
        self.model = m = model.flatten()  # as the training loop does
        self.opt = optim.AdamW(m.params, m.grads, lr=RECIPE["lr"],
                               weight_decay=RECIPE["weight_decay"], flat=m.flat)

    def step(self, x, y):
        m = self.model
        m.zero_grad()
        loss, dlogits = m.loss({"ids": x, "targets": y})
        m.backward(dlogits)
        optim.clip_grad_norm(m.gradient_arrays(), RECIPE["clip"])
        self.opt.step()
        return float(loss)

    def loss_of(self, x, y):
        self.model.eval()
        loss = float(self.model.loss({"ids": x, "targets": y})[0])
        self.model.train()
        return loss


class Torch(Side):
    def __init__(self, model, out):
        import torch

        super().__init__("torch", out)
        from minirnn.interop import to_torch
        self.torch = torch
        self.model = to_torch(model).train()  # the same initial weights
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=RECIPE["lr"],
                                     weight_decay=RECIPE["weight_decay"])

    def _loss(self, x, y):
        logits = self.model(self.torch.from_numpy(x).long())
        return self.torch.nn.functional.cross_entropy(logits.flatten(0, 1),
                                                      self.torch.from_numpy(y).long().flatten())

    def step(self, x, y):
        loss = self._loss(x, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), RECIPE["clip"])
        self.opt.step()
        return loss.item()

    def loss_of(self, x, y):
        self.model.eval()
        with self.torch.no_grad():
            loss = self._loss(x, y).item()
        self.model.train()
        return loss


def summary(sides, args):
    out = {"recipe": RECIPE, "budget_s": args.budget, "threads": args.threads,
           "chunk_s": args.chunk, "seed": args.seed}
    for s in sides:
        out[s.name] = {"steps": s.steps, "train_time_s": round(s.train_time, 2),
                       "steps_per_s": s.steps / s.train_time, "val_loss": s.val_loss}
    if len(sides) == 2:
        m, t = out["minirnn"], out["torch"]
        out["steps_per_s_ratio"] = m["steps_per_s"] / t["steps_per_s"]
        out["val_loss_minus_torch"] = m["val_loss"] - t["val_loss"]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=300.0, help="seconds of training each")
    p.add_argument("--chunk", type=float, default=5.0, help="seconds each side trains before "
                   "the other takes its turn")
    p.add_argument("--eval-every", type=int, default=500, help="steps between evaluations")
    p.add_argument("--threads", type=int, default=backend.cores(),
                   help="threads of each library (default: every core)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", choices=["minirnn", "torch"], default=None)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gpt_vs_torch"))
    p.add_argument("--plot", default=str(ROOT / "docs" / "gpt_vs_torch.png"))
    args = p.parse_args(argv)
    out = Path(args.out)
    backend.reuse_freed_memory()
    corpus = load_corpus("tinyshakespeare", val_fraction=0.1)
    B, N = RECIPE["block_size"], RECIPE["batch_size"]
    windows = WindowBatcher(corpus.train_ids, N, B, seed=args.seed)
    val = list(StreamBatcher(corpus.val_ids, N, B))
    model = GPT(len(corpus.vocab), block_size=B, num_layers=RECIPE["num_layers"],
                embedding_dim=RECIPE["embedding_dim"], num_heads=RECIPE["num_heads"],
                dropout=RECIPE["dropout"], seed=args.seed)
    sides = []
    if args.only in (None, "torch"):
        import torch
        torch.manual_seed(args.seed)
        torch.set_num_threads(args.threads)
        sides.append(Torch(model, out / "torch"))  # before minirnn's flatten: same weights
    if args.only in (None, "minirnn"):
        sides.insert(0, Minirnn(model, out / "minirnn"))
    print(f"{model.num_parameters():,} parameters; {len(val)} validation batches; "
          f"{args.threads} thread(s) each; {args.budget:g} s of training each, in turns of "
          f"{args.chunk:g} s", flush=True)
    with backend.blas_threads(args.threads):
        while any(s.train_time < args.budget for s in sides):
            for s in sides:
                s.train_for(args.chunk, windows, args.budget, args.eval_every, val)
        for s in sides:
            if s.val_loss is None or s.steps % args.eval_every:
                s.evaluate_and_record(val)
            s.metrics.close()
    result = summary(sides, args)
    (out / "summary.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    plot_training({s.name: out / s.name for s in sides}, args.plot, x="time",
                  title=f"GPT 4x128 on tiny Shakespeare, {args.budget:g} s of training each")
    for s in sides:
        r = result[s.name]
        print(f"{s.name:8s} {r['steps']:6d} steps in {r['train_time_s']:.0f} s = "
              f"{r['steps_per_s']:.2f} steps/s; val {r['val_loss']:.4f} nats/char "
              f"({r['val_loss'] / math.log(2):.3f} bits/char)")
    if len(sides) == 2:
        print(f"minirnn / torch steps/s: {result['steps_per_s_ratio']:.2f} (target >= 0.8); "
              f"val loss minus torch's: {result['val_loss_minus_torch']:+.4f} nats "
              f"(target <= 0.02)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
