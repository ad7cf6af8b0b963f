"""Synthetic sequence-to-sequence tasks, generated in code, for an encoder-decoder with attention.

Each task is a stream of ``(source, target)`` string pairs:

- ``dates``: a date written the way people write dates -> ``YYYY-MM-DD``, e.g.
  ``"Tuesday, March 3, 2020"`` -> ``"2020-03-03"``. The date is uniform over
  1950-01-01 .. 2049-12-31, its format uniform over ``DATE_FORMATS`` (17 of them).
- ``reverse``: 1..12 lowercase letters -> the letters reversed (``"abc"`` -> ``"cba"``).
- ``sort``: 1..12 digits -> the digits in ascending order (``"3141"`` -> ``"1134"``).

    data = TaskData("dates", n_train=20_000)
    batch = data.batch(step, 64, seed=0)                 # epoch after epoch, by step
    batch["src"], batch["tgt_in"], batch["tgt_out"]      # (N, S), (N, T), (N, T) int32
    exact_match(predicted_strings, [t for _, t in data.test_pairs])

Date conventions, chosen so that no source is ambiguous:

- All-numeric forms put the day before the month (``03/04/2020`` is 3 April 2020) or
  are in ISO order with the four-digit year first (``2020.04.03``). The US month-first
  numeric order is never produced.
- A two-digit year ``yy`` is ``19yy`` for 50..99 and ``20yy`` for 00..49 (pivot 50), which
  maps the century of dates one-to-one.
- Month and weekday names are English and hard-coded (never the locale); a weekday is
  always the true weekday of the date.

Host-side by design, like the rest of ``minirnn.data``: every array is a NumPy array.
"""

from __future__ import annotations

import datetime as _dt
import functools
import string
from itertools import islice

# The data layer builds host arrays by design; the trainer moves them to the device.
import numpy as np

from .vocab import _host_ids, _Vocab

__all__ = [
    "TASKS", "DATE_FORMATS", "format_date", "make_pairs", "Seq2SeqVocab", "encode_batch",
    "TaskData", "exact_match",
]

TASKS = ("dates", "reverse", "sort")

PAD, SOS, EOS = "<pad>", "<sos>", "<eos>"
TEST_SEED_OFFSET = 10_000  # the held-out stream of seed s is the stream of seed s + 10_000
MAX_LEN = 12               # longest reverse/sort source
_BLOCK = 1024              # samples drawn per block: fixed, so make_pairs(n)[:k] == make_pairs(k)

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FIRST_DATE, LAST_DATE = _dt.date(1950, 1, 1), _dt.date(2049, 12, 31)

# (name, template, case). In a name, the case of a word shows the case it is written in;
# d/m are unpadded numbers, dd/mm zero-padded, Dth a day with its ordinal suffix.
_DATE_TEMPLATES = (
    ("wkd d month yyyy", "{wkd} {d} {month} {yyyy}", str.lower),         # tue 3 march 2020
    ("dd/mm/yy", "{dd}/{mm}/{yy}", None),                                # 03/03/20
    ("Month Dth, yyyy", "{month} {dth}, {yyyy}", None),                  # March 3rd, 2020
    ("d Mon yyyy", "{d} {mon} {yyyy}", None),                            # 3 Mar 2020
    ("yyyy.mm.dd", "{yyyy}.{mm}.{dd}", None),                            # 2020.03.03
    ("Dth of Month, yyyy", "{dth} of {month}, {yyyy}", None),            # 3rd of March, 2020
    ("Weekday, Month d, yyyy", "{weekday}, {month} {d}, {yyyy}", None),  # Tuesday, March 3, 2020
    ("d/m/yyyy", "{d}/{m}/{yyyy}", None),                                # 3/3/2020
    ("MON dd yyyy", "{mon} {dd} {yyyy}", str.upper),                     # MAR 03 2020
    ("month d yyyy", "{month} {d} {yyyy}", str.lower),                   # march 3 2020
    ("Wkd, dd Mon yyyy", "{wkd}, {dd} {mon} {yyyy}", None),              # Tue, 03 Mar 2020
    ("d-Mon-yy", "{d}-{mon}-{yy}", None),                                # 3-Mar-20
    ("WEEKDAY d MONTH yyyy", "{weekday} {d} {month} {yyyy}", str.upper),  # TUESDAY 3 MARCH 2020
    ("dd.mm.yyyy", "{dd}.{mm}.{yyyy}", None),                            # 03.03.2020
    ("yyyymmdd", "{yyyy}{mm}{dd}", None),                                # 20200303
    ("the Dth of month yyyy", "the {dth} of {month} {yyyy}", str.lower),  # the 3rd of march 2020
    ("Weekday Dth Month yyyy", "{weekday} {dth} {month} {yyyy}", None),  # Tuesday 3rd March 2020
)
DATE_FORMATS = tuple(name for name, _, _ in _DATE_TEMPLATES)
_FORMAT_INDEX = {name: k for k, name in enumerate(DATE_FORMATS)}


