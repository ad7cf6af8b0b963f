"""Sampling text from a language model: temperature, top-k, top-p (nucleus) and greedy.

A model takes part through two methods (``CharRNN`` provides them)::

    state = model.initial_state(batch_size)        # opaque
    logits, state = model.step(ids, state)         # ids (N,) int, logits (N, V)

The model runs on its own backend (NumPy, CuPy or the strict stand-in); only the
``V`` logits of each step come to the host (``backend.to_numpy``), where the
filtering and the draw happen in float64 with a seeded ``numpy.random.Generator``.
The same seed gives the same text on every backend whose logits agree.

Filtering order (the order of Hugging Face's logits warpers, and of nanoGPT):

1. temperature ``T``: ``p = softmax(logits / T)``; ``T = 0`` means greedy (one-hot at
   the argmax); ``T < 1`` sharpens, ``T > 1`` flattens.
2. top-k: keep the ``k`` most probable tokens (all of them when ``k >= V``).
3. top-p: of what is left (renormalised), keep the smallest set of most probable
   tokens whose probability adds up to at least ``p``; the most probable token is
   always kept, so a tiny ``p`` is greedy.
4. renormalise what is kept.

Ties are broken the same way every time: by descending probability, then by
ascending id (a stable sort), so greedy picks the lowest id among equal maxima.

Search (greedy decoding, beam search) is ``search.py``.
"""

from __future__ import annotations

import numbers
import time
from dataclasses import dataclass
from typing import Optional

# Sampling is host work by design: the V logits of a step are brought to the host
# once and filtered and drawn from there in float64 (see the module docstring).
import numpy as np

from .. import backend
from ..settings import check_settings, setting

__all__ = ["SampleConfig", "filter_logits", "validate_sampling", "sample", "sample_stream"]

# Cumulative sums of probabilities carry rounding error; a nucleus counts as reached
# when its mass is within this much of top_p, so [0.5, 0.3, ...] with top_p=0.8 stops
# at two tokens even when 0.5 + 0.3 rounds to 0.7999999999999999.
_TOP_P_SLACK = 1e-12

# Unknown prompt characters shown in an error message (the rest are counted).
_MAX_SHOWN = 20


@dataclass
class SampleConfig:
    """The settings of ``minirnn sample`` (and the checks ``sample`` applies)."""
    prompt: str = setting("", "text to start from (default: the start of a line)")
    length: int = setting(500, "characters (words for a word model) to generate", low=0)
    temperature: float = setting(1.0, "divide the logits by this; below 1 sharpens, above "
                                 "1 flattens, 0 is greedy", low=0.0)
    top_k: Optional[int] = setting(None, "draw only from the k most probable tokens",
                                   kind=int, optional=True, low=1)
    top_p: Optional[float] = setting(None, "draw only from the most probable tokens whose "
                                     "probability adds up to p (nucleus sampling)",
                                     kind=float, optional=True, low=0, low_open=True,
                                     high=1, high_open=False)
    seed: Optional[int] = setting(None, "random seed: the same seed gives the same text",
                                  kind=int, optional=True, low=0)
    beam_width: int = setting(1, "above 1: beam search for the most probable continuation "
                              "(ignores --temperature, --top-k and --top-p)", low=1)
    threads: Optional[int] = setting(None, "BLAS threads (default: chosen as it goes, by "
                                     "timing tokens drawn on 1 thread and on every core)",
                                     kind=int, optional=True, low=1)

    def __post_init__(self):
        check_settings(self)


def validate_sampling(temperature, top_k, top_p):
    """Check sampling settings; raise a ValueError (``SettingError``) naming the bad one.

    temperature: a finite real number >= 0 (0 = greedy).
    top_k: None or an int >= 1.
    top_p: None or a real number in (0, 1].
    """
    SampleConfig(temperature=temperature, top_k=top_k, top_p=top_p)


def filter_logits(logits, temperature=1.0, top_k=None, top_p=None):
    """Logits -> the probabilities to sample the next token from.

    Inputs:
    - logits: (V,) or (N, V) host float array (a device array is copied to the host).
      ``-inf`` marks a token that may never be drawn; NaN and ``+inf`` are refused.
    - temperature, top_k, top_p: see ``validate_sampling`` and the module docstring.

    Returns:
    - probs: float64 array of the same shape; each row is >= 0 and sums to 1.
    """
    validate_sampling(temperature, top_k, top_p)
    z = np.array(backend.to_numpy(logits), dtype=np.float64)  # a float64 copy on the host
    if z.ndim not in (1, 2) or z.shape[-1] == 0:
        raise ValueError(f"filter_logits: logits must have shape (V,) or (N, V) with V >= 1, "
                         f"got shape {z.shape}")
    if np.isnan(z).any() or np.isposinf(z).any():
        raise ValueError("filter_logits: logits must be finite (or -inf for a token never to "
                         "draw), got NaN or +inf")
    V = z.shape[-1]
    rows = z.reshape(-1, V)  # (N, V)
    if rows.shape[0] == 0:
        return z
    zmax = rows.max(axis=1, keepdims=True)  # (N, 1)
    if np.isneginf(zmax).any():
        raise ValueError("filter_logits: every logit of a row is -inf, there is no token to draw")

    if temperature == 0:
        probs = np.zeros_like(rows)
        probs[np.arange(rows.shape[0]), rows.argmax(axis=1)] = 1.0  # argmax: lowest id on ties
        return probs.reshape(z.shape)

    # Subtracting the max first makes every exponent <= 0: exp never overflows, and the
    # max token gets exp(0) = 1, so the sum is >= 1. Tiny temperatures push the others
    # to exp(-huge) = 0, which is the right answer, not an error.
    with np.errstate(over="ignore", under="ignore"):
        e = np.exp((rows - zmax) / temperature)
        probs = e / e.sum(axis=1, keepdims=True)
        if (top_k is not None and top_k < V) or (top_p is not None and top_p < 1):
            probs = _truncate(probs, top_k, top_p)
    return probs.reshape(z.shape)


