"""minirnn.data: vocabularies, corpus resolution and reading, splits, stream batching.

No test touches the network: the one function that fetches (``corpus._fetch``) is
replaced in every test, by a failing stand-in unless a test installs its own.
"""

import bz2
import hashlib
import json
import os
import random
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minirnn.data import (
    CharVocab, Corpus, CorpusNotFound, StreamBatcher, WordVocab, load_corpus, load_ptb,
    read_text, resolve_corpus, shrink_to_fit, vocab_from_json, words_with_eos,
)
from minirnn.data import corpus as corpus_mod

from .conftest import needs_corpus

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


@pytest.fixture(autouse=True)
def data_env(monkeypatch, tmp_path):
    """MINIRNN_DATA -> the shared corpora, an empty private cache, and no network."""
    data = os.environ.get("MINIRNN_DATA") or str(SHARED_DATA)
    monkeypatch.setenv("MINIRNN_DATA", data)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))

    def no_network(url):
        raise AssertionError(f"a test tried to download {url}")

    monkeypatch.setattr(corpus_mod, "_fetch", no_network)
    return Path(data)


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- vocabularies

def test_char_vocab_round_trips_text_and_ids_are_int32():
    text = "hello, world\nthe quick brown fox"
    v = CharVocab.from_text(text)
    ids = v.encode(text)
    assert ids.dtype == np.int32 and ids.shape == (len(text),)
    assert v.decode(ids) == text
    assert v.decode(ids.tolist()) == text
    assert len(v) == len(set(text))
    assert v.symbols == sorted(set(text))


def test_char_vocab_ids_do_not_depend_on_the_order_text_arrives_in():
    text = "To be, or not to be: that is the question.\nÆsop's fables, naïve 中文"
    chars = list(text)
    random.Random(0).shuffle(chars)
    a, b = CharVocab.from_text(text), CharVocab.from_text("".join(chars))
    assert a.symbols == b.symbols
    np.testing.assert_array_equal(a.encode(text), b.encode(text))


@pytest.mark.parametrize("text, n_code_points", [
    ("中文字符", 4),                      # CJK
    ("😀👍🏽", 3),                        # astral emoji and a skin-tone modifier
    ("e\u0301", 2),                      # e + combining acute accent: two code points
    ("café naïve Ångström", 19),         # precomposed accents: one code point each
    ("\U0001F468\u200d\U0001F469", 3),   # a ZWJ sequence
])
def test_char_vocab_round_trips_unicode_one_id_per_code_point(text, n_code_points):
    v = CharVocab.from_text(text)
    ids = v.encode(text)
    assert len(ids) == n_code_points == len(text)
    assert v.decode(ids) == text


def test_unicode_survives_a_file_round_trip(tmp_path):
    text = "中文 😀 e\u0301 café\n"
    path = _write(tmp_path / "u.txt", text.encode("utf-8"))
    got = read_text(path)
    assert got == text
    v = CharVocab.from_text(got)
    assert v.decode(v.encode(got)) == text


def test_char_encode_of_unknown_characters_lists_them():
    v = CharVocab.from_text("abc")
    with pytest.raises(ValueError) as e:
        v.encode("abxé中x")
    msg = str(e.value)
    assert "'x'" in msg and "'é'" in msg and "'中'" in msg
    assert "'a'" not in msg
    assert "3 character" in msg


def test_char_vocab_over_max_size_suggests_word_level():
    text = "".join(chr(0x4E00 + k) for k in range(50))
    with pytest.raises(ValueError, match="--level word") as e:
        CharVocab.from_text(text, max_size=20)
    assert "50" in str(e.value) and "clean" in str(e.value)
    assert len(CharVocab.from_text(text, max_size=50)) == 50


def test_char_decode_refuses_out_of_range_and_float_ids():
    v = CharVocab.from_text("ab")
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        v.decode([0, 2])
    with pytest.raises(TypeError, match="integers"):
        v.decode(np.array([0.0, 1.0]))
    assert v.decode([]) == ""


