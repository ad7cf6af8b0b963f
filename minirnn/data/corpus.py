"""Finding, reading and splitting corpora.

A corpus is named (``tinyshakespeare``, ``ptb``) or given as a path. A name is
looked for in ``$MINIRNN_DATA/<name>/``, then in the user cache
(``$XDG_CACHE_HOME/minirnn/<name>/``, default ``~/.cache/minirnn/<name>/``), then
taken from the copy shipped inside the package (tiny Shakespeare, 1.1 MB, stored
bz2-compressed in ``minirnn/data/shipped/`` as scikit-learn ships its toy datasets, so
that a fresh machine trains offline), else downloaded from its canonical address; a
shipped or downloaded copy is checked against its SHA-256 and written into the cache.
PTB is never shipped or downloaded: point ``MINIRNN_DATA`` at it.
"""

from __future__ import annotations

import bz2
import codecs
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# The data layer builds host arrays by design; the trainer moves them to the device.
import numpy as np

from .vocab import CharVocab, WordVocab, words_with_eos

__all__ = [
    "CorpusNotFound", "Corpus", "KNOWN_CORPORA", "resolve_corpus", "read_text",
    "load_ptb", "load_corpus",
]

KNOWN_CORPORA = ("tinyshakespeare", "ptb")

# Where a named corpus can be downloaded from, and the SHA-256 its bytes must have.
# PTB has no entry: its training file has no address and checksum we can vouch for.
_URLS = {
    "tinyshakespeare":
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
}
_SHA256 = {
    "tinyshakespeare": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
}
_FILES = {"tinyshakespeare": "input.txt"}
# Corpora that ship inside the package, compressed (their SHA-256 is that of _SHA256).
SHIPPED = {"tinyshakespeare": Path(__file__).with_name("shipped") / "tinyshakespeare.txt.bz2"}
PTB_SPLITS = ("train", "valid", "test")


class CorpusNotFound(FileNotFoundError):
    """A corpus is not at the given path, under MINIRNN_DATA or in the cache, nor downloadable."""


def _fetch(url):
    """The bytes at ``url`` (the one place that touches the network; tests replace it)."""
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def _data_dirs():
    """The folders named by $MINIRNN_DATA (os.pathsep-separated), in order."""
    value = os.environ.get("MINIRNN_DATA", "")
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p]


def _cache_root(cache_dir=None):
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "minirnn"


def _ptb_files(folder):
    return {s: folder / f"ptb.{s}.txt" for s in PTB_SPLITS if (folder / f"ptb.{s}.txt").is_file()}


def _in_folder(name, folder):
    """The corpus ``name`` inside ``folder`` (the file, or the PTB folder), or None."""
    if name == "ptb":
        return folder if _ptb_files(folder) else None
    path = folder / _FILES[name]
    return path if path.is_file() else None


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _write_atomically(path, data):
    """Write ``data`` to ``path`` so that a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _download(name, target):
    """Fetch ``name`` into ``target``; returns None, or a sentence saying what failed."""
    url = _URLS[name]
    try:
        data = _fetch(url)
    except (urllib.error.URLError, OSError) as e:  # offline, DNS, timeout, HTTP error
        return f"the download from {url} failed, perhaps offline ({e})"
    got, want = _sha256(data), _SHA256[name]
    if got != want:
        return (
            f"the download from {url} has SHA-256 {got}, expected {want} "
            f"(truncated or changed upstream); nothing was written"
        )
    try:
        _write_atomically(target, data)
    except OSError as e:
        return f"the download from {url} succeeded but writing {target} failed ({e})"
    return None


def resolve_corpus(name_or_path, cache_dir=None, download=True):
    """The file of a corpus (for ``ptb``: the folder holding ``ptb.*.txt``).

    Looks, in order, at: ``name_or_path`` as an existing path; for a known name,
    ``$MINIRNN_DATA/<name>/``, then ``<cache>/<name>/`` (``cache_dir``, default
    ``$XDG_CACHE_HOME/minirnn`` or ``~/.cache/minirnn``), then the copy shipped in the
    package, then the canonical address when ``download`` is true (a shipped or
    downloaded copy is SHA-256 checked and written atomically into the cache). An
    existing folder is accepted if it holds ``input.txt`` (returned) or ``ptb.*.txt``.

    Raises CorpusNotFound (a FileNotFoundError) saying where it looked and what failed.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            f"resolve_corpus: expected a corpus name or a path, got {type(name_or_path).__name__}"
        )
    path = Path(name_or_path).expanduser()
    if path.exists():
        return _existing_path(path)
    name = str(name_or_path)
    if name not in KNOWN_CORPORA:
        raise CorpusNotFound(
            f"no file {str(path)!r}, and {name!r} is not a known corpus name "
            f"({', '.join(KNOWN_CORPORA)})"
        )
    looked = [d / name for d in _data_dirs()] + [_cache_root(cache_dir) / name]
    for folder in looked:
        found = _in_folder(name, folder)
        if found is not None:
            return found
    target = looked[-1] / _FILES.get(name, "")
    failed = _unpack_shipped(name, target)
    if failed is None:
        return target
    failed = _download_if_allowed(name, target, download) if failed == "not shipped" else failed
    if failed is None:
        return target
    raise CorpusNotFound(_not_found_message(name, looked, failed))