def _ordinal(day):
    """3 -> "3rd"; 11, 12, 13 take "th" like every teen."""
    if 11 <= day % 100 <= 13:
        return f"{day}th"
    return f"{day}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(day % 10, 'th') }"


def _render(day, k):
    """The date ``day`` in format number ``k`` of ``_DATE_TEMPLATES``."""
    _, template, case = _DATE_TEMPLATES[k]
    month, weekday = MONTHS[day.month - 1], WEEKDAYS[day.weekday()]
    text = template.format(
        d=day.day, dd=f"{day.day:02d}", m=day.month, mm=f"{day.month:02d}",
        yyyy=f"{day.year:04d}", yy=f"{day.year % 100:02d}", month=month, mon=month[:3],
        weekday=weekday, wkd=weekday[:3], dth=_ordinal(day.day),
    )
    return case(text) if case else text


def format_date(day, fmt):
    """``day`` (a ``datetime.date`` in 1950..2049) written in the format named ``fmt``.

    ``format_date(date(2020, 3, 3), "Month Dth, yyyy")`` -> ``"March 3rd, 2020"``.
    """
    if not isinstance(day, _dt.date):
        raise TypeError(f"format_date: day must be a datetime.date, got {type(day).__name__}")
    if isinstance(day, _dt.datetime):
        day = day.date()
    if not FIRST_DATE <= day <= LAST_DATE:
        raise ValueError(
            f"format_date: day must lie in {FIRST_DATE}..{LAST_DATE} (two-digit years map "
            f"into that century), got {day}")
    if fmt not in _FORMAT_INDEX:
        raise ValueError(
            f"format_date: unknown format {fmt!r}; the formats are {', '.join(DATE_FORMATS)}")
    return _render(day, _FORMAT_INDEX[fmt])


# ---------------------------------------------------------------- pair streams

def _date_stream(rng):
    lo, hi = FIRST_DATE.toordinal(), LAST_DATE.toordinal()
    while True:
        days = rng.integers(lo, hi + 1, size=_BLOCK).tolist()
        fmts = rng.integers(0, len(_DATE_TEMPLATES), size=_BLOCK).tolist()
        for o, k in zip(days, fmts):
            day = _dt.date.fromordinal(o)
            yield _render(day, k), day.isoformat()


def _string_stream(rng, alphabet, target_of):
    while True:
        lengths = rng.integers(1, MAX_LEN + 1, size=_BLOCK).tolist()
        codes = rng.integers(0, len(alphabet), size=(_BLOCK, MAX_LEN)).tolist()
        for n, row in zip(lengths, codes):
            source = "".join([alphabet[c] for c in row[:n]])
            yield source, target_of(source)


def _stream(task, seed):
    """The endless, seeded stream of ``task``'s pairs."""
    rng = np.random.default_rng(seed)
    if task == "dates":
        return _date_stream(rng)
    if task == "reverse":
        return _string_stream(rng, string.ascii_lowercase, lambda s: s[::-1])
    return _string_stream(rng, string.digits, lambda s: "".join(sorted(s)))


def _check_task(owner, task):
    if not isinstance(task, str) or task not in TASKS:
        raise ValueError(f"{owner}: unknown task {task!r}; the tasks are {', '.join(TASKS)}")


