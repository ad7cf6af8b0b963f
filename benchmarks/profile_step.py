#!/usr/bin/env python
"""One training step of the README's char model, split into its parts, minirnn and PyTorch.

The README's configuration: a 2-layer LSTM of 512 units over a 64-wide embedding, a
batch of 64 streams of 64 characters (vocabulary 65), softmax cross-entropy, global
gradient-norm clipping at 5, Adam. Both libraries run the same step, in this one
process, on the same random batch, with the same number of BLAS/intra-op threads, and
each part's share of the step is reported:

    embedding        lookup, and its gradient
    lstm             the two layers' forward and backward through time
    output layer     the affine map to the logits, and its gradient
    loss             softmax cross-entropy and dL/dlogits
    clip             the global gradient norm and the scaling
    optimizer        Adam's update
    rest             everything else in the step (zeroing, Python, moving arrays)

minirnn's parts are timed by wrapping the functions the step calls (``F.*`` and the
cell table's LSTM functions, the clip, the update). PyTorch's parts come from
``torch.profiler``: the self time of each op, sorted into the same parts by the op's
name, scaled so the parts add up to the step time measured around the profiled steps.

Last, a floor: every matrix product of minirnn's step, each timed by itself on arrays of
the shapes and layouts the step uses. Their sum is the least time NumPy's BLAS needs
for the step even if every elementwise operation were free, so PyTorch's step time
divided by it bounds how close minirnn can come.

    python benchmarks/profile_step.py                  # 3 warm-up + 10 profiled steps each
    python benchmarks/profile_step.py --threads 1 --json step.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from minirnn import backend, optim  # noqa: E402
from minirnn import functional as F  # noqa: E402
from minirnn.functional import cells  # noqa: E402

V, E, H, L, N, T = 65, 64, 512, 2, 64, 64
PARTS = ("embedding", "lstm", "output layer", "loss", "clip", "optimizer", "rest")


def _timed(fn, part, spent):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[part] += time.perf_counter() - t0
    return wrapper


def profile_minirnn(ids, targets, steps, warmup):
    """Seconds per step of each part of minirnn's step, and the step time."""
    from minirnn.nn import CharRNN

    spent = defaultdict(float)
    lstm = cells.CELLS["lstm"]
    wrapped = {"embedding_forward": "embedding", "embedding_backward": "embedding",
               "affine_forward": "output layer", "affine_backward": "output layer",
               "softmax_cross_entropy": "loss"}
    saved = {name: getattr(F, name) for name in wrapped}
    try:
        for name, part in wrapped.items():
            setattr(F, name, _timed(saved[name], part, spent))
        cells.CELLS["lstm"] = dataclasses.replace(
            lstm, forward=_timed(lstm.forward, "lstm", spent),
            backward=_timed(lstm.backward, "lstm", spent))
        model = CharRNN(V, H, L, "lstm", E, 0.0, seed=0).flatten()
    finally:
        cells.CELLS["lstm"] = lstm
    try:
        opt = optim.Adam(model.params, model.grads, lr=2e-3, flat=model.flat)
        clip = _timed(optim.clip_grad_norm, "clip", spent)
        update = _timed(opt.step, "optimizer", spent)
        batch = {"ids": ids, "targets": targets, "state": None}

        def step():
            model.zero_grad()
            loss, dlogits = model.loss(batch)
            model.backward(dlogits)
            clip(model.gradient_arrays(), 5.0)
            update()

        for _ in range(warmup):
            step()
        spent.clear()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        total = (time.perf_counter() - t0) / steps
    finally:
        for name, fn in saved.items():
            setattr(F, name, fn)
    parts = {p: spent[p] / steps for p in PARTS if p != "rest"}
    parts["rest"] = total - sum(parts.values())
    return parts, total


def _torch_part(name):
    """The part of the step a PyTorch op (or autograd node) belongs to, by its name."""
    n = name.lower()
    rules = (("embedding", "embedding"), ("lstm", "lstm"), ("rnn", "lstm"),
             ("addmm", "output layer"), ("linear", "output layer"),
             ("log_softmax", "loss"), ("nll_loss", "loss"), ("cross_entropy", "loss"),
             ("norm", "clip"), ("clip", "clip"), ("adam", "optimizer"),
             ("optimizer", "optimizer"), ("_foreach", "optimizer"))
    for key, part in rules:
        if key in n:
            return part
    return "rest"


