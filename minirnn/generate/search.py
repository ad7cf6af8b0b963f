"""Search over any step function: greedy decoding and beam search.

A step function ``step_fn(ids (N,), state) -> (logits (N, V), state)`` is ``model.step``
of a CharRNN, or a Seq2Seq decoder's step. ``greedy_decode`` feeds each step the most
probable token; ``beam_search`` keeps the K most probable continuations of each row,
all N*K beams advanced as one batch per step, log-probabilities summed on the host in
float64. ``beam_sample_text`` is beam search for a CharRNN.

When beam search stops early (with an ``eos_id``):

- ``stop="certain"``: only when no row can change its K best: every row has no live beam
  left, or K finished hypotheses and no live beam that can reach the worst of them
  (log-probabilities only fall, so a live beam's best final score is
  ``score / max_len ** alpha``). Exact, but with ``alpha > 0`` that bound is loose, and
  a long ``max_len`` is searched to the end.
- ``stop="likely"``: as soon as every row has K finished hypotheses and no live beam
  whose score so far (``score / len ** alpha``) reaches the worst of them: the rule of
  the usual beam-search decoders. Exact for ``alpha = 0``, where scores only fall; with
  ``alpha > 0`` a live beam's mean could still climb later, which in practice (a beam
  that has not ended is producing what the model doubts) it rarely does, and the search
  then costs steps for the outputs, not for ``max_len``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np  # the search itself is host work, in float64

from .. import backend
from .sampling import _decode, _prime, _prompt_ids, _array_module_of

__all__ = ["greedy_decode", "beam_search", "beam_sample_text", "reorder_batch"]


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
                length_norm=1.0, reorder_state=None, state_batch_axis=0, stop="certain"):
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
    finished and live hypotheses compete on the normalised score. Without ``eos_id``
    every hypothesis runs to ``max_len``; with it, ``stop`` ("certain" or "likely") says
    when the search may end early (see ``_Beams.done`` and the module docstring).

    Returns a list of N lists of ``(ids, score)``: ``ids`` a list of ints (the start id
    not included, eos included when it ended one), ``score`` its normalised float64
    score; best first, beam_width of them (fewer only when fewer distinct sequences
    have a non-zero probability). Equal scores keep the lower beam, then the lower id.
    """
    where = "beam_search"
    _check_search_args(where, max_len, eos_id, beam_width, length_norm)
    if stop not in ("certain", "likely"):
        raise ValueError(f"{where}: stop must be 'certain' or 'likely', got {stop!r}")
    start = _check_start_ids(where, start_ids)
    N, K = start.shape[0], beam_width
    xp = _array_module_of(state) or backend.xp
    if reorder_state is None:
        reorder_state = _default_reorder(where, state, N, state_batch_axis)
    state = reorder_state(state, xp.asarray(np.repeat(np.arange(N), K)))  # tile: N -> N*K
    beams = _Beams(N, K, eos_id, length_norm)
    tokens = np.repeat(start, K)  # (N*K,)
    for t in range(max_len):
        logits, state = step_fn(xp.asarray(tokens), state)
        logp = _log_softmax_host(where, logits, N * K, eos_id, t, max_len)  # (N*K, V)
        flat_parent, tokens = beams.advance(logp, t)
        if beams.done(max_len if stop == "certain" else t + 1):
            return beams.results(stopped_early=True)
        if t + 1 < max_len:
            state = reorder_state(state, xp.asarray(flat_parent))
    return beams.results(stopped_early=False)


def _default_reorder(where, state, N, state_batch_axis):
    """``reorder_batch`` along ``state_batch_axis``, after checking that axis holds N rows."""
    if not _is_int(state_batch_axis):
        raise ValueError(f"{where}: state_batch_axis must be an int, got {state_batch_axis!r}")
    for a in _state_arrays(state):
        if not -a.ndim <= state_batch_axis < a.ndim or a.shape[state_batch_axis] != N:
            raise ValueError(
                f"{where}: state_batch_axis={state_batch_axis} does not hold the batch of "
                f"{N} rows in a state array of shape {tuple(a.shape)} (a CharRNN's "
                f"(L, N, H) state needs state_batch_axis=1)")

    def reorder_state(s, index):
        return reorder_batch(s, index, state_batch_axis)
    return reorder_state


