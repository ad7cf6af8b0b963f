"""One training loop serves every task: each gets exact resume, the divergence stop that
keeps the last good checkpoint, a progress bar, metrics, figures and a save on Ctrl-C.

Every test runs on the four tasks (char-LM, GPT, seq2seq, Conv-LSTM) with tiny models, so
the table of "what a task gets from the loop" in docs/architecture.md is checked row by
row and task by task.
"""

import json
import signal

import numpy as np
import pytest

from minirnn import optim
from minirnn.backend import to_numpy
from minirnn.checkpoint import load_checkpoint
from minirnn.training import ConvLSTMConfig, Seq2SeqConfig, TrainConfig, TrainingDiverged, train

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\n"
        "Speak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n")

FIGURES = {"char": ["loss.png"], "gpt": ["loss.png"], "seq2seq": ["loss.png", "attention.png"],
           "convlstm": ["loss.png", "prediction.png"]}


def config(task, out, tmp_path, **over):
    common = dict(out=str(out), progress=False, save_every=1000, seed=3)
    if task in ("char", "gpt"):
        path = tmp_path / "text.txt"
        path.write_text(TEXT, encoding="utf-8")
        cfg = dict(data=str(path), hidden_size=8, num_layers=2, batch_size=2, seq_len=8,
                   dropout=0.2, sample_length=0, steps=12, eval_every=5)
        if task == "gpt":
            cfg.update(model="gpt", embedding_dim=8, num_heads=2)
        return TrainConfig(**{**common, **cfg, **over})
    if task == "seq2seq":
        cfg = dict(task="reverse", n_train=200, n_test=10, hidden_size=8, embedding_dim=4,
                   attention_size=4, batch_size=8, steps=12, eval_every=5)
        return Seq2SeqConfig(**{**common, **cfg, **over})
    cfg = dict(hidden_channels=2, batch_size=2, n_test=4, steps=12, eval_every=5)
    return ConvLSTMConfig(**{**common, **cfg, **over})


def quiet(*_):
    pass


def interrupt_at_call(monkeypatch, n, how):
    """Make the n-th gradient clipping deliver Ctrl-C ("signal": the first, a request to
    stop) or raise KeyboardInterrupt ("raise": a second one, in the middle of a step)."""
    calls, real = {"n": 0}, optim.clip_grad_norm

    def clip(grads, max_norm):
        calls["n"] += 1
        if calls["n"] == n:
            if how == "raise":
                raise KeyboardInterrupt
            signal.raise_signal(signal.SIGINT)
        return real(grads, max_norm)
    monkeypatch.setattr(optim, "clip_grad_norm", clip)
    return real


TASKS = ["char", "gpt", "seq2seq", "convlstm"]


@pytest.mark.parametrize("task", TASKS)
def test_ctrl_c_saves_and_resume_ends_with_the_weights_of_an_uninterrupted_run(
        task, tmp_path, monkeypatch):
    full = train(config(task, tmp_path / "full", tmp_path), log=quiet)
    real = interrupt_at_call(monkeypatch, 5, "signal")
    part = train(config(task, tmp_path / "split", tmp_path), log=quiet)
    assert part.stopped_by == "interrupt" and part.step == 5
    monkeypatch.setattr(optim, "clip_grad_norm", real)
    resumed = train(config(task, tmp_path / "split", tmp_path), resume=True, log=quiet)
    assert resumed.step == 12
    for k, p in full.model.params.items():
        np.testing.assert_array_equal(to_numpy(resumed.model.params[k]), to_numpy(p), err_msg=k)
    records = [json.loads(line) for line in open(tmp_path / "split" / "metrics.jsonl")]
    assert [r["step"] for r in records if "loss" in r] == list(range(1, 13))
    assert [r["step"] for r in records if "val_loss" in r] == [5, 10, 12]


@pytest.mark.parametrize("task", TASKS)
def test_a_second_ctrl_c_mid_step_drops_that_step_and_still_resumes_exactly(
        task, tmp_path, monkeypatch):
    full = train(config(task, tmp_path / "full", tmp_path, steps=8), log=quiet)
    real = interrupt_at_call(monkeypatch, 4, "raise")
    part = train(config(task, tmp_path / "split", tmp_path, steps=8), log=quiet)
    assert part.stopped_by == "interrupt" and part.step == 3
    monkeypatch.setattr(optim, "clip_grad_norm", real)
    resumed = train(config(task, tmp_path / "split", tmp_path, steps=8), resume=True, log=quiet)
    for k, p in full.model.params.items():
        np.testing.assert_array_equal(to_numpy(resumed.model.params[k]), to_numpy(p), err_msg=k)


