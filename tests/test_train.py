"""The trainer: it learns, it resumes exactly, it keeps what the user made."""

import json
import math
import signal

import numpy as np
import pytest

from minirnn import checkpoint, optim
from minirnn.backend import to_numpy
from minirnn.data import StreamBatcher, load_corpus
from minirnn.training import TrainConfig, TrainingDiverged, evaluate, load_model, train

from .conftest import needs_corpus

TEXT_200 = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\n"
    "Resolved. resolved.\n\nFirst Citizen:\nFirst, you know Caius Marcius is chief enemy to the people.\n"
)[:200]


def quiet(*_):
    pass


@pytest.fixture
def text200(tmp_path):
    p = tmp_path / "t200.txt"
    p.write_text(TEXT_200, encoding="utf-8")
    return p


@pytest.mark.parametrize("cell, steps", [("lstm", 400), ("gru", 300), ("rnn", 500)])
def test_trainer_overfits_200_characters(text200, tmp_path, cell, steps):
    cfg = TrainConfig(data=str(text200), cell=cell, hidden_size=64, num_layers=1,
                      batch_size=1, seq_len=50, steps=steps, lr=1e-2, val_fraction=0.0,
                      eval_every=10_000, save_every=10_000, sample_length=0,
                      out=str(tmp_path / cell), progress=False)
    result = train(cfg, log=quiet)
    corpus = load_corpus(str(text200), val_fraction=0.0)
    nats = evaluate(result.model, StreamBatcher(corpus.train_ids, 1, 50))
    assert nats < 0.05, f"{cell}: {nats:.4f} nats/char after {steps} steps"


def small_cfg(path, out, **over):
    base = dict(data=str(path), cell="lstm", hidden_size=16, num_layers=2, batch_size=2,
                seq_len=8, dropout=0.2, steps=30, lr=5e-3, eval_every=7, save_every=1000,
                sample_length=0, val_fraction=0.1, out=str(out), progress=False)
    base.update(over)
    return TrainConfig(**base)


def test_interrupted_and_resumed_run_ends_with_identical_parameters(text200, tmp_path, monkeypatch):
    # 200 chars in 2 streams of 8 give 6 batches per pass: 30 steps cross the stream end
    # (state reset) several times, and dropout draws from its generator every step.
    full = train(small_cfg(text200, tmp_path / "full"), log=quiet)

    calls = {"n": 0}
    real_clip = optim.clip_grad_norm

    def ctrl_c_during_step_13(grads, max_norm):
        calls["n"] += 1
        if calls["n"] == 13:
            signal.raise_signal(signal.SIGINT)  # what the user's Ctrl-C delivers
        return real_clip(grads, max_norm)

    monkeypatch.setattr(optim, "clip_grad_norm", ctrl_c_during_step_13)
    part = train(small_cfg(text200, tmp_path / "split"), log=quiet)
    assert part.stopped_by == "interrupt" and part.step == 13
    monkeypatch.setattr(optim, "clip_grad_norm", real_clip)

    resumed = train(small_cfg(text200, tmp_path / "split"), resume=True, log=quiet)
    assert resumed.step == 30
    for k, p in full.model.params.items():
        np.testing.assert_array_equal(to_numpy(resumed.model.params[k]), to_numpy(p), err_msg=k)
    # The metrics file continues rather than restarting.
    steps = [json.loads(l)["step"] for l in open(tmp_path / "split" / "metrics.jsonl")
             if '"loss"' in l]
    assert steps == list(range(1, 31))


def test_a_second_ctrl_c_drops_the_unfinished_step_and_still_resumes_exactly(
        text200, tmp_path, monkeypatch):
    full = train(small_cfg(text200, tmp_path / "full", steps=12), log=quiet)
    calls = {"n": 0}
    real_clip = optim.clip_grad_norm

    def hard_interrupt_at_step_7(grads, max_norm):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt  # after this step's forward drew its dropout masks
        return real_clip(grads, max_norm)

    monkeypatch.setattr(optim, "clip_grad_norm", hard_interrupt_at_step_7)
    part = train(small_cfg(text200, tmp_path / "split", steps=12), log=quiet)
    assert part.step == 6
    monkeypatch.setattr(optim, "clip_grad_norm", real_clip)
    resumed = train(small_cfg(text200, tmp_path / "split", steps=12), resume=True, log=quiet)
    for k, p in full.model.params.items():
        np.testing.assert_array_equal(to_numpy(resumed.model.params[k]), to_numpy(p), err_msg=k)


