"""Encoder-decoder with additive attention: AdditiveAttention and Seq2Seq.

    src ids (N, S) -> embedding -> encoder RNN (optionally bidirectional) -> keys (N, S, Hk)
    for each output step t (teacher forcing in training):
        input_t = [embedding(y_{t-1}), context_{t-1}]          (N, E + Hk)  context fed back
        h_t     = decoder cell(input_t, h_{t-1})                 (N, Hd)
        context_t, weights_t = attention(h_t, keys, src_mask)    (N, Hk), (N, S)
        logits_t = [h_t, context_t] Wo + bo                      (N, V)

The keys are projected once per source sequence (``keys_proj``) and reused by every
decoder step. Every cache is an explicit value returned by a forward and handed to its
backward, so nothing depends on the order in which layers were called.
"""

from __future__ import annotations

import numpy as np

from .. import backend
from .. import functional as F
from .module import Linear, Module
from ..functional.cells import get_cell
from .recurrent import Recurrent, RecurrentCell


class AdditiveAttention(Module):
    """``e_j = v . tanh(q Wq + k_j Wk)``, softmax over unmasked j, context = sum_j w_j k_j."""

    def __init__(self, query_size, key_size, attention_size, rng=None):
        super().__init__()
        rng = np.random.default_rng(0) if rng is None else rng
        self.register("Wq", rng.uniform(-1, 1, (query_size, attention_size)) / np.sqrt(query_size))
        self.register("Wk", rng.uniform(-1, 1, (key_size, attention_size)) / np.sqrt(key_size))
        self.register("v", rng.uniform(-1, 1, attention_size) / np.sqrt(attention_size))

    def project(self, keys):
        """keys (N, S, Hk) -> keys_proj (N, S, A), computed once per source."""
        return F.additive_attention_project_keys(keys, self.params["Wk"])

    def forward(self, query, keys, mask=None, keys_proj=None):
        """-> (context (N, Hk), weights (N, S), cache)."""
        p = self.params
        return F.additive_attention_forward(query, keys, p["Wq"], p["Wk"], p["v"], mask,
                                            keys_proj=keys_proj)

    def backward(self, dcontext, cache, dweights=None):
        """-> (dquery, dkeys); adds dWq, dWk, dv into grads."""
        dquery, dkeys, dWq, dWk, dv = F.additive_attention_backward(dcontext, cache, dweights)
        self.grads["Wq"] += dWq
        self.grads["Wk"] += dWk
        self.grads["v"] += dv
        return dquery, dkeys


def _reverse_index(mask):
    """Per row, the permutation that reverses the real (unpadded) positions; an involution."""
    xp = backend.get_array_module(mask)
    N, S = mask.shape
    lengths = mask.sum(axis=1)[:, None]                   # (N, 1)
    s = xp.arange(S)[None, :]                             # (1, S)
    return xp.where(s < lengths, lengths - 1 - s, s)      # (N, S)


