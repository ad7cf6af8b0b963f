"""What char-rnn users actually hit (issue 7), through the entry points they use.

Each test drives ``minirnn.cli.main([...])`` (or ``train(TrainConfig(...))`` where the
trainer itself is the point) on tiny models, and checks the exit status and the message
the user reads as well as the outcome. The table in docs/troubleshooting.md maps every
case to its test.
"""

import hashlib
import json
import math
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from minirnn import backend, cli, optim
from minirnn.checkpoint import load_checkpoint, save_checkpoint
from minirnn.nn import CharRNN
from minirnn.training import TrainConfig, TrainingDiverged, load_model, train

REPO = Path(__file__).resolve().parents[1]

# Accents (precomposed and combining), CJK, emoji with a skin-tone modifier, \r\n.
UNICODE_TEXT = ("naïve café, Ångström e\u0301 ñ\r\n"
                "中文字符，很好。\r\n"
                "😀👍🏽 ok\r\n") * 15

TINY = ["--hidden-size", "8", "--num-layers", "1", "--no-progress", "--sample-length", "0"]


def run_cli(capsys, *argv):
    """(exit status, stdout, stderr) of ``minirnn ARGV``."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def no_traceback(err):
    assert "Traceback" not in err, err
    return True


def quiet(*_):
    pass


def tiny_cfg(data, out, **over):
    base = dict(data=str(data), cell="lstm", hidden_size=8, num_layers=1, batch_size=4,
                seq_len=16, steps=3, eval_every=1000, save_every=1000, sample_length=0,
                out=str(out), progress=False)
    base.update(over)
    return TrainConfig(**base)


@pytest.fixture
def unicode_file(tmp_path):
    path = tmp_path / "unicode.txt"
    path.write_bytes(UNICODE_TEXT.encode("utf-8"))
    return path


# ------------------------------------------------------------------ 1. Unicode

def test_a_utf8_corpus_trains_and_samples_code_points_not_bytes(unicode_file, tmp_path, capsys):
    out = tmp_path / "run"
    code, said, err = run_cli(capsys, "train", "--data", unicode_file, *TINY, "--batch-size", 4,
                              "--seq-len", 16, "--steps", 3, "--out", out)
    assert code == 0 and no_traceback(err), err
    text = UNICODE_TEXT.replace("\r\n", "\n")
    _, vocab, _ = load_model(out / "checkpoint.npz")
    assert vocab.symbols == sorted(set(text))  # distinct code points, sorted; no "\r"
    assert "\r" not in vocab.symbols and all(len(s) == 1 for s in vocab.symbols)
    for ch in ("中", "😀", "\U0001F3FD", "\u0301", "ï"):
        assert ch in vocab.symbols
    assert f"vocabulary {len(set(text))};" in said

    code, sampled, err = run_cli(capsys, "sample", out / "checkpoint.npz", "--prompt", "中文",
                                 "--length", 200, "--seed", 0)
    assert code == 0 and no_traceback(err)
    sampled = sampled[:-1]  # print's newline
    assert sampled.startswith("中文") and len(sampled) == 2 + 200  # code points, not bytes
    assert set(sampled) <= set(vocab.symbols)
    sampled.encode("utf-8")  # valid text: no lone surrogates


def test_files_are_read_as_utf8_and_samples_print_whatever_the_locale(unicode_file, tmp_path):
    # An ASCII locale with UTF-8 mode and locale coercion off: open() without an encoding
    # would fail on this file, and print() of an emoji would raise UnicodeEncodeError.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PYTHONIO"))}
    env.update(LC_ALL="C", LANG="C", PYTHONUTF8="0", PYTHONCOERCECLOCALE="0",
               PYTHONPATH=str(REPO))
    out = tmp_path / "run"
    run = subprocess.run([sys.executable, "-m", "minirnn", "train", "--data", str(unicode_file),
                          *TINY[:-2], "--sample-length", "30", "--eval-every", "2",
                          "--batch-size", "4", "--seq-len", "16", "--steps", "2",
                          "--out", str(out)], capture_output=True, env=env, cwd=tmp_path)
    assert run.returncode == 0 and b"Traceback" not in run.stderr, run.stderr.decode()
    run = subprocess.run([sys.executable, "-m", "minirnn", "sample", str(out / "checkpoint.npz"),
                          "--length", "100", "--seed", "0"], capture_output=True, env=env)
    assert run.returncode == 0 and b"Traceback" not in run.stderr, run.stderr.decode()
    shown = run.stdout.decode("ascii").rstrip("\n")  # escapes for what ASCII cannot show
    decoded = shown.encode("ascii").decode("unicode_escape")
    _, vocab, _ = load_model(out / "checkpoint.npz")
    assert len(decoded) == 100 and set(decoded) <= set(vocab.symbols)


def test_a_latin1_file_needs_encoding_and_the_error_gives_the_byte_offset(tmp_path, capsys):
    path = tmp_path / "old.txt"
    path.write_bytes(("plain ascii line\ncafé crème brûlée\n" * 20).encode("latin-1"))
    code, _, err = run_cli(capsys, "train", "--data", path, *TINY, "--steps", 1,
                           "--out", tmp_path / "a")
    assert code == 1 and no_traceback(err)
    assert "not valid utf-8 at byte offset 20 (line 2)" in err and "--encoding" in err
    assert b"plain ascii line\ncaf\xe9".index(b"\xe9") == 20

    code, said, err = run_cli(capsys, "train", "--data", path, "--encoding", "latin-1", *TINY,
                              "--steps", 1, "--out", tmp_path / "b")
    assert code == 0, err
    _, vocab, _ = load_model(tmp_path / "b" / "checkpoint.npz")
    assert {"é", "è", "û"} <= set(vocab.symbols)


def test_more_than_10000_distinct_characters_is_refused_before_any_model_is_built(
        tmp_path, capsys, monkeypatch):
    path = tmp_path / "cjk.txt"
    path.write_text("".join(chr(0x4E00 + k) for k in range(10_001)), encoding="utf-8")

    def no_model(*args, **kwargs):
        raise AssertionError("a model (and its one-hot input) was built")

    monkeypatch.setattr("minirnn.training.charlm.CharRNN", no_model)
    code, _, err = run_cli(capsys, "train", "--data", path, *TINY, "--steps", 1,
                           "--out", tmp_path / "r")
    assert code == 1 and no_traceback(err)
    assert "10,001 distinct characters, more than max_size=10,000" in err
    assert "--level word" in err and "--max-vocab" in err and "clean the corpus" in err


# ------------------------------------------------------------------ 2. Corpus too small

def test_a_10_character_file_with_batch_and_seq_len_64_trains_and_says_what_it_shrank(
        tmp_path, capsys):
    path = tmp_path / "ten.txt"
    path.write_text("0123456789", encoding="utf-8")
    out = tmp_path / "r"
    code, said, err = run_cli(capsys, "train", "--data", path, "--seq-len", 64,
                              "--batch-size", 64, *TINY, "--steps", 3, "--out", out)
    assert code == 0 and no_traceback(err), err
    assert ("note: the training split has only 9 tokens, too few for batch_size=64 x "
            "seq_len=64 (a full batch needs 64 x 65 = 4,160); using batch_size 64 -> 1 and "
            "seq_len 64 -> 8 so that one batch fits") in said
    assert "note: the validation split has 1 char(s)" in said and "no validation loss" in said
    assert "batches 1x8" in said and "stopped by steps at step 3" in said
    assert load_checkpoint(out / "checkpoint.npz")[1]["step"] == 3


def test_an_empty_file_stops_with_a_message_and_exit_status_1(tmp_path, capsys):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    code, out, err = run_cli(capsys, "train", "--data", path, *TINY, "--out", tmp_path / "r")
    assert code == 1 and no_traceback(err) and out == ""
    assert err.startswith("minirnn train: ") and err.count("\n") == 1
    assert "empty.txt is empty (0 bytes, 0 characters)" in err and "at least 2" in err


@pytest.mark.parametrize("content, expect", [
    ("a", "the training split has 1 char(s) (of 1 in the corpus); training needs at least 2"),
    ("ab", "the training split has 1 char(s) (of 2 in the corpus, after --val-fraction 0.1 "
           "kept 1 for validation); training needs at least 2"),
])
def test_a_file_too_short_to_train_on_states_the_numbers(tmp_path, capsys, content, expect):
    path = tmp_path / "short.txt"
    path.write_text(content, encoding="utf-8")
    code, _, err = run_cli(capsys, "train", "--data", path, *TINY, "--out", tmp_path / "r")
    assert code == 1 and no_traceback(err)
    assert expect in err, err


def test_one_repeated_character_trains_a_vocabulary_of_1_without_nan_or_false_divergence(
        tmp_path, capsys):
    path = tmp_path / "aaa.txt"
    path.write_text("a" * 300, encoding="utf-8")
    out = tmp_path / "r"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero or invalid-value warnings
        code, said, err = run_cli(capsys, "train", "--data", path, *TINY[:-2],
                                  "--sample-length", 5, "--batch-size", 4, "--seq-len", 16,
                                  "--steps", 4, "--eval-every", 2, "--out", out)
        assert code == 0 and no_traceback(err), err
        assert "vocabulary 1;" in said
        assert "step 2: val 0.0000 nats/char, 0.000 bits/char, perplexity 1.00" in said
        assert "stopped by steps at step 4" in said
        code, sampled, err = run_cli(capsys, "sample", out / "checkpoint.npz", "--length", 10,
                                     "--top-p", "0.5", "--seed", 0)
    assert code == 0 and sampled == "a" * 10 + "\n"
    losses = [json.loads(l) for l in open(out / "metrics.jsonl", encoding="utf-8")]
    assert [r["loss"] for r in losses if "loss" in r] == [0.0] * 4


@pytest.mark.parametrize("val_fraction, val_tokens", [(0.05, 5), (0.01, 1)])
def test_a_validation_split_without_a_full_batch_shrinks_or_is_skipped(
        tmp_path, val_fraction, val_tokens):
    path = tmp_path / "t.txt"
    path.write_text(("the quick brown fox jumps over the lazy dog " * 3)[:100], encoding="utf-8")
    said = []
    result = train(tiny_cfg(path, tmp_path / "r", batch_size=4, seq_len=8, steps=2,
                            eval_every=1, val_fraction=val_fraction), log=said.append)
    assert result.step == 2
    if val_tokens == 5:  # 5 tokens cannot fill 4 streams of 8: one stream of 4
        assert any(s.startswith("note: the validation split has only 5 tokens, too few for "
                                "batch_size=4 x seq_len=8") and "batch_size 4 -> 1" in s
                   and "seq_len 8 -> 4" in s for s in said), said
        assert math.isfinite(result.val_loss)
    else:
        assert any("the validation split has 1 char(s)" in s and "no validation loss" in s
                   for s in said), said
        assert result.val_loss is None


# ------------------------------------------------------------------ 3. NaN and divergence

def test_a_huge_learning_rate_stops_with_the_step_losses_and_norm_and_keeps_the_checkpoint(
        unicode_file, tmp_path, capsys):
    out = tmp_path / "r"
    args = ["train", "--data", unicode_file, *TINY, "--batch-size", 4, "--seq-len", 16,
            "--out", out]
    assert run_cli(capsys, *args, "--steps", 3)[0] == 0
    good = (out / "checkpoint.npz").read_bytes()
    first = json.loads(open(out / "metrics.jsonl", encoding="utf-8").readline())["loss"]

    code, said, err = run_cli(capsys, *args, "--steps", 40, "--lr", "1e4", "--resume")
    assert code == 1 and no_traceback(err)
    m = re.search(r"training diverged at step (\d+): loss (\S+) \(last finite loss (\S+), "
                  r"first (\S+)\), gradient norm (\S+)\. The last good checkpoint, "
                  r".*checkpoint\.npz \(step 3\), was left untouched; try a lower --lr", err)
    assert m, err
    assert int(m[1]) > 3 and float(m[2]) > 3 * first and math.isfinite(float(m[3]))
    assert float(m[4]) == pytest.approx(first, rel=1e-3)  # the run's first loss, kept
    assert math.isfinite(float(m[5].rstrip(".")))
    assert (out / "checkpoint.npz").read_bytes() == good

    # From scratch nothing has been saved yet, and the message says so.
    code, _, err = run_cli(capsys, *args[:-1], tmp_path / "fresh", "--steps", 40, "--lr", "1e4")
    assert code == 1 and "No checkpoint was written" in err
    assert not (tmp_path / "fresh" / "checkpoint.npz").exists()


def test_nan_written_into_a_weight_during_training_stops_before_the_save(
        unicode_file, tmp_path, monkeypatch):
    out = tmp_path / "r"
    train(tiny_cfg(unicode_file, out, steps=2), log=quiet)
    good = (out / "checkpoint.npz").read_bytes()
    calls = {"n": 0}
    real_step = optim.Adam.step

    def step_then_nan(self):
        real_step(self)
        calls["n"] += 1
        if calls["n"] == 2:  # the update of step 4 leaves a NaN behind (finite loss)
            self.params["head.b"][0] = np.nan

    monkeypatch.setattr(optim.Adam, "step", step_then_nan)
    with pytest.raises(TrainingDiverged) as info:
        train(tiny_cfg(unicode_file, out, steps=10, save_every=2), resume=True, log=quiet)
    msg = str(info.value)
    assert "training diverged at step 4: the weights head.b hold NaN or Inf" in msg
    assert "gradient norm" in msg and "last finite loss" in msg
    assert "(step 2), was left untouched" in msg
    assert (out / "checkpoint.npz").read_bytes() == good


def test_the_divergence_threshold_survives_a_resume(unicode_file, tmp_path, monkeypatch):
    # A resumed run compares losses with the run's first loss, as the uninterrupted run
    # does: a resumed session that starts on an easy batch must not call a normal loss
    # "3x the first" and stop.
    out = tmp_path / "r"
    train(tiny_cfg(unicode_file, out, steps=2), log=quiet)
    real_loss = CharRNN.loss
    calls = {"n": 0}

    def loss_easy_then_normal(self, *args, **kwargs):
        loss, dlogits = real_loss(self, *args, **kwargs)
        calls["n"] += 1
        return loss * (0.2 if calls["n"] == 1 else 1.0), dlogits

    monkeypatch.setattr(CharRNN, "loss", loss_easy_then_normal)
    result = train(tiny_cfg(unicode_file, out, steps=5), resume=True, log=quiet)
    assert result.step == 5


def test_sampling_a_checkpoint_with_nan_weights_is_refused_naming_them(
        unicode_file, tmp_path, capsys):
    out = tmp_path / "r"
    train(tiny_cfg(unicode_file, out, steps=1), log=quiet)
    arrays, meta = load_checkpoint(out / "checkpoint.npz")
    arrays["model/head.W"][0, 0] = np.nan
    arrays["model/rnn.0.Wh"][1, 1] = np.inf
    save_checkpoint(out / "bad.npz", arrays, meta, allow_nonfinite=True)
    capsys.readouterr()  # the trainer's own report
    code, sampled, err = run_cli(capsys, "sample", out / "bad.npz", "--length", 5)
    assert code == 1 and no_traceback(err) and sampled == ""
    assert "non-finite weights in rnn.0.Wh, head.W;" in err, err


# ------------------------------------------------------------------ 4. Resume

def test_resume_refuses_other_model_settings_and_accepts_and_says_steps_budget_and_lr(
        unicode_file, tmp_path, capsys):
    out = tmp_path / "r"
    args = ["train", "--data", unicode_file, *TINY, "--batch-size", 4, "--seq-len", 16,
            "--out", out]
    assert run_cli(capsys, *args, "--steps", 3)[0] == 0
    before = (out / "checkpoint.npz").read_bytes()

    code, _, err = run_cli(capsys, *args, "--steps", 3, "--resume", "--cell", "gru",
                           "--hidden-size", 16)
    assert code == 1 and no_traceback(err)
    assert "cannot resume from" in err and "settings differ from the checkpoint's" in err
    assert "cell: checkpoint has 'lstm', now 'gru'; hidden_size: checkpoint has 8, now 16" in err
    assert err.count("\n") == 1  # one line, like every refusal
    assert (out / "checkpoint.npz").read_bytes() == before

    code, said, err = run_cli(capsys, *args, "--steps", 5, "--time-budget", 60, "--lr", "1e-3",
                              "--resume")
    assert code == 0, err
    assert "note: learning rate changed on resume: 0.002 -> 0.001" in said
    assert "note: --steps changed on resume: 3 -> 5" in said
    assert "note: --time-budget changed on resume: none -> 60.0" in said
    assert "resumed from" in said and "stopped by steps at step 5" in said


# ------------------------------------------------------------------ 5. Checkpoints across backends

def test_checkpoints_move_between_the_strict_device_backend_and_numpy(
        unicode_file, tmp_path, capsys):
    texts = {}
    for trained_on in ("strict", "numpy"):
        backend.use(trained_on)
        train(tiny_cfg(unicode_file, tmp_path / trained_on, steps=3), log=quiet)
        capsys.readouterr()  # the trainer's own report
        arrays, _ = load_checkpoint(tmp_path / trained_on / "checkpoint.npz")
        assert all(type(a) is np.ndarray for a in arrays.values())  # host arrays on disk
        for sampled_on in ("numpy", "strict"):
            backend.use(sampled_on)
            code, text, err = run_cli(capsys, "sample", tmp_path / trained_on / "checkpoint.npz",
                                      "--prompt", "中", "--length", 40, "--seed", 7)
            assert code == 0, err
            texts[trained_on, sampled_on] = text
    assert len(set(texts.values())) == 1, texts

    # and a run trained on the device resumes on the host where it stopped
    backend.use("numpy")
    straight = train(tiny_cfg(unicode_file, tmp_path / "straight", steps=6), log=quiet)
    resumed = train(tiny_cfg(unicode_file, tmp_path / "strict", steps=6), resume=True, log=quiet)
    for k, p in straight.model.params.items():
        np.testing.assert_array_equal(backend.to_numpy(resumed.model.params[k]),
                                      backend.to_numpy(p), err_msg=k)


# ------------------------------------------------------------------ 6. Extreme sampling

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small model that has learned something (confident predictions) and its vocab."""
    tmp = tmp_path_factory.mktemp("sampling")
    path = tmp / "t.txt"
    path.write_bytes(UNICODE_TEXT.encode("utf-8"))
    backend.use("numpy")
    train(tiny_cfg(path, tmp / "r", hidden_size=16, steps=40, lr=2e-2), log=quiet)
    _, vocab, _ = load_model(tmp / "r" / "checkpoint.npz")
    return tmp / "r" / "checkpoint.npz", vocab


