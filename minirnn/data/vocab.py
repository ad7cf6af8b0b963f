"""Vocabularies: text <-> int32 token ids, for characters and for words.

Both vocabularies sort their symbols, so the same text gives the same ids on every
run and every machine (a set's iteration order would not). Characters are Unicode
code points: "e" followed by a combining acute accent is two symbols, an emoji is one.

Both are stored in a checkpoint as the JSON-able dict of ``to_json()`` and come back
with ``vocab_from_json(d)``.
"""

from __future__ import annotations

from collections import Counter

# The data layer builds host arrays by design; the trainer moves them to the device.
import numpy as np

from .. import backend

__all__ = ["CharVocab", "WordVocab", "vocab_from_json", "words_with_eos"]

UNK = "<unk>"
EOS = "<eos>"


def _host_ids(owner, ids, size):
    """``ids`` (list, NumPy or device array, 0-d or 1-D) as a checked 1-D host int array."""
    a = backend.to_numpy(ids)
    if a.size == 0:
        return a.reshape(0).astype(np.int64)
    if a.ndim > 1:
        raise ValueError(f"{owner}.decode: ids must be 1-D (one sequence), got shape {a.shape}")
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{owner}.decode: ids must be integers, got dtype {a.dtype}")
    a = a.reshape(-1)
    bad = (a < 0) | (a >= size)
    if bad.any():
        raise ValueError(
            f"{owner}.decode: ids must lie in [0, {size}) for this vocabulary of {size} "
            f"symbols, got {a[bad][:10].tolist()}"
        )
    return a


def words_with_eos(text):
    """Split ``text`` into words on whitespace, with ``"<eos>"`` for each line break.

    ``"a b\\nc\\n"`` -> ``["a", "b", "<eos>", "c", "<eos>"]``; text after the last
    line break gets no ``<eos>``. This is the PTB convention.
    """
    lines = text.split("\n")
    tokens = []
    for k, line in enumerate(lines):
        tokens.extend(line.split())
        if k < len(lines) - 1:
            tokens.append(EOS)
    return tokens


class _Vocab:
    """What both vocabularies share: the symbol list, size, equality and JSON form."""

    kind = None

    @property
    def symbols(self):
        """The symbols in id order (a copy)."""
        return list(self._symbols)

    def __len__(self):
        return len(self._symbols)

    def __eq__(self, other):
        return type(other) is type(self) and other._symbols == self._symbols

    def __repr__(self):
        return f"{type(self).__name__}({len(self)} symbols)"

    def to_json(self):
        """A JSON-able dict that ``vocab_from_json`` turns back into this vocabulary."""
        return {"kind": self.kind, "symbols": list(self._symbols)}

    @classmethod
    def from_json(cls, d):
        _check_json(cls, d)
        return cls(d["symbols"])


def _no_repeats(owner, symbols):
    if len(set(symbols)) != len(symbols):
        dupes = sorted(s for s, c in Counter(symbols).items() if c > 1)
        raise ValueError(f"{owner}: symbols repeat: {', '.join(map(repr, dupes))}")


class CharVocab(_Vocab):
    """A character (Unicode code point) vocabulary; id i is ``symbols[i]``.

    ``encode`` refuses characters it does not know (a character model has no
    ``<unk>``): the error lists them.
    """

    kind = "char"

    def __init__(self, symbols):
        symbols = list(symbols)
        for s in symbols:
            if not isinstance(s, str) or len(s) != 1:
                raise ValueError(
                    f"CharVocab: every symbol must be one character (code point), got {s!r}"
                )
        _no_repeats("CharVocab", symbols)
        if not symbols:
            raise ValueError("CharVocab: needs at least one symbol (was the text empty?)")
        self._symbols = symbols
        cps = np.array([ord(s) for s in symbols], dtype=np.int64)
        # encode looks code points up by binary search: sorted code points and their ids.
        self._order = np.argsort(cps, kind="stable")
        self._sorted_cps = cps[self._order]
        self._cps = cps

    @classmethod
    def from_text(cls, text, max_size=10000):
        """The vocabulary of every distinct character in ``text``, sorted by code point.

        Raises ValueError when there are more than ``max_size`` (a sign of a huge
        alphabet or of binary data, better served by a word model or a cleaner corpus).
        """
        if not isinstance(text, str):
            raise TypeError(f"CharVocab.from_text: text must be str, got {type(text).__name__}")
        if not text:
            raise ValueError("CharVocab.from_text: the text is empty, nothing to build from")
        symbols = sorted(set(text))
        if max_size is not None and len(symbols) > max_size:
            raise ValueError(
                f"CharVocab.from_text: the text has {len(symbols):,} distinct characters, "
                f"more than max_size={max_size:,}. A character model over that many symbols "
                f"is mostly an output layer; train with --level word, raise the limit "
                f"(--max-vocab, max_vocab in Python), or clean the corpus (is it binary or "
                f"decoded with the wrong --encoding?)."
            )
        return cls(symbols)

    def __contains__(self, ch):
        return ch in self._symbols

    def extended(self, text, max_size=10000):
        """This vocabulary followed by the characters of ``text`` it lacks (sorted): every
        old id keeps its character, so a model trained on the old one can grow into it."""
        new = sorted(set(text) - set(self._symbols))
        if max_size is not None and len(self) + len(new) > max_size:
            raise ValueError(f"CharVocab.extended: {len(self):,} characters and {len(new):,} "
                             f"new ones are more than max_size={max_size:,} (--max-vocab)")
        return CharVocab(self._symbols + new)

    def encode(self, text):
        """``text`` -> (len(text),) int32 ids, one per code point."""
        if not isinstance(text, str):
            raise TypeError(f"CharVocab.encode: text must be str, got {type(text).__name__}")
        if not text:
            return np.zeros(0, dtype=np.int32)
        # surrogatepass: a lone surrogate is still one code point, never an encode crash.
        cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.int64)
        pos = np.searchsorted(self._sorted_cps, cps)
        pos_c = np.minimum(pos, len(self._sorted_cps) - 1)
        known = self._sorted_cps[pos_c] == cps
        if not known.all():
            unknown = sorted({chr(c) for c in cps[~known].tolist()})
            shown = ", ".join(repr(c) for c in unknown[:20])
            more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
            raise ValueError(
                f"CharVocab.encode: {len(unknown)} character(s) not in the vocabulary of "
                f"{len(self)}: {shown}{more}"
            )
        return self._order[pos_c].astype(np.int32)

    def decode(self, ids):
        """ids (sequence of ints, 1-D) -> the string they stand for."""
        a = _host_ids("CharVocab", ids, len(self))
        if a.size == 0:
            return ""
        return self._cps[a].astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")


