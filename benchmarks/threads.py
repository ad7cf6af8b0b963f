#!/usr/bin/env python
"""How many BLAS threads each job should use: every job at 1 thread, at every core and at
its default, on an idle machine and beside a busy process.

Jobs (each at its CLI defaults unless said):

    charlm      training steps of the README's model (2x512 LSTM, embedding 64, batch 64x64)
    seq2seq     training steps of ``minirnn seq2seq train --task dates``
    convlstm    training steps of ``minirnn convlstm train``
    sample      characters per second of ``minirnn sample`` (batch 1) from the README's model

"Busy" runs one ``python -c "while True: pass"`` beside the job (what a laptop doing
something else looks like to it). A training job's rate is steps per second of training
time over ``--seconds`` of training, measured by the loop itself (so its default, which
chooses its threads as it goes, pays for its probing here). With ``--repeats`` the three
settings take turns that many times and each keeps its best rate, so a passing slowdown of
the machine does not decide the comparison. The report gives, per job and condition, the
rate at each setting, how far the default is from the best and, for training, the share
of the default's steps that ran on every core.

    python benchmarks/threads.py                      # every job, 60 s per measurement
    python benchmarks/threads.py --jobs charlm sample --seconds 30 --json threads.json
    python benchmarks/threads.py --seconds 45 --repeats 2 --json threads.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from minirnn import backend  # noqa: E402

JOBS = ("charlm", "seq2seq", "convlstm", "sample")
README_MODEL = dict(cell="lstm", hidden_size=512, num_layers=2, embedding_dim=64,
                    batch_size=64, seq_len=64)


def training_rate(job, threads, seconds):
    """Steps per second of training time of ``job`` run by the loop, ``threads`` fixed
    (None: the job's default, chosen as it goes), and the share of its steps that ran on
    every core (from the loop's ``metrics.jsonl``)."""
    from minirnn.training import ConvLSTMConfig, Seq2SeqConfig, TrainConfig, train
    with tempfile.TemporaryDirectory() as out:
        common = dict(time_budget=seconds, eval_every=10**9, save_every=10**9, threads=threads,
                      progress=False, out=out)
        if job == "charlm":
            cfg = TrainConfig(sample_length=0, eval_batches=1, **README_MODEL, **common)
        elif job == "seq2seq":
            cfg = Seq2SeqConfig(task="dates", n_test=100, **common)
        else:
            cfg = ConvLSTMConfig(n_test=16, **common)
        result = train(cfg, log=lambda *_: None)
        used = [json.loads(line)["threads"] for line in open(Path(out) / "metrics.jsonl")
                if '"loss"' in line]
    return result.step / result.train_time, used.count(backend.cores()) / max(1, len(used))


def sampling_rate(threads, seconds):
    """Characters per second of sampling at batch 1 (``threads`` None: sample's default)."""
    from minirnn.data import load_corpus
    from minirnn.generate import sample
    from minirnn.nn import CharRNN
    vocab = load_corpus("tinyshakespeare").vocab
    model = CharRNN(len(vocab), 512, 2, "lstm", 64, seed=0).eval()
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        sample(model, vocab, "ROMEO:", length=5000, seed=done, threads=threads)
        done += 5000
    return done / (time.perf_counter() - t0), None


def measure(job, threads, seconds):
    if job == "sample":
        return sampling_rate(threads, seconds)
    return training_rate(job, threads, seconds)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", nargs="+", choices=JOBS, default=list(JOBS))
    ap.add_argument("--seconds", type=float, default=60.0,
                    help="seconds of work per measurement (default 60: a default that "
                         "probes both counts now and then is judged over a realistic run)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="times each setting is measured, in turns; its best rate counts "
                         "(default 1)")
    ap.add_argument("--json", metavar="PATH", help="also write the figures here")
    args = ap.parse_args(argv)
    backend.reuse_freed_memory()
    cores = backend.cores()
    settings = [("1", 1), (str(cores), cores), ("default", None)]
    rows = {}
    for condition in ("idle", "busy"):
        load = None
        if condition == "busy":
            load = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            for job in args.jobs:
                rates, share = {}, None
                for _ in range(max(1, args.repeats)):
                    for name, n in settings:
                        rate, on_all = measure(job, n, args.seconds)
                        if rate > rates.get(name, 0.0):
                            rates[name] = rate
                            share = on_all if name == "default" else share
                best = max(rates.values())
                rows.setdefault(job, {})[condition] = {
                    **rates, "default_vs_best": rates["default"] / best,
                    "default_steps_on_every_core": share}
                print(f"{job:11s} {condition:5s} " + "  ".join(
                    f"{name}: {rate:9.3f}" for name, rate in rates.items())
                      + f"   default / best = {rates['default'] / best:.2f}"
                      + ("" if share is None else f"   (default's steps on {cores} threads: "
                                                  f"{share:.0%})"), flush=True)
        finally:
            if load is not None:
                load.kill()
    if args.json:
        Path(args.json).write_text(json.dumps({"cores": cores, "jobs": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
