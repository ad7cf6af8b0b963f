"""Checkpoints written before the one-loop rebuild (commit 5d42e00) still load and give
the same text: a 2x16 LSTM char model, a seq2seq dates model and a Conv-LSTM model,
each stored with what it produced on that commit (tests/fixtures/before_one_loop/)."""

import json
from pathlib import Path

import numpy as np
import pytest

from minirnn import generate
from minirnn.data.moving import held_out_set
from minirnn.generate import translate
from minirnn.training import load_convlstm, load_model, load_seq2seq, predict_probs

HERE = Path(__file__).with_name("fixtures") / "before_one_loop"
EXPECTED = json.loads((HERE / "expected.json").read_text(encoding="utf-8"))


def test_char_model_from_before_samples_the_same_text():
    want = EXPECTED["char_lstm_2x16.npz"]
    model, vocab, _ = load_model(HERE / "char_lstm_2x16.npz")
    model.eval()
    assert generate.sample(model, vocab, prompt="ROMEO:", length=80, temperature=0.8,
                           seed=0) == want["sample_t08_seed0"]
    assert generate.sample(model, vocab, prompt="A", length=60, temperature=0) == want["greedy"]
    assert generate.beam_sample_text(model, vocab, "ROMEO:", beam_width=3,
                                     length=40) == want["beam3"]


def test_seq2seq_model_from_before_translates_the_same():
    want = EXPECTED["seq2seq_dates.npz"]
    model, vocab, _ = load_seq2seq(HERE / "seq2seq_dates.npz")
    assert translate(model, vocab, want["sources"]) == want["greedy"]
    assert translate(model, vocab, want["sources"], beam_width=3) == want["beam3"]


def test_convlstm_model_from_before_predicts_the_same():
    want = EXPECTED["convlstm_squares.npz"]
    model, _ = load_convlstm(HERE / "convlstm_squares.npz")
    inputs, _ = held_out_set(2)
    probs = predict_probs(model, inputs)
    np.testing.assert_allclose(probs[0, 0, 0, 8], want["probs_00_0_row8"], rtol=1e-6)
    assert float(probs.astype(np.float64).sum()) == pytest.approx(
        want["held_out_first2_probs_sum"], rel=1e-6)