def test_metrics_report_nats_bits_and_perplexity_and_a_plot_is_drawn(text200, tmp_path):
    train(small_cfg(text200, tmp_path / "r", steps=14), log=quiet)
    records = [json.loads(l) for l in open(tmp_path / "r" / "metrics.jsonl")]
    evals = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in evals] == [7, 14]
    for r in evals:
        assert r["val_bpc"] == pytest.approx(r["val_loss"] / math.log(2))
        assert r["val_ppl"] == pytest.approx(math.exp(r["val_loss"]))
    assert (tmp_path / "r" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_with_other_model_settings_is_refused_with_the_differences(text200, tmp_path):
    train(small_cfg(text200, tmp_path / "r", steps=3), log=quiet)
    with pytest.raises(ValueError, match=r"hidden_size: checkpoint has 16, now 32"):
        train(small_cfg(text200, tmp_path / "r", steps=6, hidden_size=32), resume=True, log=quiet)
    said = []
    r = train(small_cfg(text200, tmp_path / "r", steps=6, lr=1e-3), resume=True, log=said.append)
    assert r.step == 6 and any("learning rate changed on resume" in s for s in said)


def test_divergence_stops_training_and_keeps_the_last_good_checkpoint(text200, tmp_path):
    out = tmp_path / "r"
    train(small_cfg(text200, out, steps=4, dropout=0.0), log=quiet)
    good = (out / "checkpoint.npz").read_bytes()
    with pytest.raises(TrainingDiverged, match=r"diverged at step \d+: loss .* gradient norm"):
        train(small_cfg(text200, out, steps=40, lr=1e4, dropout=0.0),
              resume=True, log=quiet)
    assert (out / "checkpoint.npz").read_bytes() == good


def test_a_corrupted_checkpoint_is_refused_clearly(text200, tmp_path):
    train(small_cfg(text200, tmp_path / "r", steps=2), log=quiet)
    path = tmp_path / "r" / "checkpoint.npz"
    model, vocab, meta = load_model(path)
    assert meta["step"] == 2 and len(vocab) == model.vocab_size
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(checkpoint.CheckpointError, match="truncated or not a minirnn checkpoint"):
        load_model(path)


def test_bad_settings_name_the_argument():
    with pytest.raises(ValueError, match="seq_len must be a positive integer, got 0"):
        TrainConfig(seq_len=0)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        TrainConfig(optimizer="lbfgs")


@needs_corpus("ptb")
def test_word_level_ptb_trains_with_an_embedding_and_reports_perplexity(tmp_path):
    cfg = TrainConfig(data="ptb", level="word", cell="gru", hidden_size=16, num_layers=1,
                      embedding_dim=8, batch_size=4, seq_len=8, steps=4, eval_every=2,
                      eval_batches=2, sample_length=5, out=str(tmp_path / "w"), progress=False)
    said = []
    result = train(cfg, log=said.append)
    assert any("ptb.valid.txt" in s for s in said)  # the note about the missing train split
    assert result.model.embed is not None and result.vocab.kind == "word"
    evals = [json.loads(l) for l in open(tmp_path / "w" / "metrics.jsonl") if "val_ppl" in l]
    assert [r["step"] for r in evals] == [2, 4]
    assert all(r["val_ppl"] == pytest.approx(math.exp(r["val_loss"])) for r in evals)
    # an untrained word model is near uniform over ~6,000 words, not over 65 characters
    assert evals[0]["val_ppl"] > 1000


def test_a_hard_interrupt_inside_the_weight_update_keeps_the_checkpoint_on_disk(
        text200, tmp_path, monkeypatch):
    out = tmp_path / "r"
    calls = {"n": 0}
    real_step = optim.Adam.step

    def step_interrupted_at_call_5(self):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(optim.Adam, "step", step_interrupted_at_call_5)
    result = train(small_cfg(text200, out, steps=10, save_every=2), log=quiet)
    assert result.stopped_by == "interrupt-unsaved" and result.step == 4
    _, meta = checkpoint.load_checkpoint(out / "checkpoint.npz")
    assert meta["step"] == 4


def test_a_checkpoint_of_another_kind_is_refused_naming_both(text200, tmp_path):
    from minirnn.training import load_seq2seq

    train(small_cfg(text200, tmp_path / "r", steps=1), log=quiet)
    with pytest.raises(checkpoint.CheckpointError,
                       match=r"holds a 'charrnn' checkpoint, not a 'seq2seq' one"):
        load_seq2seq(tmp_path / "r" / "checkpoint.npz")
