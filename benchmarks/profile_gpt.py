#!/usr/bin/env python
"""One training step of the GPT at nanoGPT's CPU recipe, split into its parts, and
PyTorch's whole step beside it.

The recipe of ``gpt_vs_torch.py``: 4 blocks of width 128 with 4 heads, a context of 64,
12 random windows of tiny Shakespeare, AdamW, clipping at 1. minirnn's step is timed
part by part by wrapping the functions it calls:

    embedding        token lookup and its gradient (the position rows are in "rest")
    layer norm       the 9 layer norms, forward and backward
    attention        causal self-attention, forward and backward (its two projections,
                     the scores, the softmax, the weighted values)
    mlp products     the affine maps of the MLPs and of the output layer, both ways
    gelu             GELU, forward and backward
    loss             softmax cross-entropy and dL/dlogits
    clip, optimizer  the global gradient norm and its scaling; AdamW's update
    rest             everything else (residual additions, zeroing, Python)

PyTorch's step (the same model through ``to_torch``, the same batches) is timed whole.
The two alternate, ``--chunk`` steps each, for ``--steps`` steps each after 5 warm-up
steps, on ``--threads`` threads each.

    python benchmarks/profile_gpt.py                       # 200 steps each
    python benchmarks/profile_gpt.py --threads 1 --steps 60
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from minirnn import backend, optim  # noqa: E402
from minirnn import functional as F  # noqa: E402
from minirnn.data import WindowBatcher, load_corpus  # noqa: E402
from minirnn.nn import GPT  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from gpt_vs_torch import RECIPE, Minirnn, Torch  # noqa: E402

PARTS = {"embedding": ("embedding_forward", "embedding_backward"),
         "layer norm": ("layer_norm_forward", "layer_norm_backward"),
         "attention": ("causal_self_attention_forward", "causal_self_attention_backward"),
         "mlp products": ("affine_forward", "affine_backward"),
         "gelu": ("gelu_forward", "gelu_backward"),
         "loss": ("softmax_cross_entropy",)}


def timed(seconds, part, fn):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[part] += time.perf_counter() - t0
    return wrapper


def instrument(side, seconds):
    """Wrap the functions minirnn's step calls so that each adds its time to its part."""
    for part, names in PARTS.items():
        for name in names:
            setattr(F, name, timed(seconds, part, getattr(F, name)))
    optim.clip_grad_norm = timed(seconds, "clip", optim.clip_grad_norm)
    side.opt.step = timed(seconds, "optimizer", side.opt.step)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200, help="timed steps of each library")
    p.add_argument("--chunk", type=int, default=10, help="steps of one before the other's")
    p.add_argument("--threads", type=int, default=backend.cores())
    args = p.parse_args(argv)
    import tempfile

    import torch
    torch.set_num_threads(args.threads)
    backend.reuse_freed_memory()
    corpus = load_corpus("tinyshakespeare", val_fraction=0.1)
    windows = WindowBatcher(corpus.train_ids, RECIPE["batch_size"], RECIPE["block_size"])
    model = GPT(len(corpus.vocab), block_size=RECIPE["block_size"],
                num_layers=RECIPE["num_layers"], embedding_dim=RECIPE["embedding_dim"],
                num_heads=RECIPE["num_heads"])
    out = Path(tempfile.mkdtemp(prefix="profile-gpt-"))
    theirs = Torch(model, out / "torch")
    ours = Minirnn(model, out / "minirnn")
    seconds, total = defaultdict(float), {"minirnn": 0.0, "torch": 0.0}
    with backend.blas_threads(args.threads):
        for s in range(5):  # warm-up
            for side in (ours, theirs):
                side.step(*windows.batch(s))
        instrument(ours, seconds)
        for start in range(0, args.steps, args.chunk):
            for name, side in (("minirnn", ours), ("torch", theirs)):
                batches = [windows.batch(5 + start + i) for i in range(args.chunk)]
                t0 = time.perf_counter()
                for x, y in batches:
                    side.step(x, y)
                total[name] += time.perf_counter() - t0
    n = args.steps // args.chunk * args.chunk
    step = {k: v / n * 1e3 for k, v in total.items()}
    parts = {k: v / n * 1e3 for k, v in seconds.items()}
    parts["rest"] = step["minirnn"] - sum(parts.values())
    print(f"GPT {RECIPE['num_layers']}x{RECIPE['embedding_dim']}, {RECIPE['num_heads']} heads, "
          f"batch {RECIPE['batch_size']}x{RECIPE['block_size']}; {n} steps each, "
          f"{args.threads} thread(s)\n")
    print(f"{'part':14s} {'ms/step':>8s} {'share':>6s}")
    for k, v in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"{k:14s} {v:8.2f} {v / step['minirnn']:6.1%}")
    print(f"\nminirnn step {step['minirnn']:.2f} ms, torch step {step['torch']:.2f} ms: "
          f"minirnn's steps/s are {step['torch'] / step['minirnn']:.2f}x torch's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
