"""What a new user meets in the first ten minutes and on long runs: help for every flag,
refusals that name the flag in one line, safe advice for badly encoded or hostile files,
nothing left behind by a refused or killed run."""

import pickle

import numpy as np
import pytest

from minirnn import cli
from minirnn.training import TrainConfig

TINY = ["--hidden-size", "8", "--num-layers", "1", "--no-progress", "--sample-length", "0",
        "--batch-size", "2", "--seq-len", "8"]


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n" * 10,
                    encoding="utf-8")
    return path


@pytest.mark.parametrize("command", [["train"], ["sample", "x.npz"], ["seq2seq", "train"],
                                     ["convlstm", "train"], ["seq2seq", "translate", "x", "y"]])
def test_every_flag_has_help_text(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([*command, "--help"])
    text = capsys.readouterr().out
    options = text[text.index("options:"):]
    flags = [line.split()[0] for line in options.splitlines()
             if line.strip().startswith("--") and not line.strip().startswith("--help")]
    assert len(flags) >= 4
    for line in options.split("\n  --")[1:]:
        name, _, rest = line.partition(" ")
        assert rest.strip() or "\n" in line, f"--{name} has no help text"


def test_train_help_shows_the_defaults_of_the_settings_that_have_them(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in (("--lr", "0.002"), ("--dropout", "0.0"), ("--level", "char"),
                          ("--hidden-size", "256"), ("--seq-len", "64")):
        assert flag in text and f"(default: {default})" in text, flag
    assert "most distinct characters (char level) or most frequent words" in text


@pytest.mark.parametrize("flags, expect", [
    (["--lr", "nan"], "--lr must be a positive number, got nan"),
    (["--lr", "-1"], "--lr must be a positive number, got -1.0"),
    (["--time-budget", "nan"], "--time-budget must be a positive number, got nan"),
    (["--val-fraction", "1.0"], "--val-fraction must be a number in [0.0, 1.0), got 1.0"),
    (["--max-vocab", "0"], "--max-vocab must be a positive integer, got 0"),
    (["--dropout", "1"], "--dropout must be a number in [0.0, 1.0), got 1.0"),
    (["--cell", "tanh"], "argument --cell: invalid choice: 'tanh'"),
    (["--steps", "many"], "argument --steps: must be a positive integer, got 'many'"),
])
def test_every_bad_setting_exits_2_in_one_line_naming_the_flag(flags, expect, tmp_path,
                                                              capsys):
    out = tmp_path / "never"
    code, _, err = run_cli(capsys, "train", *flags, "--out", out)
    assert code == 2 and err == f"minirnn train: {err.split(': ', 1)[1]}"
    assert expect in err and err.count("\n") == 1, err
    assert not out.exists()  # a refused run makes no folder


def test_a_refused_run_or_a_resume_of_nothing_creates_no_out_folder(text_file, tmp_path,
                                                                    capsys):
    out = tmp_path / "r"
    code, _, err = run_cli(capsys, "train", "--data", tmp_path / "missing.txt", *TINY,
                           "--out", out)
    assert code == 1 and "missing.txt" in err and not out.exists()
    code, _, err = run_cli(capsys, "train", "--data", text_file, *TINY, "--steps", 2,
                           "--out", out, "--resume")
    assert code == 1 and "does not exist" in err and not out.exists()


@pytest.mark.parametrize("encode, name", [
    (lambda t: t.encode("utf-16"), "utf-16"),          # with a byte-order mark
    (lambda t: t.encode("utf-16-le"), "utf-16-le"),    # without one: NUL bytes give it away
    (lambda t: t.encode("utf-32"), "utf-32"),
])
@pytest.mark.parametrize("given", [[], ["--encoding", "latin-1"]])
def test_utf16_and_utf32_files_name_the_right_encoding_never_latin1(encode, name, given,
                                                                    tmp_path, capsys):
    path = tmp_path / "wide.txt"
    path.write_bytes(encode("héllo world, a line of text\n" * 20))
    code, _, err = run_cli(capsys, "train", "--data", path, *given, *TINY, "--steps", 1,
                           "--out", tmp_path / "r")
    advice = err.split("; pass ", 1)[-1]
    assert code == 1 and advice.startswith(f"--encoding {name} ") and "latin" not in advice, err
    code, _, err = run_cli(capsys, "train", "--data", path, "--encoding", name, *TINY,
                           "--steps", 1, "--out", tmp_path / "ok")
    assert code == 0, err
    from minirnn.training import load_model
    _, vocab, _ = load_model(tmp_path / "ok" / "checkpoint.npz")
    assert "\x00" not in vocab.symbols and "é" in vocab.symbols


@pytest.mark.parametrize("payload", [
    pickle.dumps({"model/W": np.zeros(3)}),
    np.random.default_rng(0).bytes(5000),
    b"PK\x03\x04" + np.random.default_rng(1).bytes(300),
])
def test_a_pickle_or_random_bytes_are_refused_without_advice_to_unpickle(payload, tmp_path,
                                                                         capsys):
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(payload)
    code, out, err = run_cli(capsys, "sample", path, "--length", 5)
    assert code == 1 and out == "" and "Traceback" not in err
    assert "allow_pickle" not in err and "unsafe" not in err.lower(), err
    assert str(path) in err and err.count("\n") == 1


def test_config_refusals_from_python_name_the_field():
    with pytest.raises(ValueError, match=r"TrainConfig: val_fraction must be a number in "
                                         r"\[0.0, 1.0\), got 1.0"):
        TrainConfig(val_fraction=1.0)


def test_a_batch_too_big_for_memory_is_refused_before_the_run_saying_how_much(
        text_file, tmp_path, capsys, monkeypatch):
    from minirnn.training import charlm
    out = tmp_path / "r"
    code, said, _ = run_cli(capsys, "train", "--data", text_file, *TINY, "--steps", 1,
                            "--out", out)
    assert code == 0 and "whose activations take about" in said and " MB" in said
    monkeypatch.setattr(charlm, "_physical_memory", lambda: 10_000)  # a 10 kB machine
    code, _, err = run_cli(capsys, "train", "--data", text_file, *TINY, "--steps", 1,
                           "--out", tmp_path / "big")
    assert code == 1 and "batches of 2x8 need about" in err and "--batch-size" in err
    assert not (tmp_path / "big").exists()


def test_fine_tuning_grows_the_vocabulary_keeps_old_rows_and_reports_the_loss_before(
        tmp_path, capsys):
    import json

    from minirnn.training import load_model, train
    old_text, new_text = tmp_path / "old.txt", tmp_path / "new.txt"
    old_text.write_text("the cat sat on the mat. " * 40, encoding="utf-8")
    new_text.write_text("Dear Jo, the cat sat on my hat! Yours, Q. " * 40, encoding="utf-8")
    base = TrainConfig(data=str(old_text), hidden_size=16, num_layers=1, embedding_dim=8,
                       batch_size=4, seq_len=16, steps=30, lr=1e-2, sample_length=0,
                       progress=False, out=str(tmp_path / "base"))
    train(base, log=lambda *_: None)
    old_model, old_vocab, _ = load_model(tmp_path / "base" / "checkpoint.npz")

    said = []
    ckpt = tmp_path / "base" / "checkpoint.npz"
    result = train(TrainConfig(data=str(new_text), init_from=str(ckpt), hidden_size=99,
                               batch_size=4, seq_len=16, steps=40, lr=1e-2, eval_every=20,
                               sample_length=0, progress=False, out=str(tmp_path / "tuned")),
                   log=said.append)
    new_chars = sorted(set(new_text.read_text()) - set(old_vocab.symbols))
    assert any(f"{len(new_chars)} new char(s) get new rows" in s for s in said), said
    assert any("keeps the checkpoint's hidden-size 16" in s for s in said), said
    vocab = result.vocab
    assert vocab.symbols[:len(old_vocab)] == old_vocab.symbols  # old ids keep their chars
    assert sorted(vocab.symbols[len(old_vocab):]) == new_chars
    evals = [json.loads(line) for line in open(tmp_path / "tuned" / "metrics.jsonl")
             if "val_loss" in line]
    assert [r["step"] for r in evals] == [0, 20, 40]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"]  # it learned the new text


def test_grown_model_keeps_every_old_weight_and_row():
    from minirnn.nn import CharRNN
    for embedding_dim in (None, 4):
        old = CharRNN(5, 6, num_layers=2, cell="gru", embedding_dim=embedding_dim, seed=1)
        new = old.grown(9, seed=3)
        for k, p in old.params.items():
            q = new.params[k]
            assert np.array_equal(q[tuple(slice(0, n) for n in p.shape)], p), k
            if q.shape != p.shape:  # the new rows are drawn, not zero or copied
                assert np.abs(q).sum() > np.abs(p).sum(), k
        with pytest.raises(ValueError, match="vocab_size must be at least the model's 5"):
            old.grown(4)


def test_resuming_a_checkpoint_without_a_run_says_to_fine_tune_from_it(text_file, tmp_path,
                                                                       capsys):
    from minirnn.checkpoint import load_checkpoint, save_checkpoint
    out = tmp_path / "r"
    run_cli(capsys, "train", "--data", text_file, *TINY, "--steps", 2, "--out", out)
    arrays, meta = load_checkpoint(out / "checkpoint.npz")
    save_checkpoint(out / "checkpoint.npz", {k: v for k, v in arrays.items()
                                              if k.startswith("model/")},
                    {k: meta[k] for k in ("kind", "model", "vocab")})  # as import writes it
    code, _, err = run_cli(capsys, "train", "--data", text_file, *TINY, "--steps", 4,
                           "--out", out, "--resume")
    assert code == 1 and "Traceback" not in err and err.count("\n") == 1
    assert "holds a model but no training run" in err and "--init-from" in err