def profile_torch(ids, targets, steps, warmup):
    """The same step in PyTorch: seconds per step of each part, the step time, and the
    time of the forward pass alone under ``no_grad`` (what validation runs per batch)."""
    import torch
    from torch import nn
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    embed, lstm = nn.Embedding(V, E), nn.LSTM(E, H, num_layers=L, batch_first=True)
    head = nn.Linear(H, V)
    params = [*embed.parameters(), *lstm.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=2e-3)
    x, y = torch.from_numpy(ids).long(), torch.from_numpy(targets).long().reshape(-1)

    def step():
        hs, _ = lstm(embed(x))
        loss = nn.functional.cross_entropy(head(hs).reshape(-1, V), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()

    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    total = (time.perf_counter() - t0) / steps
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    spent = defaultdict(float)
    for event in prof.key_averages():
        spent[_torch_part(event.key)] += event.self_cpu_time_total
    scale = total / (sum(spent.values()) / 1e6 / steps)  # the profiler's own overhead out
    with torch.no_grad():
        head(lstm(embed(x))[0])
        t0 = time.perf_counter()
        for _ in range(steps):
            head(lstm(embed(x))[0])
        forward = (time.perf_counter() - t0) / steps
    return {p: spent[p] / 1e6 / steps * scale for p in PARTS}, total, forward


def step_products():
    """Every matrix product of minirnn's step, as ``lstm_forward``/``lstm_backward`` and
    the output layer make them: (name, A's shape, B's shape, times per step, whether the
    forward pass makes it, as validation does). A shape
    written ``("T", m, k)`` is a transposed view of a contiguous (k, m) array, as the
    step multiplies it."""
    products = []
    for layer, D in enumerate((E,) + (H,) * (L - 1)):
        name = f"layer {layer + 1}: "
        products += [
            (name + "inputs x Wx", (T * N, D), (D, 4 * H), 1, True),
            (name + "h Wh, every step", (N, H), (H, 4 * H), T, True),
            (name + "da Wh.T, every step", (N, 4 * H), (4 * H, H), T, False),
            (name + "dWh = hs.T da", ("T", H, (T - 1) * N), ((T - 1) * N, 4 * H), 1, False),
            (name + "dWh += h0.T da_0", ("T", H, N), (N, 4 * H), 1, False),
            (name + "dWx = x.T da", ("T", D, T * N), (T * N, 4 * H), 1, False),
            (name + "dx = da Wx.T", (T * N, 4 * H), ("T", 4 * H, D), 1, False)]
    return products + [("output: hs Wy", (T * N, H), (H, V), 1, True),
                       ("output: dWy = hs.T dlogits", ("T", H, T * N), (T * N, V), 1, False),
                       ("output: dhs = dlogits Wy.T", (T * N, V), ("T", V, H), 1, False)]


def products_alone(forward_only=False, repeats=15):
    """Seconds and GFLOP of one step's matrix products (or its forward pass's), each
    timed alone (median)."""
    rng = np.random.default_rng(0)

    def operand(shape):
        if shape[0] == "T":
            return rng.standard_normal(shape[:0:-1], dtype=np.float32).T
        return rng.standard_normal(shape, dtype=np.float32)

    seconds = flop = 0.0
    for _name, a_shape, b_shape, times, forward in step_products():
        if forward_only and not forward:
            continue
        a, b = operand(a_shape), operand(b_shape)
        out = np.empty((a.shape[0], b.shape[1]), dtype=np.float32)
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(times):
                np.matmul(a, b, out=out)
            runs.append(time.perf_counter() - t0)
        seconds += sorted(runs)[repeats // 2]
        flop += 2.0 * a.shape[0] * a.shape[1] * b.shape[1] * times
    return seconds, flop / 1e9


def table(rows):
    """rows: {library: (parts, total)} -> the text of the report."""
    libs = list(rows)
    head = f"{'part':14s}" + "".join(f"{lib + ' ms':>14s}{'share':>8s}" for lib in libs)
    lines = [head, "-" * len(head)]
    for part in PARTS:
        line = f"{part:14s}"
        for lib in libs:
            parts, total = rows[lib]
            line += f"{parts[part] * 1e3:14.1f}{parts[part] / total:8.0%}"
        lines.append(line)
    line = f"{'step':14s}" + "".join(f"{rows[lib][1] * 1e3:14.1f}{'':8s}" for lib in libs)
    lines.append(line)
    if len(libs) == 2:
        a, b = (rows[lib][1] for lib in libs)
        lines.append(f"steps per second, {libs[0]} / {libs[1]}: {b / a:.3f}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=10, help="profiled steps (default 10)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS and torch threads (default: as many as the process may use)")
    ap.add_argument("--no-torch", action="store_true", help="profile minirnn only")
    ap.add_argument("--json", metavar="PATH", help="also write the figures here")
    args = ap.parse_args(argv)
    backend.reuse_freed_memory()
    rng = np.random.default_rng(0)
    ids, targets = rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))
    threads = args.threads or len(__import__("os").sched_getaffinity(0))
    rows = {}
    with backend.blas_threads(threads):
        rows["minirnn"] = profile_minirnn(ids, targets, args.steps, args.warmup)
        if not args.no_torch:
            import torch
            torch.set_num_threads(threads)
            parts, total, torch_forward = profile_torch(ids, targets, args.steps, args.warmup)
            rows["torch"] = parts, total
        floor_s, gflop = products_alone()
        forward_s, forward_gflop = products_alone(forward_only=True)
    print(f"one training step: LSTM {L}x{H}, embedding {E}, batch {N}x{T}, V={V}, Adam, "
          f"clip 5; {threads} thread(s), mean of {args.steps} steps")
    print(table(rows))
    print(f"minirnn's matrix products alone: {floor_s * 1e3:.1f} ms a step ({gflop:.1f} GFLOP "
          f"at {gflop / floor_s:.0f} GFLOP/s)")
    if "torch" in rows:
        print(f"torch's whole step / minirnn's products alone: {rows['torch'][1] / floor_s:.3f} "
              f"(the most minirnn's steps per second can be of torch's, every other part free)")
    print(f"the forward pass's products alone (validation's work per batch): {forward_s * 1e3:.1f} "
          f"ms ({forward_gflop:.1f} GFLOP at {forward_gflop / forward_s:.0f} GFLOP/s)")
    if "torch" in rows:
        print(f"torch's no_grad forward: {torch_forward * 1e3:.1f} ms; / minirnn's forward "
              f"products alone: {torch_forward / forward_s:.3f}")
    if args.json:
        figures = {lib: {"parts_s": parts, "step_s": total} for lib, (parts, total) in rows.items()}
        figures["products_alone"] = {"step_s": floor_s, "gflop": gflop, "forward_s": forward_s,
                                     "forward_gflop": forward_gflop}
        if "torch" in rows:
            figures["torch"]["no_grad_forward_s"] = torch_forward
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
