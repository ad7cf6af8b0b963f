"""Seq2Seq: the whole loss gradient-checked through decoder, attention and encoder."""

import numpy as np
import pytest

from minirnn import backend, gradcheck, nn


@pytest.fixture
def float64():
    backend.set_default_dtype("float64")
    yield
    backend.set_default_dtype("float32")


def toy_batch(rng, V=6, N=2, S=4, T=3):
    src = rng.integers(3, V, (N, S))
    src_mask = np.ones((N, S), bool)
    src_mask[1, 2:] = False          # a padded source
    src[~src_mask] = 0
    tgt_out = rng.integers(3, V, (N, T))
    tgt_in = np.concatenate([np.ones((N, 1), int), tgt_out[:, :-1]], axis=1)
    tgt_mask = np.ones((N, T), bool)
    tgt_mask[0, -1] = False          # a padded target
    return src, src_mask, tgt_in, tgt_out, tgt_mask


def as_batch(src, src_mask, tgt_in, tgt_out, tgt_mask):
    return dict(src=src, src_mask=src_mask, tgt_in=tgt_in, tgt_out=tgt_out, tgt_mask=tgt_mask)


@pytest.mark.parametrize("cell, bidirectional", [("lstm", False), ("gru", False),
                                                 ("lstm", True), ("gru", True),
                                                 ("rnn", True)])
def test_seq2seq_loss_gradient_matches_centered_differences(float64, cell, bidirectional):
    model = nn.Seq2Seq(6, embedding_dim=3, hidden_size=4, attention_size=3, cell=cell,
                       bidirectional=bidirectional, seed=1)
    # At the default small initial scale attention is nearly uniform and ||dL/dWq|| is
    # about 1e-6, too small for centred differences to resolve; sharper weights make
    # every path carry a gradient the check can see.
    for k in ("attn.Wq", "attn.Wk", "attn.v"):
        model.params[k] *= 3
    batch = toy_batch(np.random.default_rng(0))

    def loss(backward):
        value, dlogits = model.loss(as_batch(*batch))
        if backward:
            model.backward(dlogits)
        return float(value)

    report = gradcheck.check_params(model.params, model.grads, loss, op=f"Seq2Seq/{cell}")
    assert len(report.results) == len(model.params)
    assert report.passed, f"\n{report}"


def test_padding_does_not_change_the_loss_of_a_row(float64):
    """A row's loss is the same alone or padded in a batch with a longer source."""
    model = nn.Seq2Seq(6, embedding_dim=3, hidden_size=4, attention_size=3,
                       bidirectional=True, seed=2)
    rng = np.random.default_rng(1)
    src, src_mask, tgt_in, tgt_out, tgt_mask = toy_batch(rng)
    only_row_1 = np.array([[False] * 3, [True] * 3])
    both, _ = model.loss(as_batch(src, src_mask, tgt_in, tgt_out, only_row_1))
    alone, _ = model.loss(as_batch(src[1:, :2], src_mask[1:, :2], tgt_in[1:], tgt_out[1:],
                                   tgt_mask[1:]))
    assert float(both) == pytest.approx(float(alone), rel=1e-12)


def test_step_reproduces_the_teacher_forced_logits(float64):
    model = nn.Seq2Seq(6, embedding_dim=3, hidden_size=4, attention_size=3, cell="gru", seed=3)
    src, src_mask, tgt_in, tgt_out, tgt_mask = toy_batch(np.random.default_rng(2))
    model.loss(as_batch(src, src_mask, tgt_in, tgt_out, tgt_mask))
    weights = model.last_weights
    keys, _ = model.encode(src, src_mask)
    state = model.initial_state(keys, src_mask)
    for t in range(tgt_in.shape[1]):
        logits, state = model.step(tgt_in[:, t], state)
    assert np.all(weights[1, :, 2:] == 0)                      # padding gets no attention
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-12)
    assert logits.shape == (2, 6)