def _existing_path(path):
    if path.is_file():
        return path
    if (path / "input.txt").is_file():
        return path / "input.txt"
    if _ptb_files(path):
        return path
    raise CorpusNotFound(f"{path} is a folder without an input.txt or ptb.{{train,valid,test}}.txt; "
                         f"give the path of the text file itself")


def _unpack_shipped(name, target):
    """Decompress the shipped copy of ``name`` into ``target``; None, "not shipped", or
    a sentence saying what failed."""
    if name not in SHIPPED or not SHIPPED[name].is_file():
        return "not shipped"
    data = bz2.decompress(SHIPPED[name].read_bytes())
    if _sha256(data) != _SHA256[name]:
        return f"the copy shipped in {SHIPPED[name]} does not match its SHA-256"
    try:
        _write_atomically(target, data)
    except OSError as e:
        return f"writing the shipped copy to {target} failed ({e})"
    return None


def _download_if_allowed(name, target, download):
    if name not in _URLS:
        return f"there is no download address for {name!r}"
    if not download:
        return "downloading was turned off"
    return _download(name, target)


def _not_found_message(name, looked, failed):
    want = "ptb/ptb.train.txt (and ptb.valid.txt, ptb.test.txt)" if name == "ptb" \
        else f"{name}/{_FILES[name]}"
    data_dirs = _data_dirs()
    env = (f"MINIRNN_DATA={os.pathsep.join(map(str, data_dirs))}" if data_dirs
           else "MINIRNN_DATA is not set")
    return (f"corpus {name!r} not found. Looked in: {', '.join(map(str, looked))} ({env}); "
            f"then {failed}. Set MINIRNN_DATA to a folder holding {want}, "
            f"or pass the path of the file.")


