"""Greedy decoding and beam search over a step function: fakes, a tiny CharRNN, brute force."""

import itertools
import math
from collections import namedtuple

import numpy as np
import pytest

from minirnn import backend
from minirnn.data import CharVocab
from minirnn.generate import (beam_sample_text, beam_search, greedy_decode, reorder_batch,
                              sample)
from minirnn.nn import CharRNN

# --------------------------------------------------------------------------------------
# Fakes and helpers
# --------------------------------------------------------------------------------------


class TableModel:
    """Logits ``table[step % S, total % P, last]`` (V,) of a table (S, P, V, V).

    ``total`` is the running sum of every id fed, so the logits depend on the whole
    history of a beam and a beam handed another beam's state scores differently.
    The state is one (2, N) int array, batch on axis 1: [steps taken, running sum].
    ``calls`` records the batch size of every step.
    """

    def __init__(self, table, xp=None):
        self.xp = xp or backend.xp
        self.S, self.P = table.shape[:2]
        self.table = self.xp.asarray(np.asarray(table, dtype=np.float64))
        self.calls = []

    def initial_state(self, batch_size):
        return self.xp.zeros((2, batch_size), dtype=np.int64)

    def step(self, ids, state):
        assert ids.ndim == 1 and ids.shape[0] == state.shape[1]
        self.calls.append(ids.shape[0])
        steps, total = state[0], state[1] + ids
        logits = self.table[steps % self.S, total % self.P, ids]  # (N, V)
        return logits, self.xp.stack([steps + 1, total])


def random_table(S=4, P=3, V=3, seed=0, scale=2.0):
    return np.random.default_rng(seed).normal(0, scale, size=(S, P, V, V))


def log_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def step_logprob(model, start, seq):
    """Summed log-probability of ``seq`` after ``start``, stepping the model with batch 1."""
    xp = backend.xp
    state, total, token = model.initial_state(1), 0.0, start
    for tok in seq:
        logits, state = model.step(xp.asarray(np.array([token], dtype=np.int64)), state)
        total += log_softmax(backend.to_numpy(logits))[0, tok]
        token = tok
    return total


def forward_logprob(model, start, seq):
    """Summed log-probability of ``seq`` after ``start`` from one CharRNN.forward pass."""
    ids = backend.xp.asarray(np.array([[start] + list(seq[:-1])], dtype=np.int64))  # (1, T)
    logits, _ = model.forward(ids)
    logp = log_softmax(backend.to_numpy(logits))[0]  # (T, V)
    return float(logp[np.arange(len(seq)), seq].sum())


def brute_force(score_fn, V, length, eos_id=None, length_norm=0.0):
    """Every distinct hypothesis of at most ``length`` tokens (cut after its first eos),
    with its normalised score, best first."""
    hyps = set()
    for seq in itertools.product(range(V), repeat=length):
        seq = list(seq)
        if eos_id is not None and eos_id in seq:
            seq = seq[:seq.index(eos_id) + 1]
        hyps.add(tuple(seq))
    scored = [(list(h), score_fn(list(h)) / len(h) ** length_norm) for h in hyps]
    return sorted(scored, key=lambda h: -h[1])


def assert_same_hypotheses(found, expected, tol=1e-9):
    assert [ids for ids, _ in found] == [ids for ids, _ in expected], (found, expected)
    err = max(abs(a - b) for (_, a), (_, b) in zip(found, expected))
    assert err <= tol, f"scores differ by {err:.3g} > {tol}"


@pytest.fixture
def float64():
    backend.set_default_dtype("float64")
    try:
        yield
    finally:
        backend.set_default_dtype("float32")


def tiny_charrnn(seed=0, num_layers=1):
    return CharRNN(vocab_size=3, hidden_size=4, num_layers=num_layers, seed=seed).eval()