def test_word_vocab_has_unk_and_eos_and_splits_on_whitespace():
    v = WordVocab.from_text("the cat sat\non  the\tmat\n")
    assert v.symbols[:2] == ["<unk>", "<eos>"]
    assert (v.unk_id, v.eos_id) == (0, 1)
    assert v.symbols[2:] == ["cat", "mat", "on", "sat", "the"]
    ids = v.encode("the dog sat\n")
    assert v.decode(ids) == "the <unk> sat <eos>"
    assert ids.dtype == np.int32
    assert ids.tolist() == [v.symbols.index("the"), 0, v.symbols.index("sat"), 1]


def test_words_with_eos_marks_each_line_break():
    assert words_with_eos("a b\n\nc\n") == ["a", "b", "<eos>", "<eos>", "c", "<eos>"]
    assert words_with_eos("a b") == ["a", "b"]


def test_word_vocab_max_size_keeps_most_frequent_ties_alphabetical():
    text = "b b b a a c c d e"  # counts: b 3, a 2, c 2, d 1, e 1
    v = WordVocab.from_text(text, max_size=5)  # <unk>, <eos> and three words
    assert v.symbols == ["<unk>", "<eos>", "a", "b", "c"]
    v = WordVocab.from_text(text, max_size=6)  # d beats e on the alphabetical tie
    assert v.symbols == ["<unk>", "<eos>", "a", "b", "c", "d"]
    assert v.decode(v.encode("e a")) == "<unk> a"


@pytest.mark.parametrize("make", [
    lambda: CharVocab.from_text("héllo 中 😀\n"),
    lambda: WordVocab.from_text("one two two\nthree"),
])
def test_vocab_json_round_trip(make):
    v = make()
    d = json.loads(json.dumps(v.to_json()))
    w = vocab_from_json(d)
    assert type(w) is type(v) and w.symbols == v.symbols and w == v
    assert type(v).from_json(d) == v


def test_vocab_from_json_refuses_the_wrong_kind():
    with pytest.raises(ValueError, match="kind"):
        vocab_from_json({"symbols": ["a"]})
    with pytest.raises(ValueError, match="'word'"):
        CharVocab.from_json(WordVocab.from_text("a").to_json())


# ---------------------------------------------------------------- reading text

def test_read_text_invalid_utf8_reports_the_byte_offset(tmp_path):
    path = _write(tmp_path / "bad.txt", b"hello\nw\xff rest")
    with pytest.raises(ValueError) as e:
        read_text(path)
    msg = str(e.value)
    assert "byte offset 7" in msg and "line 2" in msg and "encoding" in msg
    assert read_text(path, encoding="latin-1") == "hello\nw\xff rest"


def test_read_text_normalises_crlf_and_drops_a_bom(tmp_path):
    path = _write(tmp_path / "crlf.txt", b"\xef\xbb\xbfone\r\ntwo\r\n")
    assert read_text(path) == "one\ntwo\n"


# ---------------------------------------------------------------- corpus resolution

@needs_corpus('tinyshakespeare')
def test_tinyshakespeare_resolves_through_minirnn_data(data_env):
    path = resolve_corpus("tinyshakespeare")
    assert path == data_env / "tinyshakespeare" / "input.txt"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHAKESPEARE_SHA256
    assert len(read_text(path)) == 1_115_394


def test_an_existing_explicit_path_comes_first(tmp_path):
    path = _write(tmp_path / "tinyshakespeare", b"not shakespeare")
    assert resolve_corpus(str(path)) == path
    folder = tmp_path / "mine"
    _write(folder / "input.txt", b"x")
    assert resolve_corpus(folder) == folder / "input.txt"


def test_the_user_cache_is_used_when_minirnn_data_lacks_the_corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIRNN_DATA", str(tmp_path / "empty"))
    cached = _write(tmp_path / "cache" / "tinyshakespeare" / "input.txt", b"cached")
    assert resolve_corpus("tinyshakespeare", cache_dir=tmp_path / "cache") == cached
    xdg = _write(tmp_path / "xdg-cache" / "minirnn" / "tinyshakespeare" / "input.txt", b"x")
    assert resolve_corpus("tinyshakespeare") == xdg