def _truncate(probs, top_k, top_p):
    """Zero all but the top-k / top-p tokens of each row of ``probs`` (N, V); renormalise."""
    N, V = probs.shape
    order = np.argsort(-probs, axis=1, kind="stable")  # (N, V): descending prob, then id
    p_sorted = np.take_along_axis(probs, order, axis=1)
    keep_sorted = np.ones((N, V), dtype=bool)
    if top_k is not None and top_k < V:
        keep_sorted[:, top_k:] = False
    if top_p is not None and top_p < 1:
        # top-p looks at the distribution top-k left, renormalised.
        kept = np.where(keep_sorted, p_sorted, 0.0)
        kept /= kept.sum(axis=1, keepdims=True)
        before = np.zeros_like(kept)  # mass of the more probable tokens
        np.cumsum(kept[:, :-1], axis=1, out=before[:, 1:])
        keep_sorted &= before < top_p - _TOP_P_SLACK
        keep_sorted[:, 0] = True  # the most probable token always stays
    keep = np.empty_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=1)
    out = np.where(keep, probs, 0.0)
    out /= out.sum(axis=1, keepdims=True)
    return out


def _prompt_ids(where, vocab, prompt, length):
    """Check ``length`` (int >= 0) and ``prompt`` (str) and encode the prompt: (P,) ids."""
    if isinstance(length, bool) or not isinstance(length, numbers.Integral) or length < 0:
        raise ValueError(f"{where}length must be an int >= 0, got {length!r}")
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    return _encode(vocab, prompt, len(vocab))


def sample(model, vocab, prompt="", length=200, temperature=1.0, top_k=None, top_p=None,
           seed=None, threads=None):
    """Generate ``length`` tokens after ``prompt``; return the prompt followed by them.

    Inputs:
    - model: has ``initial_state(batch_size)`` and ``step(ids, state) -> (logits, state)``
      with ids (1,) int and logits (1, V) on the model's backend.
    - vocab: has ``encode(str) -> int array`` (or a ``stoi`` dict), ``decode(ids) -> str``
      and ``len(vocab) == V``.
    - prompt: str. All of it but its last token is fed to build the state; sampling
      continues from its last token. With an empty prompt the first step is fed id 0,
      which is not part of the result: vocabularies that sort their characters give
      id 0 to ``"\\n"`` when the text has line breaks, so the model starts as at the
      beginning of a line. Pass a prompt to start anywhere else.
    - length: int >= 0, tokens to generate (0 returns the prompt unchanged).
    - temperature, top_k, top_p: see ``filter_logits``.
    - seed: for ``numpy.random.default_rng``; the same seed gives the same text.
    - threads: BLAS threads; None chooses as it goes (``backend.ThreadChoice``: now and
      then tokens alternate between one thread and every core, the faster is kept).

    Raises ValueError for bad settings (naming the argument and the value), prompt
    characters the vocabulary lacks (listing them), logits of the wrong shape, and
    non-finite logits at a generation step (naming the step). Logits of the steps that
    only feed the prompt are not brought to the host and not checked.
    """
    return "".join(sample_stream(model, vocab, prompt, length, temperature, top_k, top_p,
                                 seed, threads))


def sample_stream(model, vocab, prompt="", length=200, temperature=1.0, top_k=None,
                  top_p=None, seed=None, threads=None):
    """``sample``, as it goes: yields the prompt, then the text of each token as soon as
    it is drawn (joined, the pieces are exactly ``sample``'s result). The settings are
    checked and the prompt encoded before the first piece comes."""
    validate_sampling(temperature, top_k, top_p)
    ids = _prompt_ids("", vocab, prompt, length)  # (P,) host int64
    return _stream(model, vocab, prompt, ids, length, (temperature, top_k, top_p), seed,
                   threads)


