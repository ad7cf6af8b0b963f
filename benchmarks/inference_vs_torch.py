#!/usr/bin/env python
"""Sampling and validation throughput, minirnn against PyTorch, the same model, one run.

The README's model (a 2-layer LSTM of 512 units over a 64-wide embedding, tiny
Shakespeare's 65 characters), built by minirnn and copied into PyTorch with
``minirnn.interop.to_torch``, so both hold the same weights:

* **sampling**: characters per second at batch 1. minirnn runs ``generate.sample`` (what
  ``minirnn sample`` runs: one step of the model per character, temperature 1, the draw
  on the host); PyTorch steps ``nn.LSTM`` one character at a time under ``no_grad``,
  softmax, ``torch.multinomial``.
* **validation**: characters per second of one pass over the validation split (64
  streams of 64, the state carried): minirnn's ``training.evaluate`` against PyTorch's
  ``no_grad`` forward plus cross-entropy.

Each measurement is repeated, minirnn and PyTorch alternating, and the median kept. A
trained checkpoint can be given (``--checkpoint``); the figures do not depend on the
weights.

    python benchmarks/inference_vs_torch.py                      # 2000 characters, 3 repeats
    python benchmarks/inference_vs_torch.py --threads 1 --json inference.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from minirnn import backend  # noqa: E402
from minirnn.data import StreamBatcher, load_corpus  # noqa: E402
from minirnn.generate import sample  # noqa: E402
from minirnn.nn import CharRNN  # noqa: E402
from minirnn.training import evaluate, load_model  # noqa: E402


def minirnn_sampling(model, vocab, length):
    t0 = time.perf_counter()
    sample(model, vocab, prompt="ROMEO:", length=length, temperature=1.0, seed=0)
    return length / (time.perf_counter() - t0)


def torch_sampling(tmodel, vocab, length):
    import torch
    ids = [int(i) for i in vocab.encode("ROMEO:")]
    generator = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    with torch.no_grad():
        x = torch.tensor([ids[:-1]])
        _, state = tmodel(x) if len(ids) > 1 else (None, None)
        token = torch.tensor([[ids[-1]]])
        for _ in range(length):
            logits, state = tmodel(token, state)
            probs = torch.softmax(logits[0, -1].double(), dim=0)
            token = torch.multinomial(probs, 1, generator=generator)[None]
    return length / (time.perf_counter() - t0)


def torch_validation(tmodel, batches):
    import torch
    total, count, state = 0.0, 0, None
    t0 = time.perf_counter()
    with torch.no_grad():
        for x, y in batches:
            logits, state = tmodel(torch.from_numpy(x).long(), state)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                     torch.from_numpy(y).long().reshape(-1))
            total, count = total + loss.item() * y.size, count + y.size
    return count / (time.perf_counter() - t0), total / count


def minirnn_validation(model, batches):
    t0 = time.perf_counter()
    nats = evaluate(model, batches)
    return batches.tokens_per_pass / (time.perf_counter() - t0), nats


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", help="a trained char model (default: a new 2x512 LSTM)")
    ap.add_argument("--length", type=int, default=2000, help="characters sampled (2000)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of each measurement (3)")
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS and torch threads for both (default: each job's default, 1 "
                         "for sampling and as many as the process may use for validation)")
    ap.add_argument("--json", metavar="PATH", help="also write the figures here")
    args = ap.parse_args(argv)
    import torch

    from minirnn.interop import to_torch
    backend.reuse_freed_memory()
    corpus = load_corpus("tinyshakespeare")
    if args.checkpoint:
        model, vocab, _ = load_model(args.checkpoint)
    else:
        model, vocab = CharRNN(len(corpus.vocab), 512, 2, "lstm", 64, seed=0), corpus.vocab
    model.eval()
    tmodel = to_torch(model).eval()
    batches = StreamBatcher(corpus.val_ids, 64, 64)
    rows = {}
    for job, threads in (("sampling", args.threads or 1),
                         ("validation", args.threads or backend.cores())):
        torch.set_num_threads(threads)
        mine, theirs = [], []
        with backend.blas_threads(threads):
            for _ in range(args.repeats):
                if job == "sampling":
                    mine.append(minirnn_sampling(model, vocab, args.length))
                    theirs.append(torch_sampling(tmodel, vocab, args.length))
                else:
                    mine.append(minirnn_validation(model, batches)[0])
                    theirs.append(torch_validation(tmodel, batches)[0])
        rows[job] = {"threads": threads, "minirnn_chars_per_s": statistics.median(mine),
                     "torch_chars_per_s": statistics.median(theirs)}
        rows[job]["ratio"] = rows[job]["minirnn_chars_per_s"] / rows[job]["torch_chars_per_s"]
    print(f"LSTM {model.config['num_layers']}x{model.config['hidden_size']}, "
          f"vocabulary {len(vocab)}; median of {args.repeats}")
    print(f"{'job':12s}{'threads':>8s}{'minirnn chars/s':>18s}{'torch chars/s':>16s}"
          f"{'ratio':>8s}")
    for job, r in rows.items():
        print(f"{job:12s}{r['threads']:8d}{r['minirnn_chars_per_s']:18,.0f}"
              f"{r['torch_chars_per_s']:16,.0f}{r['ratio']:8.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