class CountingStep:
    """Wraps a step function, recording the batch size of every call."""

    def __init__(self, step_fn):
        self.step_fn, self.rows = step_fn, []

    def __call__(self, ids, state):
        self.rows.append(int(ids.shape[0]))
        return self.step_fn(ids, state)


# --------------------------------------------------------------------------------------
# Greedy and beam width 1
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("eos_id", [None, 0])
def test_greedy_picks_argmax_and_sums_its_log_probabilities(eos_id):
    model = TableModel(random_table(seed=1))
    start = [0, 1, 2]
    ids, scores = greedy_decode(model.step, model.initial_state(3), start, 6, eos_id=eos_id)
    assert ids.dtype == np.int64 and ids.shape[0] == 3 and scores.shape == (3,)
    for n in range(3):
        row = ids[n].tolist()
        if eos_id is not None and eos_id in row:
            cut = row.index(eos_id) + 1
            assert all(t == eos_id for t in row[cut:]), "rows are padded with eos"
            row = row[:cut]
        # each token is the argmax given the ones before it
        state, token = model.initial_state(1), start[n]
        for tok in row:
            logits, state = model.step(np.array([token]), state)
            assert tok == int(np.argmax(logits[0]))
            token = tok
        assert abs(scores[n] - step_logprob(model, start[n], row)) < 1e-12


def test_greedy_stops_when_every_row_has_ended():
    table = np.zeros((1, 1, 3, 3))
    table[..., 0] = 5.0  # eos (0) is always the most probable
    model = TableModel(table)
    ids, scores = greedy_decode(model.step, model.initial_state(2), [1, 2], 10, eos_id=0)
    assert ids.tolist() == [[0], [0]] and len(model.calls) == 1
    assert np.allclose(scores, log_softmax(table[0, 0, 1])[0])


@pytest.mark.parametrize("eos_id, length_norm", [(None, 0.0), (None, 1.0), (0, 0.0), (2, 0.0)])
def test_beam_width_one_equals_greedy(eos_id, length_norm):
    model = TableModel(random_table(seed=2))
    start = [0, 1, 2, 1]
    ids, scores = greedy_decode(model.step, model.initial_state(4), start, 7, eos_id=eos_id)
    beams = beam_search(model.step, model.initial_state(4), start, 1, 7, eos_id=eos_id,
                        length_norm=length_norm, state_batch_axis=1)
    for n, row in enumerate(beams):
        assert len(row) == 1
        (found, score), = row
        expect = ids[n].tolist()
        if eos_id is not None and eos_id in expect:
            expect = expect[:expect.index(eos_id) + 1]
        assert found == expect
        assert abs(score * len(found) ** length_norm - scores[n]) < 1e-12


@pytest.mark.parametrize("eos_id", [None, 0])
def test_beam_width_one_equals_greedy_for_a_charrnn(float64, eos_id):
    model = tiny_charrnn(seed=3, num_layers=2)
    ids, scores = greedy_decode(model.step, model.initial_state(3), [0, 1, 2], 6, eos_id)
    beams = beam_search(model.step, model.initial_state(3), [0, 1, 2], 1, 6, eos_id=eos_id,
                        length_norm=0.0, state_batch_axis=1)
    for n in range(3):
        expect = ids[n].tolist()
        if eos_id is not None and eos_id in expect:
            expect = expect[:expect.index(eos_id) + 1]
        assert beams[n][0][0] == expect
        assert abs(beams[n][0][1] - scores[n]) < 1e-12


# --------------------------------------------------------------------------------------
# Beam search against brute force
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("eos_id", [None, 1])
@pytest.mark.parametrize("length_norm", [0.0, 0.7, 1.0])
def test_wide_beam_finds_every_hypothesis_of_a_fake_model_ranked_as_brute_force(
        eos_id, length_norm):
    model = TableModel(random_table(seed=4))
    start = [2, 0]
    found = beam_search(model.step, model.initial_state(2), start, 81, 4, eos_id=eos_id,
                        length_norm=length_norm, state_batch_axis=1)
    for n, s in enumerate(start):
        expected = brute_force(lambda seq: step_logprob(model, s, seq), 3, 4, eos_id,
                               length_norm)
        assert_same_hypotheses(found[n], expected)