def _stream(model, vocab, prompt, ids, length, settings, seed, threads):
    V = len(vocab)
    yield prompt
    if length == 0:
        return
    # Word vocabularies decode with a space between words (and after the prompt).
    sep = " " if getattr(vocab, "kind", "char") == "word" else ""
    pieces = [_decode(vocab, np.array([i])) for i in range(V)]
    rng = np.random.default_rng(seed)
    # A token takes well under a millisecond: probe on many of them, alternating every
    # token, and without a minimum length, so a short sample is not all probe. Beside a
    # busy process a rare token on every core stalls for a whole time slice, so the
    # probe needs many tokens to see it, and a probe that did not is not repeated soon.
    choice = backend.ThreadChoice(threads, warmup=8, probe=64, probe_s=0.0, run=1,
                                  recheck=20)
    with backend.blas_threads() as blas:
        state, token, as_ids = _prime(model, ids)
        for i in range(length):
            t0 = time.perf_counter()
            blas.set(choice.threads_for())
            logits, state = model.step(as_ids(token), state)
            token = _draw(logits, V, rng, settings, i, length)
            choice.record(time.perf_counter() - t0)
            yield (sep if (i or prompt) else "") + pieces[token]


def _draw(logits, V, rng, settings, i, length):
    """The token drawn from one step's ``logits`` (1, V), brought to the host and checked."""
    host = backend.to_numpy(logits)  # (1, V): the only transfer of the step
    if host.shape != (1, V):
        raise ValueError(f"sample: model.step must return logits of shape (1, V={V}) "
                         f"for a vocabulary of {V}, got shape {host.shape} at generation "
                         f"step {i + 1} of {length}")
    if not np.isfinite(host).all():
        raise ValueError(f"sample: model.step returned non-finite logits (NaN or Inf) at "
                         f"generation step {i + 1} of {length}; the model's weights or "
                         f"state have diverged")
    return int(rng.choice(V, p=filter_logits(host[0], *settings)))


def _prime(model, ids):
    """Feed all of the prompt ``ids`` (P,) but the last to a fresh batch-1 state.

    Returns (state, the token to feed next: the prompt's last id, or 0 for an empty
    prompt, and ``as_ids(token) -> (1,)`` id array on the model's array module).
    """
    state = model.initial_state(1)
    # ids go to the model on the array module its state lives on (the current backend
    # when the state holds no arrays we can see).
    xp = _array_module_of(state) or backend.xp

    def as_ids(token):
        return xp.asarray(np.array([token], dtype=np.int64))  # (1,)

    for token in ids[:-1].tolist():  # a loop, not recursion: any prompt length works
        _, state = model.step(as_ids(token), state)
    return state, (int(ids[-1]) if ids.size else 0), as_ids


def _array_module_of(state):
    """The array module of the first array found in ``state`` (nested tuples, lists,
    dicts), or None when it holds none."""
    stack = [state]
    while stack:
        obj = stack.pop()
        if isinstance(obj, (tuple, list)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif hasattr(obj, "shape") and hasattr(obj, "dtype"):
            return backend.get_array_module(obj)
    return None


def _unknown_chars(vocab, prompt):
    """The distinct characters of ``prompt`` the vocabulary cannot encode, sorted."""
    stoi = getattr(vocab, "stoi", None)
    unknown = []
    for c in sorted(set(prompt)):
        if stoi is not None:
            if c not in stoi:
                unknown.append(c)
            continue
        try:
            vocab.encode(c)
        except (ValueError, KeyError):
            unknown.append(c)
    return unknown


def _unknown_message(unknown):
    shown = ", ".join(repr(c) for c in unknown[:_MAX_SHOWN])
    more = f" and {len(unknown) - _MAX_SHOWN} more" if len(unknown) > _MAX_SHOWN else ""
    return f"prompt has {len(unknown)} character(s) not in the vocabulary: {shown}{more}"


def _encode(vocab, prompt, V):
    """``prompt`` -> (P,) host int64 ids, checked to lie in [0, V)."""
    if hasattr(vocab, "encode"):
        try:
            ids = vocab.encode(prompt)
        except (ValueError, KeyError) as e:
            unknown = _unknown_chars(vocab, prompt)
            if (isinstance(e, ValueError) and unknown
                    and all(repr(c) in str(e) for c in unknown[:_MAX_SHOWN])):
                raise  # the vocabulary's own message already lists them
            if not unknown:
                raise
            raise ValueError(f"{_unknown_message(unknown)} ({e})") from e
    elif hasattr(vocab, "stoi"):
        unknown = _unknown_chars(vocab, prompt)
        if unknown:
            raise ValueError(_unknown_message(unknown))
        ids = [vocab.stoi[c] for c in prompt]
    else:
        raise TypeError(f"vocab must have encode(str) or a stoi dict, got {type(vocab).__name__}")

    ids = np.asarray(backend.to_numpy(ids))
    if ids.size == 0:
        return np.zeros(0, dtype=np.int64)
    if ids.dtype == np.bool_ or not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"sample: vocab.encode must return integer ids, got dtype {ids.dtype}")
    ids = ids.reshape(-1).astype(np.int64)
    bad = (ids < 0) | (ids >= V)
    if bad.any():
        raise ValueError(f"sample: vocab.encode returned ids outside [0, {V}) for a vocabulary "
                         f"of {V}: {ids[bad][:10].tolist()}")
    return ids


def _decode(vocab, ids):
    if hasattr(vocab, "decode"):
        return vocab.decode(ids)
    return "".join(vocab.itos[i] for i in ids.tolist())