def sample_strictly(capsys, ckpt, *flags):
    """``minirnn sample`` with every warning an error and NumPy raising on overflow/NaN."""
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        return run_cli(capsys, "sample", ckpt, *flags)


def test_extreme_sampling_settings_give_correct_text_without_warnings(trained, capsys):
    ckpt, vocab = trained
    base = ["--prompt", "n", "--length", 60, "--seed", 3]

    def text(*flags):
        code, out, err = sample_strictly(capsys, ckpt, *base, *flags)
        assert code == 0 and no_traceback(err), err
        out = out[:-1]
        assert out.startswith("n") and len(out) == 61 and set(out) <= set(vocab.symbols)
        return out

    greedy = text("--temperature", 0)
    assert text("--temperature", "1e-3") == greedy
    assert text("--top-p", "1e-9") == greedy
    assert text("--top-k", 100_000) == text()  # larger than the vocabulary: no filtering
    hot = text("--temperature", "1e3", "--length", 60)
    assert len(set(hot[1:])) > len(vocab) // 2  # close to uniform


def test_a_10000_character_prompt_and_length_0(trained, capsys):
    ckpt, vocab = trained
    prompt = "".join(np.random.default_rng(0).choice(vocab.symbols, 10_000))
    code, out, err = sample_strictly(capsys, ckpt, "--prompt", prompt, "--length", 5,
                                     "--seed", 0)
    assert code == 0 and no_traceback(err)
    assert out[:-1].startswith(prompt) and len(out[:-1]) == 10_005
    code, out, err = sample_strictly(capsys, ckpt, "--prompt", "中文", "--length", 0)
    assert code == 0 and out == "中文\n"


