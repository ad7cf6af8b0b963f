"""Decoding source strings with a trained Seq2Seq model, and where it looked.

    model, vocab, meta = load_seq2seq("runs/dates/checkpoint.npz")
    translate(model, vocab, ["tue 3 march 2020"], beam_width=4)   # ["2020-03-03"]
    attention_weights(model, vocab, "tue 3 march 2020", "2020-03-03")  # (T, S)
"""

from __future__ import annotations

import numpy as np

from .. import backend
from .search import beam_search, greedy_decode

__all__ = ["translate", "attention_weights"]


def encode_sources(vocab, sources):
    """Source strings -> padded ids (N, S) and their mask, on the backend."""
    rows = [vocab.encode(s) for s in sources]  # names unknown characters
    S = max(len(r) for r in rows)
    src = np.full((len(rows), S), vocab.pad_id, dtype=np.int32)
    mask = np.zeros((len(rows), S), dtype=bool)
    for n, r in enumerate(rows):
        src[n, :len(r)], mask[n, :len(r)] = r, True
    return backend.asarray(src), backend.asarray(mask)


def translate(model, vocab, sources, beam_width=1, max_len=None, length_norm=1.0):
    """Decode each source string; greedy for beam_width 1, else beam search. -> strings.

    ``max_len`` (default ``2 * S + 10`` for the longest source S) bounds every output.
    Beam search stops as soon as no live beam is doing as well as the K outputs already
    ended (``stop="likely"``), so a long source costs steps for its outputs, not for
    its length.
    """
    if isinstance(sources, str):
        raise TypeError("translate: sources must be a list of strings, got one str")
    sources = list(sources)
    if not sources:
        return []
    for s in sources:
        if not isinstance(s, str) or not s:
            raise ValueError(f"translate: every source must be a non-empty string, got {s!r}")
    src, mask = encode_sources(vocab, sources)
    max_len = max_len or 2 * src.shape[1] + 10
    model.eval()
    keys, _ = model.encode(src, mask)
    state = model.initial_state(keys, mask)
    xp = backend.get_array_module(src)
    start = xp.full(len(sources), vocab.sos_id, dtype=src.dtype)
    if beam_width == 1:
        ids, _ = greedy_decode(model.step, state, start, max_len, eos_id=vocab.eos_id)
        return [vocab.decode(row) for row in ids]
    beams = beam_search(model.step, state, start, beam_width, max_len,
                        eos_id=vocab.eos_id, length_norm=length_norm, stop="likely")
    return [vocab.decode(np.asarray(hyps[0][0])) for hyps in beams]


def attention_weights(model, vocab, source, target):
    """The attention weights (T, S) of producing ``target`` + <eos> from ``source``, one
    row per output step (an empty ``target`` gives the one row of the <eos> step)."""
    src, mask = encode_sources(vocab, [source])
    ids = np.asarray(vocab.encode(target), dtype=np.int32) if target else \
        np.zeros(0, dtype=np.int32)
    tgt_in = np.concatenate([[vocab.sos_id], ids]).astype(np.int32)[None]   # (1, T)
    tgt_out = np.concatenate([ids, [vocab.eos_id]]).astype(np.int32)[None]  # (1, T)
    batch = {"src": src, "src_mask": mask, "tgt_in": backend.asarray(tgt_in),
             "tgt_out": backend.asarray(tgt_out),
             "tgt_mask": backend.asarray(np.ones(tgt_out.shape, dtype=bool))}
    model.loss(batch)
    return backend.to_numpy(model.last_weights[0])