def test_a_good_download_is_checked_and_written_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIRNN_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr(corpus_mod, "SHIPPED", {})  # an install without the shipped copy
    payload = b"First Citizen:\nBefore we proceed any further, hear me speak.\n"
    monkeypatch.setitem(corpus_mod._SHA256, "tinyshakespeare", hashlib.sha256(payload).hexdigest())
    urls = []
    monkeypatch.setattr(corpus_mod, "_fetch", lambda url: urls.append(url) or payload)
    path = resolve_corpus("tinyshakespeare", cache_dir=tmp_path / "cache")
    assert path == tmp_path / "cache" / "tinyshakespeare" / "input.txt"
    assert path.read_bytes() == payload
    assert urls == [corpus_mod._URLS["tinyshakespeare"]]
    assert os.listdir(path.parent) == ["input.txt"]  # no temporary file left behind
    # The second call finds the cached copy and does not download again.
    assert resolve_corpus("tinyshakespeare", cache_dir=tmp_path / "cache") == path
    assert len(urls) == 1


def test_a_checksum_mismatch_raises_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIRNN_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr(corpus_mod, "SHIPPED", {})  # an install without the shipped copy
    monkeypatch.setattr(corpus_mod, "_fetch", lambda url: b"<html>captive portal</html>")
    with pytest.raises(CorpusNotFound) as e:
        resolve_corpus("tinyshakespeare", cache_dir=tmp_path / "cache")
    msg = str(e.value)
    assert "SHA-256" in msg and SHAKESPEARE_SHA256 in msg
    assert "MINIRNN_DATA" in msg and "tinyshakespeare/input.txt" in msg
    assert not (tmp_path / "cache" / "tinyshakespeare" / "input.txt").exists()


def test_offline_raises_corpus_not_found_saying_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIRNN_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr(corpus_mod, "SHIPPED", {})  # an install without the shipped copy

    def offline(url):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(corpus_mod, "_fetch", offline)
    with pytest.raises(FileNotFoundError) as e:
        resolve_corpus("tinyshakespeare", cache_dir=tmp_path / "cache")
    assert isinstance(e.value, CorpusNotFound)
    msg = str(e.value)
    assert str(tmp_path / "empty" / "tinyshakespeare") in msg
    assert str(tmp_path / "cache" / "tinyshakespeare") in msg
    assert "MINIRNN_DATA" in msg and "tinyshakespeare/input.txt" in msg
    assert "offline" in msg and "Name or service not known" in msg


def test_the_shipped_copy_is_tiny_shakespeare_to_the_byte():
    """Its SHA-256 is the published one (DESIGN.md's table, and char-rnn's file)."""
    data = bz2.decompress(corpus_mod.SHIPPED["tinyshakespeare"].read_bytes())
    assert hashlib.sha256(data).hexdigest() == SHAKESPEARE_SHA256
    assert len(data.decode("utf-8")) == 1_115_394


def test_without_minirnn_data_or_network_the_shipped_copy_is_unpacked_into_the_cache(
        tmp_path, monkeypatch):
    monkeypatch.delenv("MINIRNN_DATA", raising=False)
    monkeypatch.setattr(corpus_mod, "_fetch", lambda url: pytest.fail("tried the network"))
    path = resolve_corpus("tinyshakespeare", cache_dir=tmp_path / "cache")
    assert path == tmp_path / "cache" / "tinyshakespeare" / "input.txt"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHAKESPEARE_SHA256
    assert os.listdir(path.parent) == ["input.txt"]  # no temporary file left behind


def test_a_damaged_shipped_copy_is_refused_and_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIRNN_DATA", str(tmp_path / "empty"))
    damaged = tmp_path / "ts.txt.bz2"
    damaged.write_bytes(bz2.compress(b"First Citizen:\nnot quite the text\n"))
    monkeypatch.setitem(corpus_mod.SHIPPED, "tinyshakespeare", damaged)
    with pytest.raises(CorpusNotFound, match="does not match its SHA-256"):
        resolve_corpus("tinyshakespeare", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "tinyshakespeare" / "input.txt").exists()


