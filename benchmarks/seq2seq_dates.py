#!/usr/bin/env python
"""Seq2seq with attention on tasks generated in code: date normalisation and reversal.

Trains a bidirectional-LSTM encoder / attention-LSTM decoder for at most ``--budget``
seconds of training on this machine, then scores exact match on the task's fixed 1,000
held-out pairs with greedy decoding and with beam search, and draws the attention of one
date into ``docs/attention_dates.png``.

    python benchmarks/seq2seq_dates.py                    # dates, then reverse; 10 min each
    python benchmarks/seq2seq_dates.py --tasks dates --budget 300

Targets: dates >= 99% exact match after at most 10 minutes of training on the 2-core CPU;
reversal of strings up to 12 characters >= 98%.

The model's matrices are small (64 x 96 times 96 x 256), too small for a second BLAS
thread to pay for its synchronisation, and on a machine with other work a spinning
OpenBLAS thread makes them many times slower. So this script runs BLAS on one thread
(``--threads``, set before NumPy loads); on an idle machine two threads are no faster.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=["dates", "reverse"],
                   choices=["dates", "reverse", "sort"])
    p.add_argument("--budget", type=float, default=600.0, help="seconds of training per task")
    p.add_argument("--threads", default="1", help="BLAS threads (OPENBLAS_NUM_THREADS)")
    p.add_argument("--beam-width", type=int, default=4)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "seq2seq"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", args.threads)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))

    from minirnn.data.tasks import TaskData, exact_match
    from minirnn.generate import attention_weights, translate
    from minirnn.training import Seq2SeqConfig, train
    from minirnn.viz import plot_attention, plot_training

    summary = {}
    for task in args.tasks:
        cfg = Seq2SeqConfig(task=task, time_budget=args.budget, eval_every=1000,
                            n_train=50_000, seed=args.seed, out=str(Path(args.out) / task),
                            progress=False)
        t0 = time.perf_counter()
        result = train(cfg)
        model, vocab = result.model, result.vocab
        data = TaskData(task, n_train=cfg.n_train, n_test=cfg.n_test, seed=cfg.seed)
        sources = [s for s, _ in data.test_pairs]
        targets = [t for _, t in data.test_pairs]
        greedy = translate(model, vocab, sources)
        t1 = time.perf_counter()
        beam = translate(model, vocab, sources, beam_width=args.beam_width)
        beam_s = time.perf_counter() - t1
        wrong = [(s, g, t) for s, g, t in zip(sources, greedy, targets) if g != t][:10]
        summary[task] = {
            "steps": result.step, "train_seconds": round(result.train_time, 1),
            "wall_seconds": round(time.perf_counter() - t0, 1),
            "exact_match_greedy": exact_match(greedy, targets),
            f"exact_match_beam{args.beam_width}": exact_match(beam, targets),
            "beam_decode_seconds": round(beam_s, 2),
            "examples_wrong": wrong,
        }
        print(json.dumps({task: summary[task]}, indent=2))
        plot_training({task: Path(cfg.out)}, Path(cfg.out) / "loss.png", x="time")
        if task == "dates":
            src = "tue 3 march 2020"
            out = translate(model, vocab, [src])[0]
            w = attention_weights(model, vocab, src, out)
            plot_attention(w, src, out, ROOT / "docs" / "attention_dates.png",
                           title=f"{src}  ->  {out}")
            summary[task]["example"] = [src, out]
    (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=2))
    for task, r in summary.items():
        print(f"{task:8s} {r['steps']:6d} steps in {r['train_seconds']:6.1f} s: exact match "
              f"greedy {r['exact_match_greedy']:.4f}, beam {r[f'exact_match_beam{args.beam_width}']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
