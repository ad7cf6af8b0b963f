"""minirnn.data.tasks: the synthetic seq2seq tasks (dates, reverse, sort), their vocabulary,
padded batches, the held-out test set and the exact-match score.

The date checks do not trust the generator: each source is parsed back by this file's
own patterns, month table, two-digit-year rule and weekday formula (Zeller's
congruence, not ``datetime``), and must name the same day as its target.
"""

import datetime as dt
import json
import re
from collections import Counter

import numpy as np
import pytest

from minirnn.data import (
    DATE_FORMATS, TASKS, Seq2SeqVocab, TaskData, encode_batch, exact_match, format_date,
    make_pairs,
)

# ---------------------------------------------------------------- an independent date parser

MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december"]
ZELLER_WEEKDAYS = ["saturday", "sunday", "monday", "tuesday", "wednesday", "thursday", "friday"]


def zeller_weekday(year, month, day):
    """The weekday's English name by Zeller's congruence (Gregorian calendar)."""
    if month < 3:
        month, year = month + 12, year - 1
    k, j = year % 100, year // 100
    h = (day + 13 * (month + 1) // 5 + k + k // 4 + j // 4 + 5 * j) % 7
    return ZELLER_WEEKDAYS[h]


def ordinal_suffix(day):
    if day in (11, 12, 13):
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def spelled(name, style):
    """A lowercase full name as a format writes it: style is (length, case)."""
    length, case = style
    name = name[:3] if length == "abbr" else name
    return {"lower": name, "upper": name.upper(), "title": name.title()}[case]


WORD = {"lower": "[a-z]+", "upper": "[A-Z]+", "title": "[A-Z][a-z]+"}


D, DD = r"(?P<d>[1-9]\d?)", r"(?P<d>\d\d)"
M, MM = r"(?P<m>[1-9]\d?)", r"(?P<m>\d\d)"
Y, YY = r"(?P<y>\d{4})", r"(?P<yy>\d\d)"
DTH = r"(?P<d>[1-9]\d?)(?P<sfx>st|nd|rd|th)"


def wd(case):
    return f"(?P<wd>{WORD[case]})"


def mon(case):
    return f"(?P<mon>{WORD[case]})"


# format name -> (pattern, {named group: (abbr|full, case)}); names must match DATE_FORMATS.
DATE_PATTERNS = {
    "wkd d month yyyy": (rf"{wd('lower')} {D} {mon('lower')} {Y}",
                         {"wd": ("abbr", "lower"), "mon": ("full", "lower")}),
    "dd/mm/yy": (rf"{DD}/{MM}/{YY}", {}),
    "Month Dth, yyyy": (rf"{mon('title')} {DTH}, {Y}", {"mon": ("full", "title")}),
    "d Mon yyyy": (rf"{D} {mon('title')} {Y}", {"mon": ("abbr", "title")}),
    "yyyy.mm.dd": (rf"{Y}\.{MM}\.{DD}", {}),
    "Dth of Month, yyyy": (rf"{DTH} of {mon('title')}, {Y}", {"mon": ("full", "title")}),
    "Weekday, Month d, yyyy": (rf"{wd('title')}, {mon('title')} {D}, {Y}",
                               {"wd": ("full", "title"), "mon": ("full", "title")}),
    "d/m/yyyy": (rf"{D}/{M}/{Y}", {}),
    "MON dd yyyy": (rf"{mon('upper')} {DD} {Y}", {"mon": ("abbr", "upper")}),
    "month d yyyy": (rf"{mon('lower')} {D} {Y}", {"mon": ("full", "lower")}),
    "Wkd, dd Mon yyyy": (rf"{wd('title')}, {DD} {mon('title')} {Y}",
                         {"wd": ("abbr", "title"), "mon": ("abbr", "title")}),
    "d-Mon-yy": (rf"{D}-{mon('title')}-{YY}", {"mon": ("abbr", "title")}),
    "WEEKDAY d MONTH yyyy": (rf"{wd('upper')} {D} {mon('upper')} {Y}",
                             {"wd": ("full", "upper"), "mon": ("full", "upper")}),
    "dd.mm.yyyy": (rf"{DD}\.{MM}\.{Y}", {}),
    "yyyymmdd": (rf"{Y}{MM}{DD}", {}),
    "the Dth of month yyyy": (rf"the {DTH} of {mon('lower')} {Y}", {"mon": ("full", "lower")}),
    "Weekday Dth Month yyyy": (rf"{wd('title')} {DTH} {mon('title')} {Y}",
                               {"wd": ("full", "title"), "mon": ("full", "title")}),
}


def parse_date_source(source):
    """(format name, datetime.date) of a source, checking its names, weekday and suffix.

    The source must match exactly one format: numeric sources put the day first (or the
    four-digit year first), and yy is 19yy for 50..99, 20yy for 00..49.
    """
    hits = [(name, m) for name, (pat, _) in DATE_PATTERNS.items()
            if (m := re.fullmatch(pat, source))]
    assert len(hits) == 1, f"{source!r} matches {[n for n, _ in hits]} (want exactly one format)"
    name, m = hits[0]
    styles = DATE_PATTERNS[name][1]
    g = m.groupdict()
    if "mon" in g:
        by_spelling = {spelled(full, styles["mon"]): k + 1 for k, full in enumerate(MONTHS)}
        assert g["mon"] in by_spelling, f"{source!r}: {g['mon']!r} is no month in {name!r}"
        month = by_spelling[g["mon"]]
    else:
        month = int(g["m"])
    year = int(g["y"]) if g.get("y") else (1900 if int(g["yy"]) >= 50 else 2000) + int(g["yy"])
    day = int(g["d"])
    date = dt.date(year, month, day)  # raises on 31/02 and the like
    if "wd" in g:
        expected = spelled(zeller_weekday(year, month, day), styles["wd"])
        assert g["wd"] == expected, f"{source!r}: weekday {g['wd']!r}, want {expected!r}"
    if g.get("sfx"):
        assert g["sfx"] == ordinal_suffix(day), f"{source!r}: wrong ordinal suffix"
    return name, date


@pytest.fixture(scope="module")
def date_sample():
    return make_pairs("dates", 2000, seed=7)


# ---------------------------------------------------------------- make_pairs


def test_tasks_are_dates_reverse_sort():
    assert TASKS == ("dates", "reverse", "sort")


@pytest.mark.parametrize("task", TASKS)
def test_make_pairs_is_deterministic_for_a_seed_and_differs_across_seeds(task):
    a, b = make_pairs(task, 200, seed=3), make_pairs(task, 200, seed=3)
    assert a == b and len(a) == 200
    assert all(isinstance(s, str) and isinstance(t, str) for s, t in a)
    assert make_pairs(task, 200, seed=4) != a


@pytest.mark.parametrize("task", TASKS)
def test_a_shorter_list_of_pairs_is_a_prefix_of_a_longer_one(task):
    long = make_pairs(task, 2100, seed=1)  # past a block of draws
    assert make_pairs(task, 5, seed=1) == long[:5]
    assert make_pairs(task, 1500, seed=1) == long[:1500]


def test_make_pairs_refuses_unknown_tasks_and_bad_counts():
    with pytest.raises(ValueError, match="dates, reverse, sort") as err:
        make_pairs("copy", 3, 0)
    assert "'copy'" in str(err.value)
    for n in (0, -2):
        with pytest.raises(ValueError, match="n must be at least 1"):
            make_pairs("sort", n, 0)
    with pytest.raises(TypeError, match="n must be an int"):
        make_pairs("sort", 2.5, 0)
    with pytest.raises(ValueError, match="seed"):
        make_pairs("sort", 3, -1)
    with pytest.raises(ValueError, match="dates, reverse, sort"):
        TaskData("Dates", 10)
    with pytest.raises(ValueError, match="dates, reverse, sort"):
        Seq2SeqVocab.for_task(None)


# ---------------------------------------------------------------- dates


def test_format_date_writes_the_documented_examples():
    expected = {
        "wkd d month yyyy": "tue 3 march 2020", "dd/mm/yy": "03/03/20",
        "Month Dth, yyyy": "March 3rd, 2020", "d Mon yyyy": "3 Mar 2020",
        "yyyy.mm.dd": "2020.03.03", "Dth of Month, yyyy": "3rd of March, 2020",
        "Weekday, Month d, yyyy": "Tuesday, March 3, 2020", "d/m/yyyy": "3/3/2020",
        "MON dd yyyy": "MAR 03 2020", "month d yyyy": "march 3 2020",
        "Wkd, dd Mon yyyy": "Tue, 03 Mar 2020", "d-Mon-yy": "3-Mar-20",
        "WEEKDAY d MONTH yyyy": "TUESDAY 3 MARCH 2020", "dd.mm.yyyy": "03.03.2020",
        "yyyymmdd": "20200303", "the Dth of month yyyy": "the 3rd of march 2020",
        "Weekday Dth Month yyyy": "Tuesday 3rd March 2020",
    }
    assert set(DATE_FORMATS) == set(expected) and len(DATE_FORMATS) >= 12
    for fmt, text in expected.items():
        assert format_date(dt.date(2020, 3, 3), fmt) == text, fmt


def test_day_first_numbers_two_digit_years_and_known_weekdays():
    assert format_date(dt.date(2021, 4, 9), "d/m/yyyy") == "9/4/2021"    # day first
    assert format_date(dt.date(2021, 4, 9), "dd.mm.yyyy") == "09.04.2021"
    assert format_date(dt.date(1950, 1, 1), "dd/mm/yy") == "01/01/50"     # 50 -> 1950
    assert format_date(dt.date(2049, 12, 31), "d-Mon-yy") == "31-Dec-49"  # 49 -> 2049
    assert format_date(dt.date(1969, 7, 20), "Weekday, Month d, yyyy") == "Sunday, July 20, 1969"
    assert format_date(dt.date(2000, 1, 1), "Wkd, dd Mon yyyy") == "Sat, 01 Jan 2000"
    assert format_date(dt.date(1963, 11, 22), "WEEKDAY d MONTH yyyy") == "FRIDAY 22 NOVEMBER 1963"
    suffixes = {1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 11: "11th", 12: "12th", 13: "13th",
                21: "21st", 22: "22nd", 23: "23rd", 30: "30th", 31: "31st"}
    for day, text in suffixes.items():
        assert format_date(dt.date(2001, 1, day), "Month Dth, yyyy") == f"January {text}, 2001"
    with pytest.raises(ValueError, match="1949-12-31"):
        format_date(dt.date(1949, 12, 31), "yyyymmdd")
    with pytest.raises(ValueError, match="Month Dth, yyyy"):
        format_date(dt.date(2000, 1, 1), "%Y")


def test_every_date_source_parses_back_to_its_target(date_sample):
    assert set(DATE_PATTERNS) == set(DATE_FORMATS)
    for source, target in date_sample:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", target), target
        _, date = parse_date_source(source)
        assert date == dt.datetime.strptime(target, "%Y-%m-%d").date(), (source, target)


def test_weekday_names_are_the_true_weekday(date_sample):
    checked = 0
    for source, target in date_sample:
        day = dt.date.fromisoformat(target)
        first = source.split()[0].rstrip(",").lower()
        if first in ZELLER_WEEKDAYS or first in [w[:3] for w in ZELLER_WEEKDAYS]:
            assert zeller_weekday(day.year, day.month, day.day).startswith(first), source
            checked += 1
    assert checked > 300  # five of the formats name the weekday


def test_all_date_formats_occur_and_dates_span_the_century(date_sample):
    formats = Counter(parse_date_source(s)[0] for s, _ in date_sample)
    assert set(formats) == set(DATE_FORMATS), set(DATE_FORMATS) - set(formats)
    assert min(formats.values()) > 2000 / len(DATE_FORMATS) / 2, formats
    days = [dt.date.fromisoformat(t) for _, t in date_sample]
    assert dt.date(1950, 1, 1) <= min(days) and max(days) <= dt.date(2049, 12, 31)
    years = [d.year for d in days]
    assert min(years) <= 1953 and max(years) >= 2046 and abs(np.mean(years) - 2000) < 4
    assert {d.month for d in days} == set(range(1, 13))
    assert len({d.weekday() for d in days}) == 7


# ---------------------------------------------------------------- reverse and sort


def test_reverse_pairs_are_lowercase_strings_and_their_reversal():
    pairs = make_pairs("reverse", 1000, seed=2)
    for source, target in pairs:
        assert re.fullmatch("[a-z]{1,12}", source), source
        assert target == source[::-1]
    assert {len(s) for s, _ in pairs} == set(range(1, 13))
    assert len({c for s, _ in pairs for c in s}) == 26


def test_sort_pairs_are_digit_strings_and_their_digits_in_order():
    pairs = make_pairs("sort", 1000, seed=2)
    for source, target in pairs:
        assert re.fullmatch("[0-9]{1,12}", source), source
        assert Counter(target) == Counter(source)
        assert all(a <= b for a, b in zip(target, target[1:])), (source, target)
    assert {len(s) for s, _ in pairs} == set(range(1, 13))
    assert any(s != t for s, t in pairs)


# ---------------------------------------------------------------- vocabulary


@pytest.mark.parametrize("task", TASKS)
def test_task_vocabulary_is_fixed_and_covers_every_character_generated(task):
    vocab = Seq2SeqVocab.for_task(task)
    assert vocab == Seq2SeqVocab.for_task(task)
    symbols = vocab.symbols
    assert symbols[:3] == ["<pad>", "<sos>", "<eos>"]
    assert (vocab.pad_id, vocab.sos_id, vocab.eos_id) == (0, 1, 2)
    assert symbols[3:] == sorted(set(symbols[3:])) and len(vocab) == len(symbols)
    seen = {c for seed in (0, 1) for pair in make_pairs(task, 3000, seed) for c in "".join(pair)}
    assert seen <= set(symbols[3:]), seen - set(symbols[3:])
    # and nothing it never produces: a smaller model, and a check on the alphabet itself
    assert set(symbols[3:]) == seen


def test_reverse_and_sort_vocabularies_are_exactly_their_alphabets():
    assert "".join(Seq2SeqVocab.for_task("reverse").symbols[3:]) == "abcdefghijklmnopqrstuvwxyz"
    assert "".join(Seq2SeqVocab.for_task("sort").symbols[3:]) == "0123456789"


def test_vocab_sorts_its_characters_and_refuses_repeats():
    assert Seq2SeqVocab("cab").symbols == ["<pad>", "<sos>", "<eos>", "a", "b", "c"]
    with pytest.raises(ValueError, match="'a'"):
        Seq2SeqVocab("aba")
    with pytest.raises(ValueError, match="one code point"):
        Seq2SeqVocab(["ab"])


def test_encode_decode_round_trip_and_errors():
    vocab = Seq2SeqVocab.for_task("dates")
    text = "Tuesday, March 3rd, 2020"
    ids = vocab.encode(text)
    assert ids.dtype == np.int32 and ids.shape == (len(text),) and (ids >= 3).all()
    assert vocab.decode(ids) == text
    padded = [vocab.sos_id, *ids.tolist(), vocab.eos_id, vocab.pad_id, *vocab.encode("Mon")]
    assert vocab.decode(padded) == text          # stops at the first <eos>
    assert vocab.decode([vocab.pad_id, ids[0], vocab.sos_id, ids[1]]) == text[:2]
    assert vocab.decode([]) == ""
    with pytest.raises(ValueError, match=r"'\?'.*'é'|'é'.*'\?'"):
        vocab.encode("3 Mar 2020?é")
    with pytest.raises(ValueError, match="empty"):
        vocab.encode("")
    with pytest.raises(TypeError, match="str"):
        vocab.encode(b"3 Mar")


def test_vocab_json_round_trip():
    vocab = Seq2SeqVocab.for_task("dates")
    back = Seq2SeqVocab.from_json(json.loads(json.dumps(vocab.to_json())))
    assert back == vocab
    assert back.encode("3 Mar 2020").tolist() == vocab.encode("3 Mar 2020").tolist()
    with pytest.raises(ValueError, match="seq2seq"):
        Seq2SeqVocab.from_json({"kind": "char", "symbols": ["a"]})


# ---------------------------------------------------------------- encode_batch


def test_encode_batch_pads_to_the_batch_maxima_with_masks_and_round_trips():
    vocab = Seq2SeqVocab.for_task("reverse")
    pairs = [("abc", "cba"), ("z", "z"), ("hello", "olleh"), ("ab", "ba")]
    b = encode_batch(vocab, pairs)
    assert set(b) == {"src", "src_mask", "tgt_in", "tgt_out", "tgt_mask"}
    assert b["src"].shape == b["src_mask"].shape == (4, 5)
    assert b["tgt_in"].shape == b["tgt_out"].shape == b["tgt_mask"].shape == (4, 6)
    assert all(b[k].dtype == np.int32 for k in ("src", "tgt_in", "tgt_out"))
    assert b["src_mask"].dtype == b["tgt_mask"].dtype == np.bool_
    assert b["src_mask"].sum(1).tolist() == [3, 1, 5, 2]
    assert b["tgt_mask"].sum(1).tolist() == [4, 2, 6, 3]
    for key, mask in (("src", "src_mask"), ("tgt_in", "tgt_mask"), ("tgt_out", "tgt_mask")):
        assert (b[key][~b[mask]] == vocab.pad_id).all(), key
    assert (b["tgt_in"][:, 0] == vocab.sos_id).all()
    assert [row[m][-1] for row, m in zip(b["tgt_out"], b["tgt_mask"])] == [vocab.eos_id] * 4
    shifted = b["tgt_mask"][:, 1:]  # tgt_in is tgt_out moved one step right
    assert (b["tgt_in"][:, 1:][shifted] == b["tgt_out"][:, :-1][shifted]).all()
    for i, (source, target) in enumerate(pairs):
        assert vocab.decode(b["src"][i]) == source
        assert vocab.decode(b["tgt_out"][i]) == target
        assert vocab.decode(b["tgt_in"][i]) == target
        assert b["src"][i, : len(source)].tolist() == vocab.encode(source).tolist()


def test_encode_batch_refuses_bad_pairs_naming_them():
    vocab = Seq2SeqVocab.for_task("sort")
    with pytest.raises(ValueError, match="pair 1 has an empty source"):
        encode_batch(vocab, [("12", "12"), ("", "")])
    with pytest.raises(ValueError, match=r"pair 1.*'x'"):
        encode_batch(vocab, [("12", "12"), ("3", "x")])
    with pytest.raises(ValueError, match="empty"):
        encode_batch(vocab, [])
    with pytest.raises(TypeError, match="pair 0"):
        encode_batch(vocab, [["12", "12"]])


# ---------------------------------------------------------------- TaskData


def test_test_set_is_fixed_held_out_and_disjoint_from_training():
    a, b = TaskData("sort", n_train=3000, n_test=500, seed=1), TaskData("sort", 3000, 500, 1)
    assert a.test_pairs == b.test_pairs and a.train_pairs == b.train_pairs
    assert a.train_pairs == make_pairs("sort", 3000, 1)
    assert len(a.test_pairs) == 500 and a.vocab == Seq2SeqVocab.for_task("sort")
    train_sources = {s for s, _ in a.train_pairs}
    assert not train_sources & {s for s, _ in a.test_pairs}
    # the held-out stream alone does overlap (short digit strings repeat), so the
    # filter is doing work; the test set is that stream minus training sources
    stream = make_pairs("sort", 2000, 1 + 10_000)
    assert train_sources & {s for s, _ in stream}
    assert a.test_pairs == [p for p in stream if p[0] not in train_sources][:500]
    assert TaskData("sort", 3000, 500, seed=2).test_pairs != a.test_pairs


def test_batches_are_a_function_of_the_step_and_cover_each_epoch():
    data = TaskData("dates", n_train=60, n_test=10, seed=0)
    take = lambda seed, k: [data.batch(step, 20, seed) for step in range(k)]  # noqa: E731
    first = take(5, 7)
    again = [TaskData("dates", n_train=60, n_test=10, seed=0).batch(s, 20, 5)
             for s in (6, 2, 4, 0, 1, 3, 5)]  # any order, another object: the same batches
    for x, y in zip([first[s] for s in (6, 2, 4, 0, 1, 3, 5)], again):
        assert all(np.array_equal(x[k], y[k]) for k in x)
    other = take(6, 7)
    assert any(not np.array_equal(x["src"], y["src"]) for x, y in zip(first, other))
    vocab = data.vocab
    epochs = []
    for e in range(2):
        pairs = [(vocab.decode(s), vocab.decode(t))
                 for b in first[3 * e: 3 * e + 3] for s, t in zip(b["src"], b["tgt_out"])]
        assert sorted(pairs) == sorted(data.train_pairs)  # each pair once per epoch
        epochs.append(pairs)
    assert epochs[0] != epochs[1]  # reshuffled
    for b in first:  # each batch is exactly encode_batch of its pairs, trimmed to its maxima
        pairs = [(vocab.decode(s), vocab.decode(t)) for s, t in zip(b["src"], b["tgt_out"])]
        ref = encode_batch(vocab, pairs)
        assert all(np.array_equal(b[k], ref[k]) and b[k].dtype == ref[k].dtype for k in ref)


def test_batches_drop_the_remainder_and_refuse_bad_arguments():
    data = TaskData("reverse", n_train=50, n_test=5)
    assert [len(data.batch(step, 20)["src"]) for step in range(5)] == [20] * 5
    with pytest.raises(ValueError, match="batch_size"):
        data.batch(0, 51)
    with pytest.raises(ValueError, match="step"):
        data.batch(-1, 10)


def test_exact_match_is_the_fraction_of_identical_strings():
    score = exact_match(["2020-03-03", "abc", "1"], ["2020-03-03", "abd", "1"])
    assert score == pytest.approx(2 / 3) and isinstance(score, float)
    assert exact_match(["a"], ["a"]) == 1.0 and exact_match(["a "], ["a"]) == 0.0
    with pytest.raises(ValueError, match="pair up"):
        exact_match(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="no targets"):
        exact_match([], [])