def _check_int(owner, name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{owner}: {name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be at least {minimum}, got {value}")
    return int(value)


def make_pairs(task, n, seed=0):
    """``n`` (source, target) string pairs of ``task``, the same for the same (task, n, seed).

    A shorter list is a prefix of a longer one: ``make_pairs(t, k, s) ==
    make_pairs(t, n, s)[:k]`` for k <= n.
    """
    _check_task("make_pairs", task)
    n = _check_int("make_pairs", "n", n, 1)
    seed = _check_int("make_pairs", "seed", seed, 0)
    return list(islice(_stream(task, seed), n))


# ---------------------------------------------------------------- vocabulary

@functools.lru_cache(maxsize=None)
def _task_chars(task):
    """Every character a source or target of ``task`` can hold, sorted."""
    if task == "reverse":
        return string.ascii_lowercase
    if task == "sort":
        return string.digits
    # A date source is made of month and weekday names, day numbers with their ordinal
    # suffixes, digits and each format's punctuation: every day of a leap year, written
    # in every format, meets all of them (the years add only digits).
    chars = set(string.digits + "-")
    start = _dt.date(2020, 1, 1).toordinal()
    for o in range(start, start + 366):
        day = _dt.date.fromordinal(o)
        for k in range(len(_DATE_TEMPLATES)):
            chars.update(_render(day, k))
    return "".join(sorted(chars))


class Seq2SeqVocab(_Vocab):
    """Characters <-> ids for a source and a target sharing one vocabulary.

    Ids 0, 1, 2 are ``<pad>``, ``<sos>``, ``<eos>``; then the characters sorted by code
    point. ``encode`` maps characters only (no ``<sos>``/``<eos>``, which
    ``encode_batch`` adds); ``decode`` stops at the first ``<eos>`` and skips
    ``<pad>``/``<sos>``, so a decoder's raw output decodes to its answer.
    """

    kind = "seq2seq"

    def __init__(self, chars):
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(
                    f"Seq2SeqVocab: every character must be one code point, got {c!r}")
        if len(set(chars)) != len(chars):
            dupes = sorted({c for c in chars if chars.count(c) > 1})
            raise ValueError(f"Seq2SeqVocab: characters repeat: {', '.join(map(repr, dupes))}")
        if not chars:
            raise ValueError("Seq2SeqVocab: needs at least one character")
        self._symbols = [PAD, SOS, EOS] + sorted(chars)
        self._index = {c: i for i, c in enumerate(self._symbols) if i >= 3}
        self._cps = np.array([ord(c) for c in self._symbols[3:]], dtype="<u4")  # sorted

    @classmethod
    def for_task(cls, task):
        """The fixed vocabulary of every character ``task`` can produce, source and target."""
        _check_task("Seq2SeqVocab.for_task", task)
        return cls(_task_chars(task))

    @property
    def pad_id(self):
        return 0

    @property
    def sos_id(self):
        return 1

    @property
    def eos_id(self):
        return 2

    def __contains__(self, ch):
        return ch in self._index

    def __repr__(self):
        return f"Seq2SeqVocab({len(self) - 3} characters + <pad>, <sos>, <eos>)"

    def encode(self, text):
        """``text`` (non-empty str) -> (len(text),) int32 ids, one per character."""
        if not isinstance(text, str):
            raise TypeError(f"Seq2SeqVocab.encode: text must be str, got {type(text).__name__}")
        if not text:
            raise ValueError("Seq2SeqVocab.encode: the text is empty; a sequence needs at "
                             "least one character")
        ids, unknown = self._lookup(text)
        if unknown:
            raise ValueError(f"Seq2SeqVocab.encode: {self._unknown_message(unknown)}")
        return ids

    def _lookup(self, text):
        """``text`` -> (int32 ids, sorted unknown characters); ids of unknowns are junk."""
        # One vectorised lookup for a whole batch: code points, then binary search.
        cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        pos = np.minimum(np.searchsorted(self._cps, cps), len(self._cps) - 1)
        known = self._cps[pos] == cps
        unknown = [] if known.all() else sorted({chr(c) for c in cps[~known].tolist()})
        return (pos + 3).astype(np.int32), unknown

    def _unknown_message(self, unknown):
        return (f"{len(unknown)} character(s) not in the vocabulary of {len(self)}: "
                f"{', '.join(map(repr, unknown))}")

    def decode(self, ids):
        """1-D ids -> the string up to the first ``<eos>``, ``<pad>`` and ``<sos>`` skipped."""
        a = _host_ids("Seq2SeqVocab", ids, len(self))
        stop = np.flatnonzero(a == self.eos_id)
        if stop.size:
            a = a[: stop[0]]
        return "".join([self._symbols[i] for i in a.tolist() if i >= 3])

    @classmethod
    def from_json(cls, d):
        if (not isinstance(d, dict) or d.get("kind") != cls.kind
                or not isinstance(d.get("symbols"), list)):
            raise ValueError(
                f"Seq2SeqVocab.from_json: expected {{'kind': 'seq2seq', 'symbols': [...]}}, "
                f"got {d!r:.200}")
        if d["symbols"][:3] != [PAD, SOS, EOS]:
            raise ValueError(f"Seq2SeqVocab.from_json: symbols must start with {PAD!r}, "
                             f"{SOS!r}, {EOS!r}, got {d['symbols'][:3]!r}")
        return cls(d["symbols"][3:])


# ---------------------------------------------------------------- batches

def encode_batch(vocab, pairs):
    """(source, target) pairs -> a dict of padded host arrays for teacher forcing.

    Returns ``src (N, S) int32`` padded with ``pad_id``, ``src_mask (N, S) bool`` (True on
    real characters), ``tgt_in (N, T) int32`` = ``<sos>`` + target, ``tgt_out (N, T) int32``
    = target + ``<eos>``, ``tgt_mask (N, T) bool`` (True where ``tgt_out`` counts in the
    loss). S and T are this batch's longest source and longest target + 1.
    """
    if not isinstance(vocab, Seq2SeqVocab):
        raise TypeError(f"encode_batch: vocab must be a Seq2SeqVocab, got {type(vocab).__name__}")
    pairs = list(pairs)
    if not pairs:
        raise ValueError("encode_batch: pairs is empty, nothing to encode")
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, tuple) and len(pair) == 2
                and isinstance(pair[0], str) and isinstance(pair[1], str)):
            raise TypeError(f"encode_batch: pair {i} must be a (source, target) tuple of two "
                            f"str, got {pair!r:.100}")
    src_ids, src_len = _encode_column(vocab, [p[0] for p in pairs], "source")
    tgt_ids, tgt_len = _encode_column(vocab, [p[1] for p in pairs], "target")
    N, S, T = len(pairs), int(src_len.max()), int(tgt_len.max()) + 1  # T: <sos>/<eos> + target
    src_mask = np.arange(S) < src_len[:, None]                          # (N, S)
    body = np.arange(T) < tgt_len[:, None]                              # (N, T), target only
    # A mask's True cells, read row by row, are exactly the ids laid end to end.
    src = np.full((N, S), vocab.pad_id, dtype=np.int32)
    src[src_mask] = src_ids
    tgt_out = np.full((N, T), vocab.pad_id, dtype=np.int32)
    tgt_out[body] = tgt_ids
    tgt_out[np.arange(N), tgt_len] = vocab.eos_id
    tgt_in = np.full((N, T), vocab.pad_id, dtype=np.int32)
    tgt_in[:, 0] = vocab.sos_id
    tgt_in[:, 1:][body[:, :-1]] = tgt_ids
    return {"src": src, "src_mask": src_mask, "tgt_in": tgt_in, "tgt_out": tgt_out,
            "tgt_mask": np.arange(T) <= tgt_len[:, None]}