@pytest.mark.parametrize("task", TASKS)
def test_divergence_stops_the_run_and_leaves_the_last_good_checkpoint(task, tmp_path,
                                                                      monkeypatch):
    out = tmp_path / "r"
    train(config(task, out, tmp_path, steps=3), log=quiet)
    calls, real = {"n": 0}, optim.clip_grad_norm

    def norm_blows_up(grads, max_norm):  # step 6 of the resumed run: an infinite norm
        calls["n"] += 1
        return float("inf") if calls["n"] == 3 else real(grads, max_norm)
    monkeypatch.setattr(optim, "clip_grad_norm", norm_blows_up)
    with pytest.raises(TrainingDiverged, match=r"diverged at step 6: .*checkpoint\.npz "
                                               r"\(step 4\), was left untouched"):
        train(config(task, out, tmp_path, steps=8, save_every=4), resume=True, log=quiet)
    good = (out / "checkpoint.npz").read_bytes()  # the save of step 4, the last good one
    assert load_checkpoint(out / "checkpoint.npz")[1]["step"] == 4
    with pytest.raises(TrainingDiverged, match=r"\(step 4\), was left untouched"):
        train(config(task, out, tmp_path, steps=8, lr=1e9), resume=True, log=quiet)
    assert (out / "checkpoint.npz").read_bytes() == good


@pytest.mark.parametrize("task", TASKS)
def test_metrics_figures_and_a_progress_bar(task, tmp_path, capsys):
    out = tmp_path / "r"
    result = train(config(task, out, tmp_path, steps=6, progress=True), log=quiet)
    err = capsys.readouterr().err
    assert "6/6" in err and "step" in err  # tqdm's bar over the steps, on stderr
    records = [json.loads(line) for line in open(out / "metrics.jsonl")]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]
    assert all(r["grad_norm"] > 0 and r["train_time"] > 0 for r in steps)
    evals = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in evals] == [5, 6] and result.val == {
        k: v for k, v in evals[-1].items() if k not in ("step", "train_time")}
    for name in FIGURES[task]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


@pytest.mark.parametrize("task", TASKS)
def test_without_a_bar_every_line_goes_to_log_and_none_to_stdout(task, tmp_path, capsys):
    lines = []
    train(config(task, tmp_path / "r", tmp_path, steps=6), log=lines.append)
    assert capsys.readouterr().out == ""
    reports = [line for line in lines if line.startswith("step 5:")]
    assert len(reports) == 1, lines  # the evaluation at step 5, through log


@pytest.mark.parametrize("task", TASKS)
def test_resume_continues_metrics_from_the_checkpoint_after_a_kill(task, tmp_path):
    """A run killed after its last save wrote rows past the checkpoint: the resumed run
    drops them, so the curve has each step once."""
    out = tmp_path / "r"
    train(config(task, out, tmp_path, steps=4), log=quiet)
    with open(out / "metrics.jsonl", "a") as f:  # what a kill -9 after step 6 leaves
        for step in (5, 6):
            f.write(json.dumps({"step": step, "train_time": 1.0, "loss": 9.0}) + "\n")
    (out / ".checkpoint.npz.abc123.tmp").write_bytes(b"half a save")
    train(config(task, out, tmp_path, steps=8), resume=True, log=quiet)
    steps = [json.loads(line)["step"] for line in open(out / "metrics.jsonl")
             if '"loss"' in line]
    assert steps == list(range(1, 9))
    assert not list(out.glob(".checkpoint.npz.*.tmp"))


def test_thread_choice_probes_both_counts_and_keeps_the_faster():
    from minirnn.backend import ThreadChoice
    choice = ThreadChoice(n_cores=2, warmup=2, probe=2, probe_s=0.0, spacing=2, run=3)
    seconds = {1: 1.0, 2: 0.5}  # an idle machine: two threads twice as fast
    used = []
    for step in range(60):
        n = choice.threads_for()
        used.append(n)
        # in the first probe one timed step on two threads waits 2.5 s (a median would
        # miss it)
        choice.record(seconds[n] + (2.5 if step == 3 else 0.0))
        if step == 39:
            seconds = {1: 1.0, 2: 3.0}  # then the machine gets busy
    probe = [2, 2, 2, 1, 1, 1]  # a run on every core first; the first of each untimed
    # probe 1 (steps 2-7): two threads 1.75 s a timed step, one thread 1 s; it took 7 s,
    # so 14 s of work (14 steps of 1 s) come before probe 2, which finds two threads faster
    assert used[:2] == [2, 2] and used[2:8] == probe and used[8:22] == [1] * 14
    assert used[22:28] == probe
    # probe 2 took 4.5 s: 9 s of work until probe 3, which the 12 steps of 0.5 s and one
    # of 3 s (busy from step 40) reach; from then on one thread is faster
    assert used[28:41] == [2] * 13 and used[41:47] == probe and used[47:] == [1] * 13
    fixed = ThreadChoice(fixed=1, n_cores=2)
    assert {fixed.threads_for() for _ in range(50)} == {1}


