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

Search over any step function ``step_fn(ids (N,), state) -> (logits (N, V), state)``
(``model.step`` of a CharRNN, or a Seq2Seq decoder's step): ``greedy_decode`` and
``beam_search`` (all N*K beams advanced as one batch per step, log-probabilities
summed on the host in float64). ``beam_sample_text`` is beam search for a CharRNN.
"""

from __future__ import annotations

import math
import numbers

# Sampling is host work by design: the V logits of a step are brought to the host
# once and filtered and drawn from there in float64 (see the module docstring).
import numpy as np

from . import backend

__all__ = ["filter_logits", "validate_sampling", "sample", "greedy_decode", "beam_search",
           "beam_sample_text", "reorder_batch"]

# Cumulative sums of probabilities carry rounding error; a nucleus counts as reached
# when its mass is within this much of top_p, so [0.5, 0.3, ...] with top_p=0.8 stops
# at two tokens even when 0.5 + 0.3 rounds to 0.7999999999999999.
_TOP_P_SLACK = 1e-12

# Unknown prompt characters shown in an error message (the rest are counted).
_MAX_SHOWN = 20


def validate_sampling(temperature, top_k, top_p):
    """Check sampling settings; raise ValueError naming the bad argument and its value.

    temperature: a finite real number >= 0 (0 = greedy).
    top_k: None or an int >= 1.
    top_p: None or a real number in (0, 1].
    """
    if (isinstance(temperature, bool) or not isinstance(temperature, numbers.Real)
            or not math.isfinite(temperature) or temperature < 0):
        raise ValueError(
            f"temperature must be a finite number >= 0 (0 means greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral)
                              or top_k < 1):
        raise ValueError(f"top_k must be None or an int >= 1, got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, numbers.Real)
                              or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be None or a number in (0, 1], got {top_p!r}")


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
           seed=None):
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

    Raises ValueError for bad settings (naming the argument and the value), prompt
    characters the vocabulary lacks (listing them), logits of the wrong shape, and
    non-finite logits at a generation step (naming the step). Logits of the steps that
    only feed the prompt are not brought to the host and not checked.
    """
    validate_sampling(temperature, top_k, top_p)
    ids = _prompt_ids("", vocab, prompt, length)  # (P,) host int64
    V = len(vocab)
    if length == 0:
        return prompt

    rng = np.random.default_rng(seed)
    state, token, as_ids = _prime(model, ids)
    out = np.empty(length, dtype=np.int64)
    for i in range(length):
        logits, state = model.step(as_ids(token), state)
        host = backend.to_numpy(logits)  # (1, V): the only transfer of the step
        if host.shape != (1, V):
            raise ValueError(f"sample: model.step must return logits of shape (1, V={V}) "
                             f"for a vocabulary of {V}, got shape {host.shape} at generation "
                             f"step {i + 1} of {length}")
        if not np.isfinite(host).all():
            raise ValueError(f"sample: model.step returned non-finite logits (NaN or Inf) at "
                             f"generation step {i + 1} of {length}; the model's weights or "
                             f"state have diverged")
        probs = filter_logits(host[0], temperature, top_k, top_p)
        token = int(rng.choice(V, p=probs))
        out[i] = token

    text = _decode(vocab, out)
    if getattr(vocab, "kind", "char") == "word" and prompt and text:
        return prompt + " " + text  # word vocabularies decode without a leading space
    return prompt + text


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


# --------------------------------------------------------------------------------------
# Greedy decoding and beam search over a step function
# --------------------------------------------------------------------------------------

def reorder_batch(state, index, batch_axis=0):
    """Take batch rows ``index`` from every array of ``state`` (the default reorder).

    Inputs:
    - state: an array, or a (nested) tuple, namedtuple, list or dict of them; other
      leaves (None, numbers) pass through unchanged.
    - index: (M,) int array on the state's array module; row ``i`` of the result is row
      ``index[i]`` of the input. Repeats are allowed, so this tiles as well as reorders.
    - batch_axis: the batch axis of every array: 0 for ``(N, H)`` states, 1 for the
      ``(L, N, H)`` states of ``CharRNN`` (one ``(L, N, H)`` array per h and c).

    Returns a state of the same structure with batch size M.
    """
    if isinstance(state, dict):
        return {k: reorder_batch(v, index, batch_axis) for k, v in state.items()}
    if isinstance(state, (tuple, list)):
        items = [reorder_batch(v, index, batch_axis) for v in state]
        if hasattr(state, "_fields"):  # a namedtuple takes its fields as arguments
            return type(state)(*items)
        return type(state)(items)
    if hasattr(state, "shape") and hasattr(state, "dtype"):
        return backend.get_array_module(state).take(state, index, axis=batch_axis)
    return state


def _state_arrays(state):
    """Every array in a (nested) tuple / list / dict ``state``."""
    if isinstance(state, dict):
        return [a for v in state.values() for a in _state_arrays(v)]
    if isinstance(state, (tuple, list)):
        return [a for v in state for a in _state_arrays(v)]
    return [state] if hasattr(state, "shape") and hasattr(state, "dtype") else []


def _is_int(x):
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _check_search_args(where, max_len, eos_id, beam_width=1, length_norm=0.0):
    if not _is_int(beam_width) or beam_width < 1:
        raise ValueError(f"{where}: beam_width must be an int >= 1, got {beam_width!r}")
    if not _is_int(max_len) or max_len < 1:
        raise ValueError(f"{where}: max_len must be an int >= 1, got {max_len!r}")
    if eos_id is not None and (not _is_int(eos_id) or eos_id < 0):
        raise ValueError(f"{where}: eos_id must be None or an int >= 0, got {eos_id!r}")
    if (isinstance(length_norm, bool) or not isinstance(length_norm, numbers.Real)
            or not math.isfinite(length_norm) or length_norm < 0):
        raise ValueError(f"{where}: length_norm must be a finite number >= 0 (0 = raw sum "
                         f"of log-probabilities), got {length_norm!r}")


def _check_start_ids(where, start_ids):
    """start_ids (host or device, any int array-like) -> (N,) host int64, N >= 1."""
    ids = np.asarray(backend.to_numpy(start_ids))
    if ids.ndim != 1 or ids.size == 0 or ids.dtype == np.bool_ or not (
            np.issubdtype(ids.dtype, np.integer)):
        raise ValueError(f"{where}: start_ids must be a non-empty (N,) int array, got "
                         f"shape {ids.shape} and dtype {ids.dtype}")
    return ids.astype(np.int64)


def _log_softmax_host(where, logits, rows, eos_id, t, max_len):
    """Step ``t``'s logits (rows, V) -> host float64 log-probabilities, checked."""
    z = np.array(backend.to_numpy(logits), dtype=np.float64)  # (rows, V) on the host
    if z.ndim != 2 or z.shape[0] != rows or z.shape[1] == 0:
        raise ValueError(f"{where}: step_fn must return logits of shape ({rows}, V), got "
                         f"shape {z.shape} at step {t + 1} of {max_len}")
    if eos_id is not None and eos_id >= z.shape[1]:
        raise ValueError(f"{where}: eos_id={eos_id} is outside the vocabulary of "
                         f"V={z.shape[1]} the step function scores")
    zmax = z.max(axis=1, keepdims=True)  # (rows, 1)
    if np.isnan(z).any() or np.isposinf(zmax).any() or np.isneginf(zmax).any():
        raise ValueError(f"{where}: step_fn returned NaN, +inf or an all -inf row of logits "
                         f"at step {t + 1} of {max_len}")
    # log p = z - logsumexp(z), with the max taken out so exp never overflows.
    with np.errstate(under="ignore"):
        return z - zmax - np.log(np.exp(z - zmax).sum(axis=1, keepdims=True))


def greedy_decode(step_fn, state, start_ids, max_len, eos_id=None):
    """Feed each step the most probable token of the step before (argmax, lowest id on ties).

    Inputs:
    - step_fn: ``step_fn(ids, state) -> (logits, state)``, ids (N,) int and logits (N, V)
      on the model's backend (``model.step`` of a CharRNN).
    - state: the state for the first step (``model.initial_state(N)``, or primed).
    - start_ids: (N,) ints fed at the first step (host or device array, or a list).
    - max_len: int >= 1, the most tokens to generate.
    - eos_id: None, or the id that ends a row: it is kept in the row's output, the row
      is padded with it from then on and its score stops growing. Decoding stops early
      once every row has ended.

    Returns:
    - ids: (N, L) host int64, L <= max_len (L < max_len only when every row ended).
    - scores: (N,) host float64, each row's summed log-probabilities of its tokens
      (up to and including its eos).
    """
    _check_search_args("greedy_decode", max_len, eos_id)
    tokens = _check_start_ids("greedy_decode", start_ids)
    N = tokens.shape[0]
    xp = _array_module_of(state) or backend.xp
    out = np.empty((N, max_len), dtype=np.int64)
    scores = np.zeros(N)
    ended = np.zeros(N, dtype=bool)
    for t in range(max_len):
        logits, state = step_fn(xp.asarray(tokens), state)
        logp = _log_softmax_host("greedy_decode", logits, N, eos_id, t, max_len)  # (N, V)
        tokens = logp.argmax(axis=1)
        if eos_id is not None:
            tokens[ended] = eos_id
        scores += np.where(ended, 0.0, logp[np.arange(N), tokens])
        out[:, t] = tokens
        if eos_id is not None:
            ended |= tokens == eos_id
            if ended.all():
                return out[:, :t + 1], scores
    return out, scores


def _top_m(cand, m):
    """(N, C) scores -> (N, m) column indices of each row's m best, best first.

    Ties go to the lower index, exactly as a stable sort of all C would give them;
    ``argpartition`` does the work (O(C), not O(C log C)) unless a tie straddles the
    m-th place, which a full stable sort settles.
    """
    N, C = cand.shape
    if m < C:
        part = np.argpartition(-cand, m - 1, axis=1)[:, :m]  # (N, m): the m best, unordered
        vals = np.take_along_axis(cand, part, axis=1)
        edge = vals.min(axis=1, keepdims=True)  # (N, 1)
        if not ((cand >= edge).sum(axis=1) > m).any():
            order = np.lexsort((part, -vals), axis=-1)  # by score down, then index up
            return np.take_along_axis(part, order, axis=1)
    return np.argsort(-cand, axis=1, kind="stable")[:, :m]


def beam_search(step_fn, state, start_ids, beam_width, max_len, eos_id=None,
                length_norm=1.0, reorder_state=None, state_batch_axis=0):
    """Keep the ``beam_width`` most probable continuations of each row at every step.

    All N*K beams (K = beam_width) are one batch: each step is one ``step_fn`` call on
    (N*K,) ids, beam ``k`` of row ``n`` at position ``n*K + k``. The state is tiled K
    times at the start and, after each step, its rows are reordered to follow the
    beams' parents with ``reorder_state(state, index)``, index (N*K,) int on the
    state's array module. The search itself (scores, ranking, histories) is host work
    in float64.

    Inputs:
    - step_fn, state, start_ids, max_len, eos_id: as in ``greedy_decode``.
    - beam_width: int >= 1. Each row starts with one live beam (scores
      ``[0, -inf, ...]``) so the K copies do not become K identical hypotheses.
    - length_norm: ``alpha >= 0``; a hypothesis of ``len`` generated tokens (its eos
      included) scores ``sum(log p) / len ** alpha``. 0 ranks by the raw sum; 1 by the
      mean log-probability per token.
    - reorder_state: ``f(state, index) -> state``; the default is
      ``reorder_batch(state, index, state_batch_axis)``, which takes rows of every array
      in a (nested) tuple / list / dict.
    - state_batch_axis: the batch axis of the state's arrays for the default reorder:
      0 for (N, H) states, 1 for a CharRNN's ``(L, N, H)`` arrays. Ignored when
      ``reorder_state`` is given.

    A beam that picks ``eos_id`` among the K best candidates of its row leaves the beam
    as a finished hypothesis, and the next best non-eos candidate takes its place;
    finished and live hypotheses compete on the normalised score. The search stops
    early only when it is certain: when every row has no live beam left, or K finished
    hypotheses and no live beam that can reach the worst of them (log-probabilities
    only fall, so a live beam's best final score is ``score / max_len ** alpha``).
    Without ``eos_id`` every hypothesis runs to ``max_len``.

    Returns a list of N lists of ``(ids, score)``: ``ids`` a list of ints (the start id
    not included, eos included when it ended one), ``score`` its normalised float64
    score; best first, beam_width of them (fewer only when fewer distinct sequences
    have a non-zero probability). Equal scores keep the lower beam, then the lower id.
    """
    where = "beam_search"
    _check_search_args(where, max_len, eos_id, beam_width, length_norm)
    start = _check_start_ids(where, start_ids)
    N, K = start.shape[0], beam_width
    xp = _array_module_of(state) or backend.xp
    if reorder_state is None:
        if not _is_int(state_batch_axis):
            raise ValueError(f"{where}: state_batch_axis must be an int, "
                             f"got {state_batch_axis!r}")
        for a in _state_arrays(state):
            if not -a.ndim <= state_batch_axis < a.ndim or a.shape[state_batch_axis] != N:
                raise ValueError(
                    f"{where}: state_batch_axis={state_batch_axis} does not hold the batch of "
                    f"{N} rows in a state array of shape {tuple(a.shape)} (a CharRNN's "
                    f"(L, N, H) state needs state_batch_axis=1)")

        def reorder_state(s, index):
            return reorder_batch(s, index, state_batch_axis)

    state = reorder_state(state, xp.asarray(np.repeat(np.arange(N), K)))  # tile: N -> N*K
    tokens = np.repeat(start, K)  # (N*K,)
    scores = np.full((N, K), -np.inf)  # raw summed log-probabilities of the live beams
    scores[:, 0] = 0.0
    history = np.zeros((N * K, 0), dtype=np.int64)  # (N*K, t) tokens of each live beam
    finished = [[] for _ in range(N)]  # per row: (normalised score, ids), K best
    # K live slots need K non-eos candidates; at most K candidates (one per beam) are eos.
    m = K if eos_id is None else 2 * K
    row_base = (np.arange(N) * K)[:, None]  # (N, 1)
    stopped_early = False
    for t in range(max_len):
        logits, state = step_fn(xp.asarray(tokens), state)
        logp = _log_softmax_host(where, logits, N * K, eos_id, t, max_len)  # (N*K, V)
        V = logp.shape[1]
        cand = (scores.reshape(-1, 1) + logp).reshape(N, K * V)  # (N, K*V): beam-major
        order = _top_m(cand, min(m, K * V))  # (N, m') best first
        vals = np.take_along_axis(cand, order, axis=1)
        parent, tok = order // V, order % V  # (N, m') beam in its row, token
        is_eos = (tok == eos_id) if eos_id is not None else np.zeros(order.shape, dtype=bool)
        live_rank = np.cumsum(~is_eos, axis=1) - 1  # place among the non-eos candidates
        keep = ~is_eos & (live_rank < K)
        # An eos candidate finishes a hypothesis only if it is among the row's K best.
        ends = is_eos & np.isfinite(vals) & (np.arange(order.shape[1]) < K)
        for r, c in zip(*np.nonzero(ends)):
            ids = history[row_base[r, 0] + parent[r, c]].tolist() + [eos_id]
            finished[r].append((vals[r, c] / (t + 1) ** length_norm, ids))
            finished[r].sort(key=lambda h: -h[0])  # stable: the earlier one wins a tie
            del finished[r][K:]
        new_parent = np.zeros((N, K), dtype=np.int64)
        new_tok = np.zeros((N, K), dtype=np.int64)
        scores = np.full((N, K), -np.inf)  # slots no candidate fills stay dead
        r, c = np.nonzero(keep)
        slot = live_rank[r, c]
        new_parent[r, slot], new_tok[r, slot], scores[r, slot] = parent[r, c], tok[r, c], vals[r, c]
        flat_parent = (row_base + new_parent).reshape(-1)  # (N*K,) rows of the old batch
        history = np.concatenate([history[flat_parent], new_tok.reshape(-1, 1)], axis=1)
        tokens = new_tok.reshape(-1)
        best_live = scores.max(axis=1) / max_len ** length_norm  # (N,) the most it can reach
        if eos_id is not None and all(
                np.isneginf(best_live[n])
                or (len(finished[n]) == K and best_live[n] < finished[n][-1][0])
                for n in range(N)):
            stopped_early = True
            break
        if t + 1 < max_len:
            state = reorder_state(state, xp.asarray(flat_parent))

    results = []
    for n in range(N):
        hyps = list(finished[n])
        if not stopped_early:
            L = history.shape[1]
            hyps += [(scores[n, k] / L ** length_norm, history[n * K + k].tolist())
                     for k in range(K) if np.isfinite(scores[n, k])]
        hyps.sort(key=lambda h: -h[0])
        results.append([(ids, float(score)) for score, ids in hyps[:K]])
    return results


def beam_sample_text(model, vocab, prompt, beam_width, length, length_norm=1.0,
                     state_batch_axis=1):
    """The prompt followed by the most probable ``length`` tokens beam search finds.

    The prompt primes the state as in ``sample`` (all of it but its last token; an
    empty prompt starts from id 0), then ``beam_search`` runs for ``length`` steps
    without an end token, so every hypothesis has ``length`` tokens and
    ``length_norm`` does not change the winner. ``state_batch_axis=1`` fits a CharRNN's
    ``(L, N, H)`` state. Put the model in eval mode first (dropout off).

    Raises ValueError for bad settings (naming them), prompt characters the vocabulary
    lacks, and logits whose width is not ``len(vocab)``.
    """
    _check_search_args("beam_sample_text", 1, None, beam_width, length_norm)
    ids = _prompt_ids("beam_sample_text: ", vocab, prompt, length)  # (P,) host int64
    V = len(vocab)
    if length == 0:
        return prompt
    state, token, _ = _prime(model, ids)

    def step(step_ids, step_state):
        logits, step_state = model.step(step_ids, step_state)
        if logits.ndim != 2 or logits.shape[1] != V:
            raise ValueError(f"beam_sample_text: model.step must return logits of shape "
                             f"(N, V={V}) for a vocabulary of {V}, got {tuple(logits.shape)}")
        return logits, step_state

    best_ids, _ = beam_search(step, state, np.array([token]), beam_width, length,
                              length_norm=length_norm, state_batch_axis=state_batch_axis)[0][0]
    text = _decode(vocab, np.asarray(best_ids, dtype=np.int64))
    if getattr(vocab, "kind", "char") == "word" and prompt and text:
        return prompt + " " + text  # word vocabularies decode without a leading space
    return prompt + text