@pytest.mark.parametrize("eos_id", [None, 0])
@pytest.mark.parametrize("length_norm", [0.0, 1.0])
def test_wide_beam_matches_brute_force_over_all_81_sequences_of_a_charrnn(
        float64, eos_id, length_norm):
    model = tiny_charrnn(seed=5)
    # Scale the output layer so the 81 sequences are far from uniform.
    model.params["head.W"] *= 8.0
    found = beam_search(model.step, model.initial_state(1), [1], 81, 4, eos_id=eos_id,
                        length_norm=length_norm, state_batch_axis=1)[0]
    expected = brute_force(lambda seq: forward_logprob(model, 1, seq), 3, 4, eos_id,
                           length_norm)
    assert found[0][0] == expected[0][0]
    assert abs(found[0][1] - expected[0][1]) < 1e-9
    assert_same_hypotheses(found, expected)


@pytest.mark.parametrize("length_norm", [0.0, 1.0])
def test_narrow_beam_with_early_stop_still_returns_the_true_best(length_norm):
    # eos is likely: the search ends before max_len, and must still be exact here.
    table = random_table(S=2, P=2, seed=6)
    table[..., 0] += 3.0
    model = TableModel(table)
    found = beam_search(model.step, model.initial_state(1), [1], 3, 6, eos_id=0,
                        length_norm=length_norm, state_batch_axis=1)[0]
    assert len(model.calls) < 6, "every row is settled early: the search should stop"
    expected = brute_force(lambda seq: step_logprob(model, 1, seq), 3, 6, 0, length_norm)
    assert found[0][0] == expected[0][0]
    assert abs(found[0][1] - expected[0][1]) < 1e-12


def test_returned_scores_equal_a_separate_forward_pass(float64):
    model = tiny_charrnn(seed=7, num_layers=2)
    start = [0, 2]
    for eos_id, length_norm in [(None, 1.0), (2, 0.0), (2, 0.6)]:
        found = beam_search(model.step, model.initial_state(2), start, 4, 5, eos_id=eos_id,
                            length_norm=length_norm, state_batch_axis=1)
        for n, row in enumerate(found):
            assert len(row) == 4
            assert len({tuple(ids) for ids, _ in row}) == 4, "hypotheses are distinct"
            assert [s for _, s in row] == sorted((s for _, s in row), reverse=True)
            for ids, score in row:
                expect = forward_logprob(model, start[n], ids) / len(ids) ** length_norm
                assert abs(score - expect) < 1e-9, (ids, score, expect)


def test_start_is_one_live_beam_not_k_copies():
    model = TableModel(random_table(seed=8))
    row = beam_search(model.step, model.initial_state(1), [0], 3, 1, state_batch_axis=1)[0]
    # one step from one start: the V=3 single-token hypotheses, each once
    assert sorted(ids for ids, _ in row) == [[0], [1], [2]]
    logp = log_softmax(model.table[0, 0, 0])
    assert np.allclose(sorted(s for _, s in row), sorted(logp))


# --------------------------------------------------------------------------------------
# One batch per step, state reordering
# --------------------------------------------------------------------------------------

def test_all_beams_advance_in_one_step_call_per_time_step(float64):
    model = tiny_charrnn(seed=9, num_layers=2)
    counting = CountingStep(model.step)
    N, K, max_len = 3, 4, 6
    beam_search(counting, model.initial_state(N), [0, 1, 2], K, max_len, state_batch_axis=1)
    assert counting.rows == [N * K] * max_len