def test_ptb_is_never_shipped_and_keeps_its_message(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIRNN_DATA", str(tmp_path / "empty"))
    with pytest.raises(CorpusNotFound, match=r"no download address for 'ptb'.*ptb/ptb.train.txt"):
        resolve_corpus("ptb", cache_dir=tmp_path / "cache")


def test_an_unknown_name_is_not_found():
    with pytest.raises(CorpusNotFound, match="not a known corpus"):
        resolve_corpus("no-such-corpus")


# ---------------------------------------------------------------- loading and splitting

@needs_corpus('tinyshakespeare')
def test_load_corpus_splits_the_stream_90_10():
    c = load_corpus("tinyshakespeare")
    assert isinstance(c, Corpus) and c.level == "char" and c.name == "tinyshakespeare"
    n = 1_115_394
    assert len(c.train_ids) == n - n // 10 and len(c.val_ids) == n // 10
    assert c.train_ids.dtype == np.int32 and c.val_ids.dtype == np.int32
    assert len(c.vocab) == 65
    text = read_text(resolve_corpus("tinyshakespeare"))
    assert c.vocab.decode(c.train_ids) + c.vocab.decode(c.val_ids) == text


def test_char_vocab_covers_validation_text(tmp_path):
    path = _write(tmp_path / "t.txt", b"aaaaaaaaabbbbbbbbbz")  # 'z' only in the val part
    c = load_corpus(path, val_fraction=0.1)
    assert "z" in c.vocab
    assert c.vocab.decode(c.val_ids).endswith("z")


def test_word_level_vocab_comes_from_train_and_val_gets_unk(tmp_path):
    text = ("the cat sat on the mat\n" * 9) + "a zebra sat\n"
    path = _write(tmp_path / "w.txt", text.encode())
    c = load_corpus(path, level="word", val_fraction=0.1)
    assert c.level == "word" and c.name == "w.txt"
    assert "zebra" not in c.vocab
    assert c.vocab.decode(c.val_ids).split()[-3:] == ["<unk>", "sat", "<eos>"]
    total = len(words_with_eos(text))
    assert len(c.train_ids) + len(c.val_ids) == total
    assert len(c.val_ids) == total // 10


@needs_corpus('ptb')
def test_ptb_loads_at_word_level_with_eos(data_env):
    tokens = load_ptb("valid")
    assert tokens[:3] == ["consumers", "may", "want"]
    assert tokens.count("<eos>") == read_text(data_env / "ptb" / "ptb.valid.txt").count("\n")
    c = load_corpus("ptb", level="word")
    assert c.vocab.eos_id == 1 and (c.train_ids == 1).sum() == tokens.count("<eos>")
    assert len(c.train_ids) == len(tokens)
    assert c.note is not None and "ptb.train.txt" in c.note  # our copy has no train split
    assert len(c.val_ids) == len(load_ptb("test"))


def test_ptb_without_a_train_file_says_which_splits_exist():
    with pytest.raises(CorpusNotFound) as e:
        load_ptb("train")
    assert "ptb.valid.txt" in str(e.value) and "ptb.test.txt" in str(e.value)


def test_ptb_prefers_its_train_file_when_present(tmp_path):
    for split in ("train", "valid", "test"):
        _write(tmp_path / "ptb" / f"ptb.{split}.txt", f" {split} words here \n".encode())
    c = load_corpus(tmp_path / "ptb", level="word")
    assert c.note is None
    assert c.vocab.decode(c.train_ids) == "train words here <eos>"
    assert c.vocab.decode(c.val_ids) == "<unk> words here <eos>"


# ---------------------------------------------------------------- batching

def _check_batcher(ids, N, T, drop_last=False):
    b = StreamBatcher(ids, N, T, drop_last=drop_last)
    L = len(ids) // N
    batches = list(b)
    assert len(batches) == len(b) > 0
    for i, (x, y) in enumerate(batches):
        bx, by = b.batch(i)
        np.testing.assert_array_equal(x, bx)
        np.testing.assert_array_equal(y, by)
        assert x.shape == y.shape and x.shape[0] == N and 1 <= x.shape[1] <= T
        if drop_last or i < len(b) - 1:
            assert x.shape[1] == T
    xs = np.concatenate([x for x, _ in batches], axis=1)
    ys = np.concatenate([y for _, y in batches], axis=1)
    used = xs.shape[1]
    if not drop_last:
        assert used == L - 1  # every (input, target) pair of every stream, once
    for k in range(N):
        np.testing.assert_array_equal(xs[k], ids[k * L : k * L + used])
        np.testing.assert_array_equal(ys[k], ids[k * L + 1 : k * L + used + 1])
    return b


def test_stream_batches_are_contiguous_streams_and_y_is_x_shifted():
    ids = np.arange(103, dtype=np.int32)
    b = _check_batcher(ids, 4, 7)
    assert b.stream_len == 25 and len(b) == 4  # 24 pairs per stream: 7 + 7 + 7 + 3
    x, y = b.batch(3)
    assert x.shape == (4, 3)
    np.testing.assert_array_equal(x[1], [46, 47, 48])
    np.testing.assert_array_equal(y[1], [47, 48, 49])
    assert x.dtype == np.int32 and x.flags.c_contiguous


def test_drop_last_gives_only_full_batches():
    b = _check_batcher(np.arange(103), 4, 7, drop_last=True)
    assert len(b) == 3
    assert all(x.shape == (4, 7) for x, _ in b)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 400), N=st.integers(1, 12), T=st.integers(1, 40), drop_last=st.booleans())
