"""Random windows of a token stream: the batches a transformer trains on.

A transformer carries no state from one batch to the next, so it does not need the
parallel streams of ``StreamBatcher``: each row of a batch is a window of T tokens
starting anywhere in the stream, and its targets are the same window shifted by one::

    ids:      [ ........ | window at s_k (T tokens) | . ]
    row k:    x = ids[s_k : s_k + T],  y = ids[s_k + 1 : s_k + T + 1]

The starts of batch ``i`` are drawn from a generator seeded with ``(seed, i)``, so a
batch is a function of the seed and the step alone: a resumed run reads exactly the
batches an uninterrupted one would, with nothing to save.
"""

from __future__ import annotations

import operator

# The data layer builds host arrays by design; the trainer moves them to the device.
import numpy as np

from .batching import _positive_int, _token_stream

__all__ = ["WindowBatcher"]


class WindowBatcher:
    """(x, y) batches of N random windows of T tokens, y = x shifted by one token.

    Inputs:
      ids: (n,) integer token ids, n >= T + 1;
      batch_size: N, windows per batch; seq_len: T, tokens per window;
      seed: int >= 0; batch ``i`` depends only on ``(seed, i)``.
    ``b.batch(i)`` gives batch i as two C-contiguous (N, T) int arrays.
    """

    def __init__(self, ids, batch_size, seq_len, seed=0):
        owner = "WindowBatcher"
        N = _positive_int(owner, "batch_size", batch_size)
        T = _positive_int(owner, "seq_len", seq_len)
        ids = _token_stream(owner, ids)
        if ids.size < T + 1:
            raise ValueError(f"{owner}: the corpus has {ids.size} tokens, too few for windows "
                             f"of seq_len={T}: one window needs {T + 1} (its inputs and the "
                             f"target after the last)")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"{owner}: seed must be an int >= 0, got {seed!r}")
        self.batch_size, self.seq_len, self.seed = N, T, int(seed)
        self._ids = ids.copy()  # a run under way cannot be shifted by later changes to ids
        self._offsets = np.arange(T)  # (T,)

    @property
    def starts(self):
        """How many different windows there are: every start 0 .. n - T - 1."""
        return self._ids.size - self.seq_len

    def batch(self, i):
        """Batch ``i`` (any int >= 0) as (x, y), two (N, T) arrays."""
        i = operator.index(i)
        if i < 0:
            raise IndexError(f"WindowBatcher.batch: index must be >= 0, got {i}")
        rng = np.random.default_rng([self.seed, i])
        start = rng.integers(0, self.starts, size=self.batch_size)  # (N,)
        where = start[:, None] + self._offsets                        # (N, T)
        return self._ids[where], self._ids[where + 1]

    def __repr__(self):
        return (f"WindowBatcher(batch_size={self.batch_size}, seq_len={self.seq_len}, "
                f"seed={self.seed}, tokens={self._ids.size})")