# Byte-order marks, longest first (UTF-32-LE's begins with UTF-16-LE's).
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _wide_encoding(data):
    """The encoding a byte-order mark names (utf-16 or utf-32), else a guess from NUL
    bytes (UTF-16 text without a mark has one in every other byte), else None."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    sample = data[:4096]
    if len(sample) >= 8 and sample.count(0) >= len(sample) // 4:
        return "utf-16-le" if sample[1:2] == b"\x00" else "utf-16-be"
    return None


def read_text(path, encoding="utf-8"):
    """The text of a file, decoded with ``encoding`` (never the locale's default).

    "\\r\\n" becomes "\\n", and a leading byte-order mark is dropped. A file that is
    UTF-16 or UTF-32 (a byte-order mark says so, or NUL bytes give it away) is refused
    unless ``encoding`` is one of those, naming the encoding to pass: decoded as
    anything else it would be NUL characters and garbage. Raises ValueError with the
    byte offset of the first undecodable byte.
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"read_text: unknown encoding {encoding!r}; give a Python codec name "
                         f"such as 'utf-8', 'latin-1' or 'cp1252' (--encoding)") from None
    wide = _wide_encoding(data)
    if wide is not None and not codec.startswith(("utf-16", "utf-32")):
        raise ValueError(f"{path}: this is {wide.upper()} text (it starts with a byte-order "
                         f"mark or has NUL bytes throughout), not {encoding}; pass "
                         f"--encoding {wide} (encoding={wide!r} in Python)")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(
            f"{path}: not valid {encoding} at byte offset {e.start} (line {line}): "
            f"{e.reason}, byte(s) {data[e.start:e.end]!r}. If the file uses another "
            f"encoding, pass it (encoding='latin-1', or --encoding on the command line)."
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n")


def _ptb_split_path(split, root):
    if split not in PTB_SPLITS:
        raise ValueError(f"load_ptb: split must be one of {PTB_SPLITS}, got {split!r}")
    files = _ptb_files(root)
    if split not in files:
        have = ", ".join(p.name for p in files.values()) or "none"
        raise CorpusNotFound(
            f"{root / f'ptb.{split}.txt'} does not exist; this PTB folder holds only: {have}"
        )
    return files[split]


def load_ptb(split, root=None, encoding="utf-8"):
    """The tokens of a PTB split ('train', 'valid', 'test'), ``"<eos>"`` at each line end.

    ``root`` is the folder holding ``ptb.<split>.txt`` (default: ``resolve_corpus("ptb")``).
    """
    root = resolve_corpus("ptb") if root is None else Path(root)
    return words_with_eos(read_text(_ptb_split_path(split, root), encoding))


@dataclass
class Corpus:
    """A corpus as ids: ``train_ids`` and ``val_ids`` are 1-D int32 host arrays."""

    train_ids: np.ndarray
    val_ids: np.ndarray
    vocab: CharVocab | WordVocab
    level: str
    name: str
    path: Path | None = None
    note: str | None = None

    @property
    def vocab_size(self):
        return len(self.vocab)


def _split_point(n, val_fraction):
    """Number of training tokens: the first (1 - val_fraction) of n, at least one of each."""
    n_val = int(n * val_fraction)
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    return n - n_val


def _char_vocab(text, max_vocab, base):
    return CharVocab.from_text(text, max_size=max_vocab) if base is None \
        else base.extended(text, max_size=max_vocab)


def _word_vocab(tokens, max_vocab, base):
    return WordVocab.from_tokens(tokens, max_size=max_vocab) if base is None \
        else base.extended(tokens, max_size=max_vocab)


def load_corpus(name_or_path, level="char", val_fraction=0.1, encoding="utf-8", max_vocab=10000,
                base_vocab=None):
    """Read, tokenise, build the vocabulary and split a corpus into train and validation.

    The split is char-rnn's: the first ``1 - val_fraction`` of the token stream trains,
    the rest validates (at least one token each when ``val_fraction > 0``). A char
    vocabulary is built from all the text (so validation has no unknown characters);
    a word vocabulary from the training part only (``max_vocab`` most frequent words),
    with ``<unk>`` for the rest. For ``ptb`` the files give the split: train on
    ptb.train.txt and validate on ptb.valid.txt; without ptb.train.txt, train on
    ptb.valid.txt and validate on ptb.test.txt, said in ``Corpus.note``.

    ``base_vocab``: a vocabulary to grow rather than build anew (fine-tuning a trained
    model on new text): its symbols keep their ids and the corpus's new ones follow.
    """
    if level not in ("char", "word"):
        raise ValueError(f"load_corpus: level must be 'char' or 'word', got {level!r}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"load_corpus: val_fraction must be in [0, 1), got {val_fraction!r}")
    path = resolve_corpus(name_or_path)
    name = str(name_or_path) if str(name_or_path) in KNOWN_CORPORA else Path(name_or_path).name
    if path.is_dir():  # a PTB folder: the files give the split
        return _load_ptb_folder(path, name, level, encoding, max_vocab, base_vocab)
    text = read_text(path, encoding)
    if not text:
        raise ValueError(f"load_corpus: {path} is empty ({path.stat().st_size} bytes, 0 "
                         f"characters); training needs at least 2 symbols (one input and "
                         f"its target)")
    if level == "char":
        vocab = _char_vocab(text, max_vocab, base_vocab)
        ids = vocab.encode(text)
    else:
        tokens = words_with_eos(text)
        if not tokens:
            raise ValueError(f"load_corpus: {path} holds no words")
        n_train = _split_point(len(tokens), val_fraction)
        vocab = _word_vocab(tokens[:n_train], max_vocab, base_vocab)
        ids = vocab.encode_tokens(tokens)
    n_train = _split_point(len(ids), val_fraction)
    return Corpus(ids[:n_train].copy(), ids[n_train:].copy(), vocab, level, name, path)


def _load_ptb_folder(path, name, level, encoding, max_vocab, base_vocab):
    """A PTB folder: train on ptb.train.txt and validate on ptb.valid.txt, or without the
    training file, train on ptb.valid.txt and validate on ptb.test.txt (said in a note)."""
    files, note = _ptb_files(path), None
    if "train" in files:
        train_file, val_file = files["train"], files.get("valid", files.get("test"))
    else:
        train_file, val_file = files.get("valid"), files.get("test")
        note = (f"no ptb.train.txt in {path}: training on ptb.valid.txt and validating on "
                f"ptb.test.txt (val_fraction is not used)")
    if train_file is None or val_file is None:
        have = ", ".join(p.name for p in files.values())
        raise CorpusNotFound(f"{path} holds only {have}; PTB needs two of train/valid/test")
    train_text, val_text = read_text(train_file, encoding), read_text(val_file, encoding)
    if level == "char":
        vocab = _char_vocab(train_text + val_text, max_vocab, base_vocab)
        train_ids, val_ids = vocab.encode(train_text), vocab.encode(val_text)
    else:
        train_tok, val_tok = words_with_eos(train_text), words_with_eos(val_text)
        vocab = _word_vocab(train_tok, max_vocab, base_vocab)
        train_ids, val_ids = vocab.encode_tokens(train_tok), vocab.encode_tokens(val_tok)
    return Corpus(train_ids, val_ids, vocab, level, name, path, note)