class WordVocab(_Vocab):
    """A word vocabulary with ``<unk>`` (id 0) and ``<eos>`` (id 1), then words sorted.

    Words are whitespace-separated; a line break is the ``<eos>`` token. Words not in
    the vocabulary encode to ``<unk>``; ``decode`` joins words with single spaces.
    """

    kind = "word"
    unk = UNK
    eos = EOS

    def __init__(self, symbols):
        symbols = list(symbols)
        if symbols[:2] != [UNK, EOS]:
            raise ValueError(
                f"WordVocab: symbols must start with {UNK!r}, {EOS!r}, got {symbols[:2]!r}"
            )
        for s in symbols:
            if not isinstance(s, str) or not s or s != s.strip() or len(s.split()) != 1:
                raise ValueError(f"WordVocab: every symbol must be one word, no spaces; got {s!r}")
        _no_repeats("WordVocab", symbols)
        self._symbols = symbols
        self._index = {s: i for i, s in enumerate(symbols)}

    @classmethod
    def from_tokens(cls, tokens, max_size=None):
        """The vocabulary of a token list.

        ``max_size`` (counting ``<unk>`` and ``<eos>``) keeps the most frequent words,
        ties broken alphabetically; the kept words are then sorted for their ids.
        """
        counts = Counter(tokens)
        counts.pop(UNK, None)
        counts.pop(EOS, None)
        words = sorted(counts)
        if max_size is not None:
            if max_size < 2:
                raise ValueError(
                    f"WordVocab: max_size must be at least 2 (for {UNK} and {EOS}), got {max_size}"
                )
            if len(words) > max_size - 2:
                ranked = sorted(words, key=lambda w: (-counts[w], w))
                words = sorted(ranked[: max_size - 2])
        return cls([UNK, EOS] + words)

    @classmethod
    def from_text(cls, text, max_size=None):
        """The vocabulary of ``text`` split into words (see ``words_with_eos``)."""
        if not isinstance(text, str):
            raise TypeError(f"WordVocab.from_text: text must be str, got {type(text).__name__}")
        return cls.from_tokens(words_with_eos(text), max_size)

    @property
    def unk_id(self):
        return 0

    @property
    def eos_id(self):
        return 1

    def __contains__(self, word):
        return word in self._index

    def extended(self, tokens, max_size=None):
        """This vocabulary followed by the most frequent words of ``tokens`` it lacks, up
        to ``max_size`` in all: every old id keeps its word."""
        counts = Counter(t for t in tokens if t not in self._index)
        ranked = sorted(counts, key=lambda w: (-counts[w], w))
        room = len(ranked) if max_size is None else max(0, max_size - len(self))
        return WordVocab(self._symbols + sorted(ranked[:room]))

    def encode_tokens(self, tokens):
        """A list of words -> int32 ids; unknown words become ``<unk>``."""
        get = self._index.get
        return np.fromiter((get(t, 0) for t in tokens), dtype=np.int32, count=len(tokens))

    def encode(self, text):
        """``text`` -> int32 ids of its words, ``<eos>`` at each line break."""
        if not isinstance(text, str):
            raise TypeError(f"WordVocab.encode: text must be str, got {type(text).__name__}")
        return self.encode_tokens(words_with_eos(text))

    def decode(self, ids):
        """ids -> the words joined by single spaces (``<eos>`` stays a word)."""
        a = _host_ids("WordVocab", ids, len(self))
        return " ".join(self._symbols[i] for i in a.tolist())


def _check_json(cls, d):
    if not isinstance(d, dict) or "symbols" not in d or not isinstance(d["symbols"], list):
        raise ValueError(
            f"{cls.__name__}.from_json: expected a dict with a 'symbols' list, got {d!r:.200}"
        )
    if d.get("kind", cls.kind) != cls.kind:
        raise ValueError(
            f"{cls.__name__}.from_json: this is a {d['kind']!r} vocabulary, not {cls.kind!r}"
        )


def vocab_from_json(d):
    """The CharVocab or WordVocab stored by ``to_json()`` (chosen by its ``kind``)."""
    kinds = {"char": CharVocab, "word": WordVocab}
    kind = d.get("kind") if isinstance(d, dict) else None
    if kind not in kinds:
        raise ValueError(f"vocab_from_json: 'kind' must be 'char' or 'word', got {kind!r}")
    return kinds[kind].from_json(d)
