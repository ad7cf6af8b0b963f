#!/usr/bin/env python
"""Char-level language model, minirnn against PyTorch, same settings, same wall-clock budget.

Tiny Shakespeare, 90/10 split; a 2-layer LSTM of 512 units over a 64-wide embedding,
64 streams of 64 characters (truncated BPTT with the state carried), Adam 2e-3,
gradient-norm clipping at 5, no dropout. Each library trains for ``--budget`` seconds
of training time (evaluation not counted) in this one process, one after the other,
and both read the same batches in the same order. The validation loss (nats per
character, over the whole validation split with a carried state) is recorded every
``--eval-every`` steps and once more when the budget runs out.

The PyTorch side is the idiomatic model: ``nn.Embedding -> nn.LSTM(num_layers=2,
batch_first=True) -> nn.Linear``, ``torch.optim.Adam`` and ``clip_grad_norm_``.

    python benchmarks/charlm_vs_torch.py                       # 600 s each (about 22 min)
    python benchmarks/charlm_vs_torch.py --budget 30 --eval-every 10   # a quick look

Each library runs in a process of its own (``--only``), so that each one's peak resident
memory is its own. Reports steps, validation loss, peak memory and the ratio of training
steps per second. Writes ``<out>/minirnn/metrics.jsonl``, ``<out>/torch/metrics.jsonl``,
``<out>/summary.json`` and the plot ``docs/charlm_vs_torch.png`` (validation loss against
training time).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from minirnn.data import StreamBatcher, load_corpus  # noqa: E402
from minirnn.training import TrainConfig, train  # noqa: E402
from minirnn.viz import plot_training  # noqa: E402

SETTINGS = dict(cell="lstm", hidden_size=512, num_layers=2, embedding_dim=64, dropout=0.0,
                batch_size=64, seq_len=64, optimizer="adam", lr=2e-3, clip=5.0)


def run_minirnn(args, out):
    cfg = TrainConfig(data="tinyshakespeare", time_budget=args.budget, eval_every=args.eval_every,
                      save_every=10**9, sample_length=0, seed=args.seed, out=str(out),
                      progress=False, **SETTINGS)
    result = train(cfg, log=print)
    return {"steps": result.step, "val_loss": result.val_loss}


def run_torch(args, out, corpus):
    import torch
    from torch import nn

    from minirnn import backend
    # minirnn's jobs let glibc reuse large freed buffers (backend.reuse_freed_memory);
    # torch gets the same setting, so the ratio compares the libraries, not allocators.
    backend.reuse_freed_memory()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    V, E, H, L = len(corpus.vocab), SETTINGS["embedding_dim"], SETTINGS["hidden_size"], \
        SETTINGS["num_layers"]

    class CharLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(V, E)
            self.lstm = nn.LSTM(E, H, num_layers=L, batch_first=True)
            self.head = nn.Linear(H, V)

        def forward(self, x, state=None):
            hs, state = self.lstm(self.embed(x), state)
            return self.head(hs), state

    model = CharLSTM()
    opt = torch.optim.Adam(model.parameters(), lr=SETTINGS["lr"])
    loss_fn = nn.CrossEntropyLoss()
    N, T = SETTINGS["batch_size"], SETTINGS["seq_len"]
    batches = StreamBatcher(corpus.train_ids, N, T)
    val_batches = StreamBatcher(corpus.val_ids, N, T)

    def evaluate():
        model.eval()
        total, count, state = 0.0, 0, None
        with torch.no_grad():
            for x, y in val_batches:
                logits, state = model(torch.from_numpy(x).long(), state)
                total += loss_fn(logits.reshape(-1, V), torch.from_numpy(y).long().reshape(-1)
                                 ).item() * y.size
                count += y.size
        model.train()
        return total / count

    out.mkdir(parents=True, exist_ok=True)
    step, batch_index, state, train_time, val_loss = 0, 0, None, 0.0, None
    with open(out / "metrics.jsonl", "w", encoding="utf-8") as metrics:
        def record(**r):
            metrics.write(json.dumps(r) + "\n")
            metrics.flush()

        while train_time < args.budget:
            if batch_index >= len(batches):
                batch_index, state = 0, None
            t0 = time.perf_counter()
            x, y = batches.batch(batch_index)
            logits, state = model(torch.from_numpy(x).long(), state)
            loss = loss_fn(logits.reshape(-1, V), torch.from_numpy(y).long().reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            norm = nn.utils.clip_grad_norm_(model.parameters(), SETTINGS["clip"])
            opt.step()
            state = tuple(s.detach() for s in state)
            step += 1
            batch_index += 1
            dt = time.perf_counter() - t0
            train_time += dt
            record(step=step, train_time=round(train_time, 3), loss=loss.item(),
                   grad_norm=float(norm), chars_per_s=y.size / dt)
            if step % args.eval_every == 0:
                val_loss = evaluate()
                record(step=step, train_time=round(train_time, 3), val_loss=val_loss)
                print(f"torch step {step}: val {val_loss:.4f} nats/char "
                      f"({train_time:.0f} s of training)")
        if step % args.eval_every:
            val_loss = evaluate()
            record(step=step, train_time=round(train_time, 3), val_loss=val_loss)
    print(f"torch stopped at step {step}: val {val_loss:.4f} nats/char")
    return {"steps": step, "val_loss": val_loss}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=600.0, help="seconds of training each")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads (NumPy's BLAS uses "
                   "all cores by default)")
    p.add_argument("--only", choices=["minirnn", "torch"], default=None,
                   help="run one library only (each normally runs in its own process)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "charlm"))
    p.add_argument("--plot", default=str(ROOT / "docs" / "charlm_vs_torch.png"))
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.only is not None:  # one library, in this process: write its part and stop
        out.mkdir(parents=True, exist_ok=True)
        if args.only == "minirnn":
            part = run_minirnn(args, out / "minirnn")
        else:
            part = run_torch(args, out / "torch", load_corpus("tinyshakespeare", val_fraction=0.1))
        (out / f"{args.only}.json").write_text(json.dumps(part))
        return 0
    summary = {"settings": SETTINGS, "budget_s": args.budget, "eval_every": args.eval_every}
    for name in ("minirnn", "torch"):  # each in its own process, for its own peak memory
        summary[name] = run_in_child(argv or sys.argv[1:], name, out)
    summary["steps_ratio"] = summary["minirnn"]["steps"] / summary["torch"]["steps"]
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    runs = {name: out / name for name in ("minirnn", "torch") if (out / name).exists()}
    plot_training(runs, args.plot, x="time",
                  title=f"tiny Shakespeare, 2x LSTM 512, {args.budget:.0f} s of training each")
    print(json.dumps(summary, indent=2))
    for name in ("minirnn", "torch"):
        r = summary[name]
        print(f"{name:8s} steps {r['steps']:5d}  val {r['val_loss']:.4f} nats/char "
              f"({r['val_loss'] / math.log(2):.3f} bits/char), peak memory "
              f"{r['peak_rss_mb']:.0f} MB")
    print(f"training steps per second, minirnn / torch: {summary['steps_ratio']:.3f}")
    return 0


def run_in_child(argv, name, out):
    """Run this script with ``--only name``; its summary part and its peak resident set."""
    proc = subprocess.Popen([sys.executable, __file__, *argv, "--only", name])
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"the {name} run failed (status {status})")
    part = json.loads((out / f"{name}.json").read_text())
    part["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports kilobytes
    return part


if __name__ == "__main__":
    sys.exit(main())