def test_custom_reorder_state_tiles_once_and_follows_parents_each_step():
    model = TableModel(random_table(seed=10))
    seen = []

    def reorder(state, index):
        seen.append(backend.to_numpy(index).tolist())
        return state[:, index]

    N, K, max_len = 2, 3, 5
    got = beam_search(model.step, model.initial_state(N), [1, 2], K, max_len, reorder_state=reorder)
    assert seen[0] == [0, 0, 0, 1, 1, 1]  # the tiling
    assert len(seen) == max_len and all(len(ix) == N * K for ix in seen)
    assert got == beam_search(model.step, model.initial_state(N), [1, 2], K, max_len,
                              state_batch_axis=1)


def test_wrong_state_batch_axis_is_refused_naming_it(float64):
    model = tiny_charrnn(seed=11, num_layers=2)  # state (2, 3, 4): batch on axis 1
    with pytest.raises(ValueError, match="state_batch_axis"):
        beam_search(model.step, model.initial_state(3), [0, 1, 2], 2, 3)


def test_reorder_batch_handles_nested_states():
    Pair = namedtuple("Pair", "h c")
    a = np.arange(6).reshape(3, 2)
    state = {"enc": [a, None], "dec": Pair(a * 10, a * 100), "n": 7}
    out = reorder_batch(state, np.array([2, 2, 0]))
    assert out["enc"][0].tolist() == [[4, 5], [4, 5], [0, 1]] and out["enc"][1] is None
    assert isinstance(out["dec"], Pair) and out["dec"].c[:, 0].tolist() == [400, 400, 0]
    assert out["n"] == 7
    lnh = np.arange(2 * 3 * 1).reshape(2, 3, 1)
    assert reorder_batch(lnh, np.array([1, 1]), batch_axis=1)[:, :, 0].tolist() == [[1, 1], [4, 4]]


# --------------------------------------------------------------------------------------
# Length normalisation
# --------------------------------------------------------------------------------------

def test_length_normalisation_lets_a_longer_hypothesis_beat_a_short_one():
    # ids: 0 = eos, 1 = a. First step: eos and a equally likely; after that a is 90 %.
    table = np.zeros((4, 1, 2, 2))
    table[0, 0, :] = np.log([0.5, 0.5])
    table[1:, 0, :] = np.log([0.1, 0.9])
    model = TableModel(table)
    raw = beam_search(model.step, model.initial_state(1), [1], 2, 4, eos_id=0,
                      length_norm=0.0, state_batch_axis=1)[0]
    normed = beam_search(model.step, model.initial_state(1), [1], 2, 4, eos_id=0,
                         length_norm=1.0, state_batch_axis=1)[0]
    assert raw[0][0] == [0] and abs(raw[0][1] - math.log(0.5)) < 1e-12
    assert normed[0][0] == [1, 1, 1, 1]
    assert abs(normed[0][1] - (math.log(0.5) + 3 * math.log(0.9)) / 4) < 1e-12


def test_a_finished_hypothesis_ends_the_search_only_when_no_live_beam_can_beat_it():
    # Width 1: [eos] (log 0.6) is found at step 1 and leads the live beam [a] (log 0.4),
    # but normalised by length, [a, a, a, a] = (log 0.4 + 3 log 0.99) / 4 wins.
    table = np.zeros((4, 1, 2, 2))
    table[0, 0, :] = np.log([0.6, 0.4])
    table[1:, 0, :] = np.log([0.01, 0.99])
    model = TableModel(table)
    best = beam_search(model.step, model.initial_state(1), [1], 1, 4, eos_id=0,
                       length_norm=1.0, state_batch_axis=1)[0]
    assert best[0][0] == [1, 1, 1, 1]
    assert abs(best[0][1] - (math.log(0.4) + 3 * math.log(0.99)) / 4) < 1e-12
    # without normalisation [eos] is certain to win after step 1: the search stops there
    model.calls.clear()
    best = beam_search(model.step, model.initial_state(1), [1], 1, 4, eos_id=0,
                       length_norm=0.0, state_batch_axis=1)[0]
    assert best == [([0], math.log(0.6))] and len(model.calls) == 1