@pytest.mark.parametrize("flags, status, expect", [  # 2: a usage error; 1: the model's
    (["--top-p", "0"], 2, "--top-p must be a number in (0, 1], got 0.0"),
    (["--top-p", "1.5"], 2, "--top-p must be a number in (0, 1], got 1.5"),
    (["--temperature", "-1"], 2, "--temperature must be a finite number >= 0"),
    (["--temperature", "nan"], 2, "--temperature must be a finite number >= 0"),
    (["--top-k", "0"], 2, "--top-k must be an int >= 1, got 0"),
    (["--length", "-1"], 2, "--length must be an int >= 0, got -1"),
    (["--prompt", "xyz"], 1, "character(s) not in the vocabulary"),
])
def test_bad_sampling_values_exit_with_one_line_naming_the_flag(trained, capsys, flags,
                                                                 status, expect):
    code, out, err = sample_strictly(capsys, trained[0], *flags)
    assert code == status and out == "" and no_traceback(err)
    assert err.startswith("minirnn sample: ") and expect in err, err


# ------------------------------------------------------------------ 7. Deterministic vocabulary

def test_the_same_corpus_gives_the_same_ids_in_every_process(tmp_path):
    path = tmp_path / "t.txt"
    rng = np.random.default_rng(0)
    alphabet = [chr(c) for c in range(0x4E00, 0x4E00 + 150)] + list("abcdefg \n😀é")
    path.write_text("".join(rng.choice(alphabet, 3000)), encoding="utf-8")
    code = ("import hashlib, json, sys\n"
            "from minirnn.data import load_corpus\n"
            "c = load_corpus(sys.argv[1])\n"
            "print(json.dumps([c.vocab.symbols, hashlib.sha256(c.train_ids.tobytes())"
            ".hexdigest(), hashlib.sha256(c.val_ids.tobytes()).hexdigest()]))\n")
    runs = []
    for seed in ("1", "2"):  # str hashes, so set order, differ between these
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(REPO))
        run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                             text=True, env=env, check=True)
        runs.append(json.loads(run.stdout))
    assert runs[0] == runs[1]
    assert runs[0][0] == sorted(set(path.read_text(encoding="utf-8")))
    assert hashlib.sha256(b"").hexdigest() not in runs[0][1:]
