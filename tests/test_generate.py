"""Sampling: filter_logits, validate_sampling and sample against tiny fake models."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minirnn import backend
from minirnn.generate import filter_logits, sample, validate_sampling


# --------------------------------------------------------------------------------------
# Fakes: a Markov-chain "model" and a character vocabulary
# --------------------------------------------------------------------------------------

class MarkovModel:
    """Next-token logits depend only on the last id: ``table[last]`` (V, V).

    Arrays live on the backend current at construction (strict under the strict run),
    so ``table[ids]`` fails unless ``sample`` hands ids over on the model's backend.
    ``fed`` records every id stepped, ``nan_at`` makes generation step k non-finite.
    """

    def __init__(self, table, xp=None, nan_at=None, bad=np.nan):
        self.xp = xp or backend.xp
        self.table = self.xp.asarray(np.asarray(table, dtype=np.float64))
        self.fed = []
        self.nan_at, self.bad = nan_at, bad

    def initial_state(self, batch_size):
        return (self.xp.zeros((batch_size,)),)  # (steps taken,)

    def step(self, ids, state):
        assert ids.shape == (1,)
        self.fed.append(int(backend.to_numpy(ids)[0]))
        logits = self.table[ids]  # (1, V)
        (count,) = state
        if self.nan_at is not None and len(self.fed) == self.nan_at:
            logits = logits * self.bad
        return logits, (count + 1,)


class Vocab:
    def __init__(self, chars):
        self.itos = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    def __len__(self):
        return len(self.itos)

    def encode(self, text):
        unknown = sorted(set(text) - set(self.stoi))
        if unknown:
            raise ValueError(f"unknown characters: {', '.join(map(repr, unknown))}")
        return np.array([self.stoi[c] for c in text], dtype=np.int32)

    def decode(self, ids):
        return "".join(self.itos[i] for i in np.asarray(ids).tolist())


class VagueVocab(Vocab):
    """encode fails without saying which characters: sample must say it."""

    def encode(self, text):
        if set(text) - set(self.stoi):
            raise ValueError("cannot encode this text")
        return super().encode(text)


class StoiOnlyVocab:
    def __init__(self, chars):
        self.itos = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    def __len__(self):
        return len(self.itos)

    def decode(self, ids):
        return "".join(self.itos[i] for i in np.asarray(ids).tolist())


CHARS = "abcdefgh"
V = len(CHARS)


def random_table(seed=0, scale=2.0, v=V):
    return np.random.default_rng(seed).normal(scale=scale, size=(v, v))


def greedy_path(table, start, length):
    path, last = [], start
    for _ in range(length):
        last = int(np.argmax(table[last]))
        path.append(last)
    return path


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


# --------------------------------------------------------------------------------------
# filter_logits
# --------------------------------------------------------------------------------------

def test_temperature_zero_is_one_hot_at_argmax_lowest_id_on_ties():
    logits = np.array([[0.1, 3.0, -1.0, 3.0], [5.0, 1.0, 2.0, 0.0]])
    probs = filter_logits(logits, temperature=0)
    np.testing.assert_array_equal(probs, [[0, 1, 0, 0], [1, 0, 0, 0]])
    assert probs.dtype == np.float64 and probs.shape == logits.shape


def test_temperature_one_is_softmax_and_rows_are_independent():
    logits = np.random.default_rng(1).normal(size=(3, 6))
    probs = filter_logits(logits)
    for row, p in zip(logits, probs):
        np.testing.assert_allclose(p, softmax(row), rtol=1e-12)
    np.testing.assert_allclose(filter_logits(logits[1], temperature=0.5),
                               softmax(logits[1] / 0.5), rtol=1e-12)


def test_top_k_1_is_greedy():
    logits = np.random.default_rng(2).normal(size=(4, 7))
    np.testing.assert_array_equal(filter_logits(logits, top_k=1),
                                  filter_logits(logits, temperature=0))


def test_top_k_keeps_the_k_largest_renormalised_ties_by_lowest_id():
    p = np.array([0.1, 0.4, 0.2, 0.3])
    np.testing.assert_allclose(filter_logits(np.log(p), top_k=2), [0, 4 / 7, 0, 3 / 7])
    tied = filter_logits(np.zeros(4), top_k=2)
    np.testing.assert_array_equal(tied, [0.5, 0.5, 0, 0])


@pytest.mark.parametrize("k", [V, V + 1, 10**6])
def test_top_k_at_least_vocab_size_does_not_filter(k):
    logits = np.random.default_rng(3).normal(size=V)
    np.testing.assert_allclose(filter_logits(logits, top_k=k), softmax(logits), rtol=1e-12)


@pytest.mark.parametrize("top_p, expected", [
    (0.75, [0.625, 0.375, 0, 0]),
    (0.5, [1, 0, 0, 0]),
    (0.8, [0.625, 0.375, 0, 0]),  # reached exactly at two tokens despite rounding
    (0.81, [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0]),
    (1.0, [0.5, 0.3, 0.15, 0.05]),
])
def test_top_p_keeps_the_smallest_nucleus_renormalised(top_p, expected):
    logits = np.log([0.5, 0.3, 0.15, 0.05])
    np.testing.assert_allclose(filter_logits(logits, top_p=top_p), expected, atol=1e-12)


def test_top_p_applies_to_what_top_k_left():
    logits = np.log([0.5, 0.3, 0.15, 0.05])
    # Alone, top_p=0.82 needs three tokens (0.5 + 0.3 < 0.82); after top_k=3 renormalises
    # to [0.526, 0.316, 0.158], two already hold 0.842.
    np.testing.assert_allclose(filter_logits(logits, top_p=0.82),
                               [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0], atol=1e-12)
    np.testing.assert_allclose(filter_logits(logits, top_k=3, top_p=0.82),
                               [0.625, 0.375, 0, 0], atol=1e-12)


@pytest.mark.parametrize("top_p", [1e-9, 1e-13, 5e-324])
def test_tiny_top_p_is_greedy(top_p):
    logits = np.random.default_rng(4).normal(size=(5, 9))
    np.testing.assert_array_equal(filter_logits(logits, top_p=top_p),
                                  filter_logits(logits, temperature=0))


@pytest.mark.parametrize("temperature", [1e-3, 1e3, 1e-300, 1e300])
@pytest.mark.parametrize("logits", [
    [2.0, -1.0, 0.5, 1.9],
    [1e4, -1e4, 0.0, 9999.0],
    [-1e300, 1e300, 0.0, 3.0],
])
def test_extreme_temperatures_give_finite_probabilities_without_warnings(temperature, logits):
    logits = np.array(logits)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        for kw in ({}, {"top_k": 2}, {"top_p": 0.9}):
            probs = filter_logits(logits, temperature=temperature, **kw)
            assert np.isfinite(probs).all(), probs
            assert probs.min() >= 0 and abs(probs.sum() - 1) < 1e-12, probs
    if temperature <= 1e-3:  # cold: all mass on the argmax
        assert probs[np.argmax(logits)] > 1 - 1e-9
    if temperature == 1e300:  # hot: softmax(logits / T), uniform unless logits are ~T
        np.testing.assert_allclose(filter_logits(logits, temperature),
                                   softmax(logits / temperature), rtol=1e-12)
    if temperature == 1e3 and np.ptp(logits) < 10:
        np.testing.assert_allclose(filter_logits(logits, temperature), 0.25, rtol=1e-2)


def test_minus_inf_logits_are_never_drawn_nan_is_refused():
    probs = filter_logits(np.array([-np.inf, 0.0, 0.0]))
    np.testing.assert_array_equal(probs, [0, 0.5, 0.5])
    with pytest.raises(ValueError, match="logits"):
        filter_logits(np.array([np.nan, 0.0]))
    with pytest.raises(ValueError, match="logits"):
        filter_logits(np.array([np.inf, 0.0]))
    with pytest.raises(ValueError, match="-inf"):
        filter_logits(np.array([-np.inf, -np.inf]))
    with pytest.raises(ValueError, match="shape"):
        filter_logits(np.zeros((2, 2, 2)))


@settings(max_examples=200, deadline=None)
@given(
    logits=st.lists(st.floats(-50, 50), min_size=1, max_size=12),
    temperature=st.one_of(st.just(0.0), st.floats(1e-3, 1e3)),
    top_k=st.one_of(st.none(), st.integers(1, 15)),
    top_p=st.one_of(st.none(), st.floats(1e-6, 1.0)),
)
def test_filtered_support_is_a_minimal_prefix_of_the_ranking(logits, temperature, top_k, top_p):
    logits = np.array(logits)
    probs = filter_logits(logits, temperature, top_k, top_p)
    assert probs.min() >= 0 and abs(probs.sum() - 1) < 1e-9
    base = filter_logits(logits, temperature)  # before truncation
    order = np.argsort(-base, kind="stable")
    kept = probs[order] > 0
    n = int(kept.sum())
    assert n >= 1 and kept[:n].all(), "the support must be the top-n of the ranking"
    if top_k is not None:
        assert n <= top_k
    if top_p is not None and top_p < 1 and temperature > 0:  # top_p = 1 keeps all
        after_k = base[order][:top_k] / base[order][:top_k].sum()
        mass = np.cumsum(after_k)
        # reaches top_p, and one token fewer would not have
        assert mass[n - 1] >= top_p - 1e-9 or n == len(after_k)
        assert n == 1 or mass[n - 2] < top_p
    # kept tokens keep their relative odds
    np.testing.assert_allclose(probs[order][:n] / probs[order][0],
                               base[order][:n] / base[order][0], rtol=1e-9)


# --------------------------------------------------------------------------------------
# validate_sampling and sample's argument checks
# --------------------------------------------------------------------------------------

BAD_SETTINGS = [
    ("temperature", -0.5), ("temperature", math.nan), ("temperature", math.inf),
    ("temperature", "hot"), ("temperature", True),
    ("top_k", 0), ("top_k", -3), ("top_k", 2.5), ("top_k", True),
    ("top_p", 0), ("top_p", 0.0), ("top_p", 1.5), ("top_p", -0.1), ("top_p", math.nan),
]


@pytest.mark.parametrize("name, value", BAD_SETTINGS)
def test_bad_settings_raise_naming_argument_and_value(name, value):
    settings_ = {"temperature": 1.0, "top_k": None, "top_p": None, name: value}
    for call in (lambda: validate_sampling(**settings_),
                 lambda: filter_logits(np.zeros(3), **settings_),
                 lambda: sample(MarkovModel(np.zeros((V, V))), Vocab(CHARS), "ab", 3,
                                **settings_)):
        with pytest.raises(ValueError) as info:
            call()
        assert name in str(info.value) and repr(value) in str(info.value), str(info.value)


def test_good_settings_pass():
    validate_sampling(0, None, None)
    validate_sampling(0.7, np.int64(5), 1)
    validate_sampling(np.float32(2.0), 1, 1e-9)


@pytest.mark.parametrize("length", [-1, 2.0, None, True])
def test_bad_length_raises_naming_it(length):
    with pytest.raises(ValueError, match=f"length.*{length!r}"):
        sample(MarkovModel(np.zeros((V, V))), Vocab(CHARS), "ab", length)


# --------------------------------------------------------------------------------------
# sample
# --------------------------------------------------------------------------------------

def test_temperature_zero_follows_the_argmax_path():
    table = random_table()
    vocab = Vocab(CHARS)
    text = sample(MarkovModel(table), vocab, "cab", length=30, temperature=0, seed=123)
    expected = "cab" + vocab.decode(greedy_path(table, vocab.stoi["b"], 30))
    assert text == expected


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_k_1_and_tiny_top_p_sample_the_greedy_path(seed):
    table, vocab = random_table(seed=5), Vocab(CHARS)
    greedy = sample(MarkovModel(table), vocab, "h", 40, temperature=0)
    assert sample(MarkovModel(table), vocab, "h", 40, top_k=1, seed=seed) == greedy
    assert sample(MarkovModel(table), vocab, "h", 40, top_p=1e-9, seed=seed) == greedy
    assert sample(MarkovModel(table), vocab, "h", 40, temperature=1.5, seed=seed) != greedy


def test_prompt_primes_the_state_and_sampling_continues_from_its_last_char():
    model, vocab = MarkovModel(random_table(seed=6)), Vocab(CHARS)
    text = sample(model, vocab, "bad", length=5, seed=0)
    assert text.startswith("bad") and len(text) == 8
    generated = [vocab.stoi[c] for c in text[3:]]
    # "b", "a" build the state; "d" is fed to draw the first token, each draw the next.
    assert model.fed == [1, 0, 3] + generated[:-1]


def test_empty_prompt_starts_from_id_0_which_is_not_returned():
    model, vocab = MarkovModel(random_table(seed=7)), Vocab(CHARS)
    text = sample(model, vocab, "", length=6, temperature=0)
    assert model.fed[0] == 0 and len(text) == 6
    assert text == vocab.decode(greedy_path(random_table(seed=7), 0, 6))


def test_length_zero_returns_the_prompt_without_stepping():
    model = MarkovModel(random_table())
    assert sample(model, Vocab(CHARS), "abc", length=0) == "abc"
    assert sample(model, Vocab(CHARS), "", length=0) == ""
    assert model.fed == []


def test_same_seed_same_text_different_seeds_different_text():
    table, vocab = np.zeros((V, V)), Vocab(CHARS)  # uniform: 3 bits per character
    runs = {s: sample(MarkovModel(table), vocab, "a", 60, seed=s) for s in range(5)}
    assert sample(MarkovModel(table), vocab, "a", 60, seed=3) == runs[3]
    assert len(set(runs.values())) == 5  # a collision has probability ~ 8**-60


@pytest.mark.parametrize("temperature, top_k, top_p", [
    (1.0, None, None), (0.7, None, None), (2.5, None, None), (1.3, 3, None), (1.0, None, 0.8),
])
def test_sampled_frequencies_match_the_filtered_softmax(temperature, top_k, top_p):
    logits = np.array([2.0, 1.0, 0.5, 0.0, -1.0, 1.5])
    v, n = len(logits), 20000
    model = MarkovModel(np.tile(logits, (v, 1)))  # every row alike: i.i.d. draws
    vocab = Vocab("uvwxyz")
    text = sample(model, vocab, "u", n, temperature, top_k, top_p, seed=2024)
    counts = np.bincount([vocab.stoi[c] for c in text[1:]], minlength=v)

    p = softmax(logits / temperature)
    if top_k is not None:
        p[np.argsort(-p, kind="stable")[top_k:]] = 0
    if top_p is not None:
        order = np.argsort(-p, kind="stable")
        before = np.concatenate([[0], np.cumsum(p[order] / p.sum())[:-1]])
        p[order[before >= top_p]] = 0
    p /= p.sum()

    assert (counts[p == 0] == 0).all(), f"drew filtered-out tokens: {counts}, expected p={p}"
    sigma = np.sqrt(n * p * (1 - p))
    deviation = np.abs(counts - n * p)
    assert (deviation <= 4 * sigma + 1e-9).all(), (
        f"counts {counts} vs expected {n * p} (4 sigma = {4 * sigma})")
    live = p > 0
    chi2 = (((counts - n * p) ** 2)[live] / (n * p[live])).sum()
    assert chi2 < 30, f"chi-square {chi2:.1f} over {live.sum() - 1} degrees of freedom"


def test_a_10000_char_prompt_works():
    model, vocab = MarkovModel(random_table(seed=8)), Vocab(CHARS)
    prompt = "".join(np.random.default_rng(0).choice(list(CHARS), 10_000))
    text = sample(model, vocab, prompt, length=5, seed=0)
    assert text[:10_000] == prompt and len(text) == 10_005
    assert len(model.fed) == 9_999 + 5


@pytest.mark.parametrize("vocab_cls", [Vocab, VagueVocab, StoiOnlyVocab])
def test_unknown_prompt_chars_are_listed(vocab_cls):
    model = MarkovModel(random_table())
    with pytest.raises(ValueError) as info:
        sample(model, vocab_cls(CHARS), "ab!cé!z", 3)
    message = str(info.value)
    for c in "!éz":
        assert repr(c) in message, message
    assert model.fed == []


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_logits_are_refused_naming_the_step(bad):
    # 2 prompt chars: step 1 primes, steps 2.. generate; fed call 4 is generation step 3.
    model = MarkovModel(random_table(), nan_at=4, bad=bad)
    with pytest.raises(ValueError, match=r"non-finite logits.*step 3 of 10"):
        sample(model, Vocab(CHARS), "ab", 10, seed=0)


def test_logits_of_the_wrong_vocabulary_size_are_refused():
    with pytest.raises(ValueError, match=r"shape \(1, V=7\).*\(1, 8\)"):
        sample(MarkovModel(random_table()), Vocab(CHARS[:7]), "ab", 3)


def test_a_strict_device_model_gets_device_ids_and_gives_the_same_text():
    table, vocab = random_table(seed=9), Vocab(CHARS)
    host_text = sample(MarkovModel(table, xp=np), vocab, "fade", 50, top_k=4, seed=11)
    # strict arrays refuse numpy ids and np.* calls, like CuPy arrays would
    device_text = sample(MarkovModel(table, xp=backend.strict), vocab, "fade", 50, top_k=4,
                         seed=11)
    assert device_text == host_text


def test_sampling_chooses_its_blas_threads_as_it_goes_and_puts_them_back(monkeypatch):
    """Without ``threads`` a sample probes one thread and every core; with it, the count
    is fixed; either way the count it found is back when it ends, and the text is the
    same (the thread count changes no number here)."""
    from minirnn.data import CharVocab
    from minirnn.nn import CharRNN
    vocab = CharVocab.from_text("abcdefgh \n")
    model = CharRNN(len(vocab), 16, seed=0).eval()
    used = []
    real_set = backend.blas_threads.set

    def spy(self, n):
        used.append(n)
        return real_set(self, n)
    monkeypatch.setattr(backend.blas_threads, "set", spy)
    monkeypatch.setattr(backend, "cores", lambda: 2)
    with backend.blas_threads(1):
        used.clear()  # the count this test starts from
        free = sample(model, vocab, "ab", length=150, seed=3)
        assert backend.blas_thread_count() == 1
        assert used[:8] == [2] * 8 and used[8:136] == [2, 1] * 64
        used.clear()
        fixed = sample(model, vocab, "ab", length=150, seed=3, threads=1)
        assert set(used) == {1} and backend.blas_thread_count() == 1
    assert free == fixed