# --------------------------------------------------------------------------------------
# Backends, CharRNN text, arguments
# --------------------------------------------------------------------------------------

def test_strict_backend_gives_the_numpy_results():
    table = random_table(seed=12)
    expect = beam_search(TableModel(table).step, TableModel(table).initial_state(2), [0, 1],
                         3, 4, eos_id=2, state_batch_axis=1)
    model64 = tiny_charrnn(seed=13, num_layers=2)
    expect_rnn = beam_search(model64.step, model64.initial_state(2), [0, 1], 3, 4,
                             state_batch_axis=1)
    expect_greedy = greedy_decode(model64.step, model64.initial_state(2), [0, 1], 4, 0)
    backend.use("strict")
    try:
        fake = TableModel(table)
        assert isinstance(fake.table, backend.StrictArray)
        got = beam_search(fake.step, fake.initial_state(2), np.array([0, 1]), 3, 4, eos_id=2,
                          state_batch_axis=1)
        assert got == expect
        model = tiny_charrnn(seed=13, num_layers=2)
        assert isinstance(model.initial_state(2)[0], backend.StrictArray)
        got_rnn = beam_search(model.step, model.initial_state(2), [0, 1], 3, 4,
                              state_batch_axis=1)
        assert [[ids for ids, _ in row] for row in got_rnn] == \
            [[ids for ids, _ in row] for row in expect_rnn]
        assert np.allclose([[s for _, s in row] for row in got_rnn],
                           [[s for _, s in row] for row in expect_rnn], atol=1e-5)
        ids, scores = greedy_decode(model.step, model.initial_state(2), [0, 1], 4, 0)
        assert ids.tolist() == expect_greedy[0].tolist()
        assert np.allclose(scores, expect_greedy[1], atol=1e-5)
        text = beam_sample_text(model, CharVocab("abc"), "ab", 2, 3)
        assert len(text) == 5 and text.startswith("ab")
    finally:
        backend.use("numpy")


def test_beam_sample_text_is_prompt_plus_the_best_beam(float64):
    model, vocab = tiny_charrnn(seed=14, num_layers=2), CharVocab("abc")
    text = beam_sample_text(model, vocab, "abca", beam_width=3, length=5)
    state = model.initial_state(1)
    for tok in [0, 1, 2]:  # the prompt but its last character
        _, state = model.step(np.array([tok]), state)
    best = beam_search(model.step, state, [0], 3, 5, state_batch_axis=1)[0][0][0]
    assert text == "abca" + "".join("abc"[i] for i in best)
    assert beam_sample_text(model, vocab, "abc", 3, 0) == "abc"


def test_beam_sample_text_of_width_one_is_greedy_sampling(float64):
    vocab = CharVocab("abc")
    # the table model's logits depend on every id fed, the prompt's included
    for model in [tiny_charrnn(seed=15), TableModel(random_table(seed=16))]:
        for prompt in ["", "c", "bca", "abcab"]:
            assert beam_sample_text(model, vocab, prompt, 1, 8) == \
                sample(model, vocab, prompt, 8, temperature=0)


BAD = [
    (dict(beam_width=0), "beam_width"), (dict(beam_width=2.5), "beam_width"),
    (dict(beam_width=True), "beam_width"), (dict(max_len=0), "max_len"),
    (dict(max_len=-3), "max_len"), (dict(length_norm=-0.5), "length_norm"),
    (dict(length_norm=float("nan")), "length_norm"), (dict(eos_id=-1), "eos_id"),
    (dict(eos_id=3), "eos_id"), (dict(start_ids=[[0]]), "start_ids"),
    (dict(start_ids=[]), "start_ids"),
]