def test_thread_choice_does_not_time_the_switch():
    """Waking BLAS threads after a step on one thread makes the first step back on every
    core slow; a probe that timed it would keep one thread on an idle machine."""
    from minirnn.backend import ThreadChoice
    choice = ThreadChoice(n_cores=2, warmup=0, probe=4, probe_s=0.0, spacing=20)
    used, previous = [], 2
    for _ in range(48):
        n = choice.threads_for()
        used.append(n)
        choice.record({1: 1.0, 2: 0.6}[n] + (1.0 if n == 2 and previous == 1 else 0.0))
        previous = n
    # runs of 3, the first untimed: two threads 0.6 s a timed step, one thread 1 s; the
    # probe took 10.6 s, so two threads run until 21.2 s of work have passed
    assert used[:12] == [2, 2, 2, 1, 1, 1] * 2 and used[12:] == [2] * 36
    with pytest.raises(ValueError, match="run must be at least 1"):
        ThreadChoice(n_cores=2, run=0)
    # run=1 alternates every step and times them all
    every = ThreadChoice(n_cores=2, warmup=0, probe=3, probe_s=0.0, run=1)
    used = []
    for _ in range(6):
        used.append(every.threads_for())
        every.record({1: 1.0, 2: 0.5}[used[-1]])
    assert used == [2, 1] * 3 and every.best == 2 and every.timings is None


def test_thread_choice_probes_for_long_enough_and_rarely_enough():
    """Short steps: the probe runs until it has lasted ``probe_s``; the second one waits
    twice as long, the later ones ``spacing`` times as long, so probing soon becomes a
    small share of the work. (Step times are powers of two, so the sums are exact.)"""
    from minirnn.backend import ThreadChoice
    choice = ThreadChoice(n_cores=4, warmup=0, probe=2, probe_s=0.74, spacing=20)
    seconds = {1: 1 / 64, 4: 1 / 128}
    # a run of 3 on each count takes 9/128 s: 11 pairs of runs pass 0.74 s (99/128 s);
    # a gap of k probes' lengths is k * 99/128 s of work, 99 * k steps of 1/128 s
    expected = []
    for k in (2, 20, 20):
        expected += [4, 4, 4, 1, 1, 1] * 11 + [4] * (99 * k)
    used = []
    for _ in range(len(expected)):
        n = choice.threads_for()
        used.append(n)
        choice.record(seconds[n])
    assert used == expected
    assert ThreadChoice(n_cores=1).threads_for() == 1  # one core: nothing to choose


@pytest.mark.parametrize("threads", [None, 1])
def test_a_run_leaves_the_blas_thread_count_as_it_found_it(threads, tmp_path):
    from minirnn import backend
    with backend.blas_threads(2):
        before = backend.blas_thread_count()
        result = train(config("char", tmp_path / "r", tmp_path, steps=8, threads=threads),
                       log=quiet)
        assert backend.blas_thread_count() == before
    used = [json.loads(line)["threads"] for line in open(result.out / "metrics.jsonl")
            if '"loss"' in line]
    c = backend.cores()
    # two warm-up steps on every core, then the probe's runs of three on each count
    assert used == ([1] * 8 if threads == 1 or c == 1 else [c, c] + [c] * 3 + [1] * 3)


def test_the_learning_rate_warms_up_then_follows_a_cosine_to_a_tenth(tmp_path):
    import math
    result = train(config("char", tmp_path / "r", tmp_path, steps=20, lr=1e-2,
                          lr_schedule="cosine", warmup=4), log=quiet)
    lrs = [json.loads(line)["lr"] for line in open(result.out / "metrics.jsonl")
           if '"loss"' in line]
    assert lrs[:4] == pytest.approx([2.5e-3, 5e-3, 7.5e-3, 1e-2])
    for step in range(4, 20):  # step counts the updates made before this one
        want = 1e-3 + 9e-3 * (1 + math.cos(math.pi * step / 20)) / 2
        assert lrs[step] == pytest.approx(want), step
    assert lrs[-1] < 1.1e-3 and all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