class _Beams:
    """The host side of a beam search over N rows of K beams: the live beams' summed
    log-probabilities and token histories, and each row's K best finished hypotheses."""

    def __init__(self, N, K, eos_id, length_norm):
        self.N, self.K, self.eos_id, self.alpha = N, K, eos_id, length_norm
        self.scores = np.full((N, K), -np.inf)  # raw summed log-probabilities, live beams
        self.scores[:, 0] = 0.0  # one live beam per row at first
        self.history = np.zeros((N * K, 0), dtype=np.int64)  # (N*K, t) tokens of each beam
        self.finished = [[] for _ in range(N)]  # per row: (normalised score, ids), K best
        self.row_base = (np.arange(N) * K)[:, None]  # (N, 1)

    def advance(self, logp, t):
        """Extend every beam by one token given the step's ``logp`` (N*K, V); returns the
        parent of each new beam in the old batch (N*K,) and the new tokens (N*K,)."""
        N, K, V = self.N, self.K, logp.shape[1]
        # K live slots need K non-eos candidates; at most K candidates (one per beam) are eos.
        m = K if self.eos_id is None else 2 * K
        cand = (self.scores.reshape(-1, 1) + logp).reshape(N, K * V)  # (N, K*V): beam-major
        order = _top_m(cand, min(m, K * V))  # (N, m') best first
        vals = np.take_along_axis(cand, order, axis=1)
        parent, tok = order // V, order % V  # (N, m') beam in its row, token
        is_eos = (tok == self.eos_id) if self.eos_id is not None else \
            np.zeros(order.shape, dtype=bool)
        live_rank = np.cumsum(~is_eos, axis=1) - 1  # place among the non-eos candidates
        # An eos candidate finishes a hypothesis only if it is among the row's K best.
        ends = is_eos & np.isfinite(vals) & (np.arange(order.shape[1]) < K)
        for r, c in zip(*np.nonzero(ends)):
            self._finish(r, self.history[self.row_base[r, 0] + parent[r, c]].tolist(),
                         vals[r, c] / (t + 1) ** self.alpha)
        new_parent = np.zeros((N, K), dtype=np.int64)
        new_tok = np.zeros((N, K), dtype=np.int64)
        self.scores = np.full((N, K), -np.inf)  # slots no candidate fills stay dead
        r, c = np.nonzero(~is_eos & (live_rank < K))
        slot = live_rank[r, c]
        new_parent[r, slot], new_tok[r, slot] = parent[r, c], tok[r, c]
        self.scores[r, slot] = vals[r, c]
        flat_parent = (self.row_base + new_parent).reshape(-1)  # (N*K,) rows of the old batch
        self.history = np.concatenate([self.history[flat_parent], new_tok.reshape(-1, 1)],
                                      axis=1)
        return flat_parent, new_tok.reshape(-1)

    def _finish(self, row, ids, score):
        done = self.finished[row]
        done.append((score, ids + [self.eos_id]))
        done.sort(key=lambda h: -h[0])  # stable: the earlier one wins a tie
        del done[self.K:]

    def done(self, length):
        """Can every row stop? It has no live beam left, or K finished hypotheses and no
        live beam that, scored as a hypothesis of ``length`` tokens, reaches the worst
        of them."""
        if self.eos_id is None:
            return False
        best_live = self.scores.max(axis=1) / length ** self.alpha  # (N,)
        return all(np.isneginf(best_live[n]) or (len(self.finished[n]) == self.K
                                                 and best_live[n] < self.finished[n][-1][0])
                   for n in range(self.N))

    def results(self, stopped_early):
        out = []
        for n in range(self.N):
            hyps = list(self.finished[n])
            if not stopped_early:
                L = self.history.shape[1]
                hyps += [(self.scores[n, k] / L ** self.alpha,
                          self.history[n * self.K + k].tolist())
                         for k in range(self.K) if np.isfinite(self.scores[n, k])]
            hyps.sort(key=lambda h: -h[0])
            out.append([(ids, float(score)) for score, ids in hyps[:self.K]])
        return out


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