@pytest.mark.parametrize("bad, name", BAD)
def test_bad_arguments_raise_value_error_naming_them(bad, name):
    model = TableModel(random_table())
    kw = dict(start_ids=[0], beam_width=2, max_len=3, eos_id=None, length_norm=1.0)
    kw.update(bad)
    with pytest.raises(ValueError, match=name):
        beam_search(model.step, model.initial_state(1), state_batch_axis=1, **kw)
    if "beam_width" not in bad and "length_norm" not in bad:
        with pytest.raises(ValueError, match=name):
            greedy_decode(model.step, model.initial_state(1), kw["start_ids"], kw["max_len"],
                          kw["eos_id"])


@pytest.mark.parametrize("bad, name", [(dict(beam_width=0), "beam_width"),
                                       (dict(length=-1), "length"),
                                       (dict(length_norm=-1), "length_norm")])
def test_beam_sample_text_refuses_bad_settings(bad, name):
    kw = dict(beam_width=2, length=3, length_norm=1.0)
    kw.update(bad)
    with pytest.raises(ValueError, match=name):
        beam_sample_text(tiny_charrnn(), CharVocab("abc"), "ab", **kw)


def test_nan_logits_are_refused_naming_the_step():
    table = random_table()
    table[1] = np.nan
    model = TableModel(table)
    with pytest.raises(ValueError, match="step 2 of 3"):
        beam_search(model.step, model.initial_state(1), [0], 2, 3, state_batch_axis=1)


def test_ties_go_to_the_lower_beam_then_the_lower_id():
    model = TableModel(np.zeros((1, 1, 3, 3)))  # every sequence equally likely
    row = beam_search(model.step, model.initial_state(1), [0], 3, 2, state_batch_axis=1)[0]
    assert [ids for ids, _ in row] == [[0, 0], [0, 1], [0, 2]]
    ids, _ = greedy_decode(model.step, model.initial_state(1), [0], 2)
    assert ids.tolist() == [[0, 0]]
    # a vocabulary wide enough that an unchecked argpartition splits the tie elsewhere
    wide = TableModel(np.zeros((1, 1, 300, 300)))
    row = beam_search(wide.step, wide.initial_state(1), [0], 2, 2, eos_id=299,
                      state_batch_axis=1)[0]
    assert [ids for ids, _ in row] == [[0, 0], [0, 1]]


@pytest.mark.parametrize("seed", range(6))
def test_stop_likely_stops_long_before_max_len_exactly_for_raw_sums(seed):
    """A model whose likely outputs end early, searched with a long max_len: the
    "certain" rule runs on (with length normalisation its bound is loose), "likely"
    stops once the K ended hypotheses beat every live beam. For raw sums (alpha = 0),
    where a score can only fall, both give the same K hypotheses; with alpha = 1 each
    hypothesis "likely" returns is scored exactly."""
    table = random_table(S=3, P=3, V=4, seed=seed)
    table[..., 0] += 2.5  # eos (id 0) is likely at every step
    for length_norm in (0.0, 1.0):
        certain, likely = TableModel(table), TableModel(table)
        a = beam_search(certain.step, certain.initial_state(2), [1, 2], 3, 200, eos_id=0,
                        length_norm=length_norm, state_batch_axis=1)
        b = beam_search(likely.step, likely.initial_state(2), [1, 2], 3, 200, eos_id=0,
                        length_norm=length_norm, state_batch_axis=1, stop="likely")
        assert len(likely.calls) <= 20, len(likely.calls)
        if length_norm == 0.0:
            assert b == a and len(likely.calls) == len(certain.calls)
            continue
        assert len(certain.calls) > 100  # the loose bound: searched nearly to max_len
        for start, row in zip([1, 2], b):
            for ids, score in row:
                want = step_logprob(likely, start, ids) / len(ids)
                assert ids[-1] == 0 and abs(score - want) < 1e-12
    with pytest.raises(ValueError, match="stop must be 'certain' or 'likely', got 'soon'"):
        beam_search(likely.step, likely.initial_state(1), [1], 2, 5, eos_id=0, stop="soon")
