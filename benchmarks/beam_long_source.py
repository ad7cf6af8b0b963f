#!/usr/bin/env python
"""Beam search on a long source: what the early stop saves.

Decodes one 10,000-character source (a date written over and over) with a seq2seq
checkpoint, and times greedy decoding, beam search with ``translate``'s stop rule
(``stop="likely"``: as soon as every source has K finished outputs and no live beam is
doing as well), with the exact rule (``stop="certain"``), and searched to the end of
its ``2·S + 10`` steps (no early stop: what beam search did before the rule).

    minirnn seq2seq train --task dates --time-budget 60 --out runs/dates
    python benchmarks/beam_long_source.py runs/dates/checkpoint.npz

Prints one line per setting: seconds, steps searched and the start of the output.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from minirnn import backend  # noqa: E402
from minirnn.generate import beam_search, translate  # noqa: E402
from minirnn.generate.translate import encode_sources  # noqa: E402
from minirnn.training import load_seq2seq  # noqa: E402


def search(model, vocab, source, width, stop):
    """Beam search as ``translate`` runs it, with the given stop rule (None: to the end);
    returns (output, steps the search ran)."""
    src, mask = encode_sources(vocab, [source])
    max_len = 2 * src.shape[1] + 10
    keys, _ = model.encode(src, mask)
    state = model.initial_state(keys, mask)
    steps = [0]

    def step(ids, st):
        steps[0] += 1
        return model.step(ids, st)

    start = np.full(1, vocab.sos_id, dtype=np.int32)
    kwargs = {"stop": stop} if stop else {}
    beams = beam_search(step, state, backend.asarray(start), width, max_len,
                        eos_id=vocab.eos_id if stop else None, **kwargs)
    ids = np.asarray(beams[0][0][0])
    if not stop:  # searched to the end: cut the output at its first <eos>
        ends = np.flatnonzero(ids == vocab.eos_id)
        ids = ids[:ends[0]] if ends.size else ids
    return vocab.decode(ids), steps[0]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a seq2seq checkpoint (minirnn seq2seq train)")
    p.add_argument("--length", type=int, default=10_000, help="characters of the source")
    p.add_argument("--beam-width", type=int, default=4)
    args = p.parse_args(argv)
    model, vocab, _ = load_seq2seq(args.checkpoint)
    model.eval()
    source = ("tue 3 march 2020, " * (args.length // 18 + 1))[:args.length]
    with backend.blas_threads(1):
        t0 = time.perf_counter()
        out = translate(model, vocab, [source])[0]
        print(f"greedy                   {time.perf_counter() - t0:7.2f} s  {out[:20]!r}")
        for stop in ("likely", "certain", None):
            t0 = time.perf_counter()
            out, steps = search(model, vocab, source, args.beam_width, stop)
            name = f"beam {args.beam_width}, stop={stop}" if stop else \
                f"beam {args.beam_width}, to the end"
            print(f"{name:24s} {time.perf_counter() - t0:7.2f} s  {steps:6,} steps  "
                  f"{out[:20]!r}")


if __name__ == "__main__":
    main()
