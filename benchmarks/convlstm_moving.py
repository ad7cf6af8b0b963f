#!/usr/bin/env python
"""Conv-LSTM next-frame prediction on moving squares: held-out BCE and frames/s.

Trains ``NextFrameModel`` (F=16, k=3, one layer) for at most ``--budget`` seconds of
training on this machine, then prints the held-out per-pixel BCE of the model and of the
copy-last-frame baseline (both with probabilities clipped to [0.01, 0.99], 1,000 fixed
held-out sequences) and the relative reduction, draws one held-out sequence into
``docs/convlstm_prediction.png``, and times forward+backward of a ConvLSTM layer at
N=16, T=10, C=1, F=16, 16x16, k=3 (median of 5; frames = N*T).

    python benchmarks/convlstm_moving.py                 # 600 s of training
    python benchmarks/convlstm_moving.py --budget 300

Target: the model's held-out BCE at least 30% below the baseline's.

BLAS runs on one thread (``--threads``, set before NumPy loads): the per-step products
(4096 x 144 times 144 x 64) are too small for a second OpenBLAS thread to pay for its
synchronisation; on the 2-core CPU forward+backward ran 1953 frames/s on one thread,
513 with the default two (and 287 with OPENBLAS_NUM_THREADS=2 set explicitly).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def frames_per_second(repeats=5, N=16, T=10, C=1, F=16, size=16, k=3):
    import numpy as np

    from minirnn.nn import ConvLSTM
    layer = ConvLSTM(C, F, k)
    x = np.random.default_rng(0).random((N, T, C, size, size), dtype=np.float32)
    dhs = np.ones((N, T, F, size, size), np.float32)
    layer.forward(x)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        layer.forward(x)
        layer.backward(dhs)
        times.append(time.perf_counter() - t0)
    return N * T / float(np.median(times))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=600.0, help="seconds of training (<= 600)")
    p.add_argument("--threads", default="1", help="BLAS threads (OPENBLAS_NUM_THREADS)")
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "convlstm"))
    p.add_argument("--figure", default=str(ROOT / "docs" / "convlstm_prediction.png"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not 0 < args.budget <= 600:
        p.error(f"--budget must be in (0, 600] seconds, got {args.budget}")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", args.threads)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))

    from minirnn.data.moving import held_out_set
    from minirnn.training import ConvLSTMConfig, predict_probs, train
    from minirnn.viz import plot_prediction

    fps = frames_per_second()
    cfg = ConvLSTMConfig(time_budget=args.budget, eval_every=args.eval_every, seed=args.seed,
                         out=args.out, progress=False)
    result = train(cfg)
    test_in, test_out = held_out_set()
    plot_prediction(test_in[0], test_out[0], predict_probs(result.model, test_in[:1])[0],
                    args.figure)
    bce, base = result.val["val_bce"], result.val["baseline_bce"]
    print(json.dumps({
        "steps": result.step, "train_seconds": round(result.train_time, 1),
        "heldout_bce_model": round(bce, 4), "heldout_bce_copy_last_frame": round(base, 4),
        "relative_reduction": round(1 - bce / base, 4), "target_reduction": 0.30,
        "fwd_bwd_frames_per_s": round(fps, 1),
        "threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "figure": str(args.figure),
    }, indent=2))


if __name__ == "__main__":
    main()
