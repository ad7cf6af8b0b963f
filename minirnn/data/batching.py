"""Batches for stateful truncated backpropagation through time.

The token stream is cut into N contiguous parallel streams, one per batch row, and
each pass walks all of them T tokens at a time. Row k of batch i+1 continues exactly
where row k of batch i stopped, so the trainer carries the hidden state from one
batch to the next (detached) and the model sees each stream as one long text::

    ids:      [ stream 0 (L tokens) | stream 1 | ... | stream N-1 | dropped rest < N ]
    batch i:  x = streams[:, i*T : (i+1)*T],  y = streams[:, i*T+1 : (i+1)*T+1]

Each stream of L tokens gives L - 1 (input, target) pairs; the last batch of a pass
holds what is left of them and may be shorter than T (``drop_last=True`` drops it so
every batch is exactly (N, T)). A batch never has zero length.
"""

from __future__ import annotations

import operator

# The data layer builds host arrays by design; the trainer moves them to the device.
import numpy as np

__all__ = ["StreamBatcher", "shrink_to_fit"]


def _token_stream(owner, ids):
    """``ids`` as a 1-D integer host array, or a message naming ``owner``."""
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"{owner}: ids must be 1-D (one token stream), got shape {ids.shape}")
    if ids.size and (ids.dtype == np.bool_ or not np.issubdtype(ids.dtype, np.integer)):
        raise TypeError(f"{owner}: ids must be integers, got dtype {ids.dtype}")
    return ids


def _positive_int(owner, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{owner}: {name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{owner}: {name} must be at least 1, got {value}")
    return int(value)


class StreamBatcher:
    """(x, y) batches of shape (N, T) from one token stream, y = x shifted by one token.

    Inputs:
      ids: (n,) integer token ids (a host array or list);
      batch_size: N, the number of parallel streams;
      seq_len: T, the tokens per batch and stream (the truncation length of BPTT);
      drop_last: drop a final batch shorter than T (default: keep it).
    ``len(b)`` is the number of batches per pass; iterating makes one pass;
    ``b.batch(i)`` gives batch i directly (to resume mid-epoch).
    """

    def __init__(self, ids, batch_size, seq_len, drop_last=False):
        owner = "StreamBatcher"
        N = _positive_int(owner, "batch_size", batch_size)
        T = _positive_int(owner, "seq_len", seq_len)
        ids = _token_stream(owner, ids)
        n = ids.size
        L = n // N
        need_per_stream = T + 1 if drop_last else 2
        if L < need_per_stream:
            need = N * need_per_stream
            if drop_last:
                what = f"seq_len + 1 = {need_per_stream} per stream, as drop_last=True"
                fix = "a smaller batch_size or seq_len"
            else:
                what = "2 per stream: one input and its target"
                fix = f"batch_size at most {n // 2}" if n >= 2 else "at least 2 tokens"
            raise ValueError(
                f"{owner}: the corpus has {n} tokens, too few for batch_size={N} and "
                f"seq_len={T}: one batch needs at least {need} tokens ({what}). "
                f"Use {fix}, a longer corpus, or "
                f"minirnn.data.shrink_to_fit({n}, {N}, {T})."
            )
        self.batch_size, self.seq_len, self.drop_last = N, T, bool(drop_last)
        self.stream_len = L
        # A copy, so later changes to ids cannot shift a run that is under way.
        self._streams = ids[: N * L].copy().reshape(N, L)  # (N, L), row k = ids[k*L:(k+1)*L]
        pairs = L - 1  # (input, target) positions per stream
        self._n_batches = pairs // T if drop_last else -(-pairs // T)

    def __len__(self):
        return self._n_batches

    @property
    def tokens_per_pass(self):
        """Number of target tokens one pass trains on (per stream times streams)."""
        T, L = self.seq_len, self.stream_len
        return self.batch_size * min(self._n_batches * T, L - 1)

    def batch(self, i):
        """Batch ``i`` as (x, y): two C-contiguous (N, T_i) arrays, T_i <= seq_len."""
        i = operator.index(i)
        if not 0 <= i < self._n_batches:
            raise IndexError(
                f"StreamBatcher.batch: index {i} out of range for {self._n_batches} batches"
            )
        T, L = self.seq_len, self.stream_len
        start, stop = i * T, min((i + 1) * T, L - 1)
        x = np.ascontiguousarray(self._streams[:, start:stop])  # (N, T_i)
        y = np.ascontiguousarray(self._streams[:, start + 1 : stop + 1])  # (N, T_i)
        return x, y

    def __iter__(self):
        for i in range(self._n_batches):
            yield self.batch(i)

    def __repr__(self):
        return (
            f"StreamBatcher(batch_size={self.batch_size}, seq_len={self.seq_len}, "
            f"stream_len={self.stream_len}, batches={self._n_batches})"
        )


def shrink_to_fit(n_tokens, batch_size, seq_len, what="the corpus"):
    """Smaller (batch_size, seq_len) so that a stream of ``n_tokens`` holds one full batch.

    Keeps ``seq_len`` (the context the model learns over) and lowers ``batch_size``
    first, so that each of the N streams has seq_len + 1 tokens; only when one stream
    cannot hold that does ``seq_len`` drop to ``n_tokens - 1``. The result gives at
    least one batch of exactly (N, T) in ``StreamBatcher``, with or without drop_last.

    ``what`` names the token stream in the messages ("the training split"...).

    Returns:
      (batch_size, seq_len, message): message is None when nothing changed, else a
      sentence for the user saying what changed and why, with the numbers.
    """
    owner = "shrink_to_fit"
    n = operator.index(n_tokens)
    N = _positive_int(owner, "batch_size", batch_size)
    T = _positive_int(owner, "seq_len", seq_len)
    if n < 2:
        raise ValueError(
            f"{owner}: {what} has {n} tokens; training needs at least 2 "
            f"(one input and its target)"
        )
    new_T = min(T, n - 1)
    new_N = max(1, min(N, n // (new_T + 1)))
    if (new_N, new_T) == (N, T):
        return N, T, None
    changes = []
    if new_N != N:
        changes.append(f"batch_size {N} -> {new_N}")
    if new_T != T:
        changes.append(f"seq_len {T} -> {new_T}")
    message = (
        f"{what} has only {n} tokens, too few for batch_size={N} x seq_len={T} "
        f"(a full batch needs {N} x {T + 1} = {N * (T + 1):,}); "
        f"using {' and '.join(changes)} so that one batch fits"
    )
    return new_N, new_T, message