class Seq2Seq(Module):
    """Embedding + recurrent encoder (optionally bidirectional) + attention decoder.

    ``loss(batch) -> (loss, dlogits)`` and ``backward(dlogits)``, with ``batch`` a dict of
    ``src (N, S)`` ids, ``src_mask (N, S)``, ``tgt_in (N, T)``, ``tgt_out (N, T)`` and
    ``tgt_mask (N, T)`` (what ``minirnn.data.tasks.encode_batch`` makes).
    """

    def __init__(self, vocab_size, embedding_dim=32, hidden_size=64, attention_size=32,
                 cell="lstm", bidirectional=False, seed=0):
        super().__init__()
        get_cell(cell, "Seq2Seq: cell")
        self.config = dict(vocab_size=int(vocab_size), embedding_dim=int(embedding_dim),
                           hidden_size=int(hidden_size), attention_size=int(attention_size),
                           cell=cell, bidirectional=bool(bidirectional), seed=int(seed))
        rng = np.random.default_rng(seed)
        V, E, H = vocab_size, embedding_dim, hidden_size
        self.key_size = 2 * H if bidirectional else H
        self.register("embed", rng.standard_normal((V, E)))
        self.enc = self.add("enc", Recurrent(cell, E, H, seed=seed + 1))
        self.enc_back = (self.add("enc_back", Recurrent(cell, E, H, seed=seed + 2))
                         if bidirectional else None)
        self.dec = self.add("dec", RecurrentCell(cell, E + self.key_size, H, rng))
        self.attn = self.add("attn", AdditiveAttention(H, self.key_size, attention_size, rng))
        self.head = self.add("head", Linear(H + self.key_size, V, rng))
        self._cache = None

    # -- encoder ------------------------------------------------------------------------
    def encode(self, src, src_mask):
        """src (N, S) ids, src_mask (N, S) bool -> keys (N, S, Hk) and the encoder cache."""
        xp = backend.get_array_module(src)
        x, emb_cache = F.embedding_forward(src, self.params["embed"])  # (N, S, E)
        keys, _ = self.enc.forward(x)
        rev = None
        if self.enc_back is not None:
            rev = _reverse_index(src_mask)
            rows = xp.arange(src.shape[0])[:, None]
            back, _ = self.enc_back.forward(x[rows, rev])
            keys = xp.concatenate([keys, back[rows, rev]], axis=2)
        return keys, (emb_cache, rev)

    def _encode_backward(self, dkeys, enc_cache):
        emb_cache, rev = enc_cache
        xp = backend.get_array_module(dkeys)
        H = self.config["hidden_size"]
        if rev is None:
            dx, _ = self.enc.backward(dkeys)
        else:
            rows = xp.arange(dkeys.shape[0])[:, None]
            dx, _ = self.enc.backward(dkeys[:, :, :H])
            dx_rev, _ = self.enc_back.backward(dkeys[:, :, H:][rows, rev])
            dx = dx + dx_rev[rows, rev]
        self.grads["embed"] += F.embedding_backward(dx, emb_cache)

    # -- decoder ------------------------------------------------------------------------
    def initial_state(self, keys, src_mask):
        """The decoder state before the first output: zeros, a zero context, and the
        source it attends over. Every entry has the batch on axis 0 (beam search tiles it)."""
        xp, N = backend.get_array_module(keys), keys.shape[0]
        cell_state = self.dec.initial_state(N, xp, keys.dtype)
        context = xp.zeros((N, self.key_size), dtype=keys.dtype)
        return cell_state + (context, keys, self.attn.project(keys), src_mask)

    def _step(self, ids, state):
        """One decoder step: ids (N,) -> logits (N, V), next state, weights (N, S), caches."""
        xp = backend.get_array_module(ids)
        n = len(state) - 4
        cell_state, (context, keys, keys_proj, mask) = state[:n], state[n:]
        emb, emb_cache = F.embedding_forward(ids, self.params["embed"])    # (N, E)
        inp = xp.concatenate([emb, context], axis=1)                        # (N, E + Hk)
        h, cell_state, cell_cache = self.dec.forward(inp, cell_state)
        context, weights, attn_cache = self.attn.forward(h, keys, mask, keys_proj)
        logits, head_cache = F.affine_forward(xp.concatenate([h, context], axis=1),
                                              self.head.params["W"], self.head.params["b"])
        new_state = cell_state + (context, keys, keys_proj, mask)
        return logits, new_state, weights, (emb_cache, cell_cache, attn_cache, head_cache)

    def step(self, ids, state):
        """Inference step for greedy and beam search: (logits (N, V), next state)."""
        logits, state, _, _ = self._step(ids, state)
        return logits, state

    # -- training -----------------------------------------------------------------------
    def loss(self, batch):
        """Mean cross-entropy per target symbol with teacher forcing -> (loss, dlogits);
        keeps the caches for ``backward``."""
        src, src_mask, tgt_in = batch["src"], batch["src_mask"], batch["tgt_in"]
        keys, enc_cache = self.encode(src, src_mask)
        state = self.initial_state(keys, src_mask)
        T = tgt_in.shape[1]
        logits, caches, weights = [], [], []
        for t in range(T):
            lg, state, w, cache = self._step(tgt_in[:, t], state)
            logits.append(lg)
            caches.append(cache)
            weights.append(w)
        xp = backend.get_array_module(keys)
        loss, dlogits = F.softmax_cross_entropy(xp.stack(logits, axis=1), batch["tgt_out"],
                                                batch["tgt_mask"])
        self._cache = (enc_cache, caches, keys.shape)
        self.last_weights = xp.stack(weights, axis=1)  # (N, T, S), for plots
        return loss, dlogits

    def backward(self, dlogits):
        """Backpropagate ``dlogits`` (N, T, V) through decoder, attention and encoder."""
        if self._cache is None:
            raise RuntimeError("Seq2Seq.backward: call loss(...) first")
        enc_cache, caches, keys_shape = self._cache
        xp = backend.get_array_module(dlogits)
        H, E = self.config["hidden_size"], self.config["embedding_dim"]
        dkeys = xp.zeros(keys_shape, dtype=dlogits.dtype)
        N = keys_shape[0]
        dstate = tuple(xp.zeros((N, H), dtype=dlogits.dtype) for _ in range(self.dec.spec.n_state))
        dcontext_next = xp.zeros((N, self.key_size), dtype=dlogits.dtype)
        for t in range(len(caches) - 1, -1, -1):
            emb_cache, cell_cache, attn_cache, head_cache = caches[t]
            dout, dW, db = F.affine_backward(dlogits[:, t], head_cache)
            self.head.grads["W"] += dW
            self.head.grads["b"] += db
            dcontext = dout[:, H:] + dcontext_next   # read by the output and by step t+1
            dquery, dk = self.attn.backward(dcontext, attn_cache)
            dkeys += dk
            dinp, dstate = self.dec.backward(dout[:, :H] + dquery, dstate, cell_cache)
            self.grads["embed"] += F.embedding_backward(dinp[:, :E], emb_cache)
            dcontext_next = dinp[:, E:]
        self._encode_backward(dkeys, enc_cache)
        self._cache = None