def _encode_column(vocab, texts, part):
    """Sources (or targets) -> (all their ids end to end, (N,) lengths), refusing bad ones."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    if not lengths.all():
        i = int(np.argmin(lengths))
        raise ValueError(f"encode_batch: pair {i} has an empty {part}; every source and "
                         f"target needs at least one character")
    ids, unknown = vocab._lookup("".join(texts))
    if unknown:
        first = next(i for i, t in enumerate(texts) if any(c not in vocab for c in t))
        raise ValueError(f"encode_batch: {part}s hold {vocab._unknown_message(unknown)} "
                         f"(the first in pair {first}, {part} {texts[first]!r})")
    return ids, lengths


class TaskData:
    """A task's training pairs, its fixed held-out test pairs, vocabulary and batches.

    ``train_pairs`` is ``make_pairs(task, n_train, seed)``. ``test_pairs`` is the first
    ``n_test`` pairs of the stream of seed ``seed + 10_000`` whose source is not a training
    source, so the same arguments always give the same test set and no test source was
    seen in training. (For reverse and sort, the few very short strings are mostly taken
    by a large training set, so the test set leans to longer strings.)
    """

    def __init__(self, task, n_train, n_test=1000, seed=0):
        _check_task("TaskData", task)
        n_train = _check_int("TaskData", "n_train", n_train, 1)
        n_test = _check_int("TaskData", "n_test", n_test, 1)
        seed = _check_int("TaskData", "seed", seed, 0)
        self.task, self.seed = task, seed
        self.vocab = Seq2SeqVocab.for_task(task)
        self.train_pairs = make_pairs(task, n_train, seed)
        self.test_pairs = self._held_out(n_test)
        # Encoded once, padded to the longest pair; a batch is a slice trimmed to its own.
        self._train = encode_batch(self.vocab, self.train_pairs)
        self._src_len = self._train["src_mask"].sum(axis=1)
        self._tgt_len = self._train["tgt_mask"].sum(axis=1)

    def _held_out(self, n_test):
        seen = {s for s, _ in self.train_pairs}
        budget = 100 * n_test + 100_000  # far beyond need unless training holds ~every source
        fresh = (p for p in islice(_stream(self.task, self.seed + TEST_SEED_OFFSET), budget)
                 if p[0] not in seen)
        pairs = list(islice(fresh, n_test))
        if len(pairs) < n_test:
            raise ValueError(
                f"TaskData: found only {len(pairs)} of n_test={n_test} test pairs whose source "
                f"is not in the {len(self.train_pairs)} training pairs; the training set "
                f"covers nearly every {self.task!r} source, use a smaller n_train or n_test")
        return pairs

    def __repr__(self):
        return (f"TaskData({self.task!r}, n_train={len(self.train_pairs)}, "
                f"n_test={len(self.test_pairs)}, seed={self.seed})")

    def batch(self, step, batch_size, seed=0):
        """Training batch number ``step`` (0, 1, ...): an ``encode_batch`` dict of
        ``batch_size`` pairs, trimmed to its own longest source and target.

        Epoch ``e`` is the permutation of the training pairs drawn by
        ``default_rng([seed, e])``, cut into ``n_train // batch_size`` full batches (the
        last ``n_train % batch_size`` of each permutation sit that epoch out). A batch is
        a function of ``(step, batch_size, seed)`` alone, so a resumed run reads exactly
        the batches an uninterrupted one would.
        """
        n = len(self.train_pairs)
        batch_size = _check_int("TaskData.batch", "batch_size", batch_size, 1)
        if batch_size > n:
            raise ValueError(f"TaskData.batch: batch_size={batch_size} is more than the "
                             f"{n} training pairs")
        epoch, k = divmod(_check_int("TaskData.batch", "step", step, 0), n // batch_size)
        if getattr(self, "_epoch", None) != (seed, epoch):
            self._epoch = (seed, epoch)
            self._order = np.random.default_rng([seed, epoch]).permutation(n)
        idx = self._order[k * batch_size:(k + 1) * batch_size]
        S, T = int(self._src_len[idx].max()), int(self._tgt_len[idx].max())
        return {key: a[idx, : (S if key.startswith("src") else T)]
                for key, a in self._train.items()}


def exact_match(predictions, targets):
    """The fraction of ``predictions`` equal to their ``targets`` (lists of str, same length)."""
    predictions, targets = list(predictions), list(targets)
    if len(predictions) != len(targets):
        raise ValueError(f"exact_match: {len(predictions)} predictions for {len(targets)} "
                         f"targets; they must pair up")
    if not targets:
        raise ValueError("exact_match: no targets to score")
    return sum(p == t for p, t in zip(predictions, targets)) / len(targets)