def test_stream_batcher_properties_hold_for_any_sizes(n, N, T, drop_last):
    ids = np.random.default_rng(n).integers(0, 50, size=n).astype(np.int32)
    if n // N < (T + 1 if drop_last else 2):
        with pytest.raises(ValueError, match=f"{n} tokens"):
            StreamBatcher(ids, N, T, drop_last=drop_last)
    else:
        _check_batcher(ids, N, T, drop_last)


def test_batch_index_out_of_range_raises_index_error():
    b = StreamBatcher(np.arange(50), 2, 5)
    with pytest.raises(IndexError, match="out of range"):
        b.batch(len(b))
    with pytest.raises(IndexError):
        b.batch(-1)


def test_too_short_a_corpus_names_its_length_batch_size_and_seq_len():
    with pytest.raises(ValueError) as e:
        StreamBatcher(np.arange(10), 8, 4)
    msg = str(e.value)
    assert "10 tokens" in msg and "batch_size=8" in msg and "seq_len=4" in msg
    assert "at least 16 tokens" in msg
    with pytest.raises(ValueError, match="at least 40 tokens"):
        StreamBatcher(np.arange(30), 8, 4, drop_last=True)


def test_stream_batcher_refuses_bad_arguments():
    with pytest.raises(TypeError, match="batch_size"):
        StreamBatcher(np.arange(10), 2.0, 3)
    with pytest.raises(ValueError, match="seq_len"):
        StreamBatcher(np.arange(10), 2, 0)
    with pytest.raises(TypeError, match="integers"):
        StreamBatcher(np.arange(10.0), 2, 3)
    with pytest.raises(ValueError, match="1-D"):
        StreamBatcher(np.zeros((2, 5), dtype=np.int32), 2, 3)


def test_shrink_to_fit_leaves_a_corpus_that_fits_alone():
    assert shrink_to_fit(10_000, 16, 50) == (16, 50, None)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(2, 3000), N=st.integers(1, 128), T=st.integers(1, 300))
def test_shrink_to_fit_always_leaves_one_full_batch(n, N, T):
    new_N, new_T, message = shrink_to_fit(n, N, T)
    assert 1 <= new_N <= N and 1 <= new_T <= T
    assert (message is None) == ((new_N, new_T) == (N, T))
    b = StreamBatcher(np.arange(n), new_N, new_T, drop_last=True)
    assert len(b) >= 1 and b.batch(0)[0].shape == (new_N, new_T)


def test_shrink_to_fit_keeps_seq_len_before_batch_size():
    N, T, message = shrink_to_fit(1000, 64, 100)
    assert (N, T) == (9, 100)
    assert "1000 tokens" in message and "batch_size 64 -> 9" in message
    N, T, message = shrink_to_fit(50, 64, 100)
    assert (N, T) == (1, 49) and "seq_len 100 -> 49" in message
    with pytest.raises(ValueError, match="1 tokens"):
        shrink_to_fit(1, 4, 4)
