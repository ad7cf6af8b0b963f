"""Moving squares: a next-frame prediction task generated in code (docs/convlstm.md).

Each sequence shows one or two white squares (side 3 or 4) on a black ``size x size``
frame, each moving with its own integer velocity ``(vy, vx)``, both in {-1, 0, 1} and not
both 0, bouncing off the walls. The first ``n_in`` frames are the input; the next
``n_out`` the target. One pixel per frame at most, so a 3x3 kernel can follow a square.

    inputs, targets = moving_squares(64, seed=0)      # (64, 10, 1, 16, 16), (64, 5, 1, 16, 16)
    test_in, test_out = held_out_set()                # always the same 1,000 sequences
    copy_last_frame_bce(test_in, test_out)            # the baseline to beat

Scores are per-pixel binary cross-entropies with the predicted probabilities clipped to
``[EPS, 1 - EPS]``, ``EPS = 0.01`` (``clipped_bce``): the baseline's probabilities are
exactly 0 or 1 and would score infinity on every pixel it gets wrong, so the same clip is
applied to the baseline and to the model alike. Host NumPy arrays, float32, values 0 or 1.
"""

from __future__ import annotations

import numpy as np

EPS = 0.01             # probabilities are clipped to [EPS, 1 - EPS] when scoring
HELD_OUT_SEED = 12345  # the fixed held-out set: moving_squares(1000, seed=HELD_OUT_SEED)
HELD_OUT_N = 1000


def moving_squares(n, seed, size=16, n_in=10, n_out=5, max_squares=2):
    """``n`` sequences of bouncing squares, the same for the same arguments.

    Inputs:
      n: number of sequences; seed: int (or a sequence of ints) for numpy's default_rng;
      size: frame side; n_in, n_out: input and target frames; max_squares: 1 or more.
    Returns:
      inputs (n, n_in, 1, size, size), targets (n, n_out, 1, size, size), float32 in {0, 1}.
    """
    for name, v, least in (("n", n, 1), ("size", size, 5), ("n_in", n_in, 1),
                           ("n_out", n_out, 1), ("max_squares", max_squares, 1)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < least:
            raise ValueError(f"moving_squares: {name} must be an int >= {least}, got {v!r}")
    rng = np.random.default_rng(seed)
    T = n_in + n_out
    frames = np.zeros((n, T, size, size), dtype=bool)
    count = rng.integers(1, max_squares + 1, n)            # squares in each sequence
    grid = np.arange(size)
    for s in range(max_squares):
        side = rng.integers(3, 5, n)                       # 3 or 4
        hi = size - side                                   # largest top-left coordinate
        pos = np.stack([rng.integers(0, hi + 1), rng.integers(0, hi + 1)], axis=1)  # (n, 2)
        vel = rng.integers(-1, 2, (n, 2))
        still = (vel == 0).all(axis=1)
        vel[still, rng.integers(0, 2, still.sum())] = rng.choice([-1, 1], still.sum())
        shown = count > s
        for t in range(T):
            rows = (grid >= pos[:, :1]) & (grid < pos[:, :1] + side[:, None])  # (n, size)
            cols = (grid >= pos[:, 1:]) & (grid < pos[:, 1:] + side[:, None])
            frames[shown, t] |= (rows[:, :, None] & cols[:, None, :])[shown]
            pos = pos + vel
            # bounce: reflect a coordinate that left [0, hi] and turn its velocity round
            low, high = pos < 0, pos > hi[:, None]
            pos = np.where(low, -pos, np.where(high, 2 * hi[:, None] - pos, pos))
            vel = np.where(low | high, -vel, vel)
    frames = frames[:, :, None].astype(np.float32)          # (n, T, 1, size, size)
    return frames[:, :n_in].copy(), frames[:, n_in:].copy()


def held_out_set(n=HELD_OUT_N):
    """The first ``n`` of the fixed 1,000 held-out sequences, ``moving_squares(1000, 12345)``."""
    if not 1 <= n <= HELD_OUT_N:
        raise ValueError(f"held_out_set: n must be in [1, {HELD_OUT_N}], got {n!r}")
    inputs, targets = moving_squares(HELD_OUT_N, seed=HELD_OUT_SEED)
    return inputs[:n], targets[:n]


def clipped_bce(probs, targets, eps=EPS):
    """Mean per-pixel BCE of probabilities clipped to ``[eps, 1 - eps]``, in float64."""
    probs, targets = np.asarray(probs, np.float64), np.asarray(targets, np.float64)
    if probs.shape != targets.shape:
        raise ValueError(f"clipped_bce: probs must have the shape of targets "
                         f"{targets.shape}, got {probs.shape}")
    if not 0 < eps < 0.5:
        raise ValueError(f"clipped_bce: eps must be in (0, 0.5), got {eps!r}")
    p = np.clip(probs, eps, 1 - eps)
    return float(-(targets * np.log(p) + (1 - targets) * np.log1p(-p)).mean())


def copy_last_frame_bce(inputs, targets, eps=EPS):
    """The baseline: predict every future frame as the last input frame, scored by
    ``clipped_bce`` (the rule the model is scored by). inputs (N, T_in, ...), targets (N, T_out, ...)."""
    inputs = np.asarray(inputs)
    last = np.broadcast_to(inputs[:, -1:], np.shape(targets))
    return clipped_bce(last, targets, eps)