def test_cli_trains_translates_and_refuses_bad_sources(tmp_path, capsys):
    from minirnn import cli

    out = tmp_path / "dates"
    assert cli.main(["seq2seq", "train", "--task", "dates", "--steps", "4", "--eval-every", "2",
                     "--n-train", "300", "--n-test", "20", "--hidden-size", "8",
                     "--embedding-dim", "4", "--attention-size", "4", "--batch-size", "16",
                     "--out", str(out), "--no-progress"]) == 0
    records = [l for l in (out / "metrics.jsonl").read_text().splitlines() if "exact_match" in l]
    assert len(records) == 2
    capsys.readouterr()
    png = tmp_path / "att.png"
    assert cli.main(["seq2seq", "translate", str(out / "checkpoint.npz"), "tue 3 march 2020",
                     "--beam-width", "3", "--show-attention", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert cli.main(["seq2seq", "translate", str(out / "checkpoint.npz"), "tue 3 märch"]) == 1
    assert "'ä'" in capsys.readouterr().err
    assert cli.main(["seq2seq", "translate", str(out / "checkpoint.npz"), ""]) == 1
    assert "non-empty" in capsys.readouterr().err
    assert cli.main(["seq2seq", "translate", str(out / "checkpoint.npz"), "3/3/2020",
                     "--beam-width", "0"]) == 2  # a usage error
    assert "--beam-width must be an int >= 1, got 0" in capsys.readouterr().err
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "attention.png").read_bytes()[:4] == b"\x89PNG"


def test_seq2seq_beam_search_of_width_1_is_greedy_decoding(float64):
    from minirnn import generate
    from minirnn.data.tasks import Seq2SeqVocab
    from minirnn.generate.translate import encode_sources

    vocab = Seq2SeqVocab.for_task("reverse")
    model = nn.Seq2Seq(len(vocab), embedding_dim=4, hidden_size=6, attention_size=4, seed=4)
    src, mask = encode_sources(vocab, ["abc", "hello", "z"])
    keys, _ = model.encode(src, mask)
    start = np.full(3, vocab.sos_id)
    ids, scores = generate.greedy_decode(model.step, model.initial_state(keys, mask), start,
                                         8, eos_id=vocab.eos_id)
    beams = generate.beam_search(model.step, model.initial_state(keys, mask), start, 1, 8,
                                 eos_id=vocab.eos_id, length_norm=0.0)
    for n in range(3):
        best_ids, best_score = beams[n][0]
        assert vocab.decode(np.array(best_ids)) == vocab.decode(ids[n])
        assert best_score == pytest.approx(scores[n], rel=1e-12)


def test_translate_prints_one_output_per_line_whatever_the_count(tmp_path, capsys):
    from minirnn import cli
    out = tmp_path / "rev"
    assert cli.main(["seq2seq", "train", "--task", "reverse", "--steps", "2", "--n-train", "100",
                     "--n-test", "5", "--hidden-size", "4", "--embedding-dim", "4",
                     "--attention-size", "4", "--batch-size", "8", "--out", str(out),
                     "--no-progress"]) == 0
    ckpt = str(out / "checkpoint.npz")
    capsys.readouterr()
    assert cli.main(["seq2seq", "translate", ckpt, "abc"]) == 0
    one = capsys.readouterr().out.splitlines()
    assert cli.main(["seq2seq", "translate", ckpt, "abc", "xyz"]) == 0
    two = capsys.readouterr().out.splitlines()
    assert len(one) == 1 and len(two) == 2 and two[0] == one[0] and "\t" not in two[1]
    assert cli.main(["seq2seq", "translate", ckpt, "abc", "xyz", "--with-source"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"abc\t{two[0]}", f"xyz\t{two[1]}"]
    from minirnn.generate import translate
    from minirnn.training import load_seq2seq
    model, vocab, _ = load_seq2seq(ckpt)
    assert translate(model, vocab, []) == []
