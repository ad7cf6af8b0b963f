"""GPT: a decoder-only transformer over characters (or words), in minirnn's functional ops.

    ids (N, T) -> token embedding + position embedding (N, T, E) -> dropout
        -> num_layers x Block -> LayerNorm -> Linear (N, T, V) logits

    Block (pre-LayerNorm, GPT-2's):
        x = x + dropout(attention(LayerNorm(x)))         causal, num_heads heads
        x = x + dropout(W2 gelu(W1 LayerNorm(x)))        a 4E-wide MLP

Dropout sits where nanoGPT puts it, after the embeddings and on each residual branch,
except on the attention weights (the functional op has no dropout inside).
Initialisation is GPT-2's: every weight matrix and embedding N(0, 0.02), the two
projections back into the residual stream N(0, 0.02 / sqrt(2 L)), biases 0, LayerNorm
scale 1 and shift 0.

It speaks the model protocol of ``CharRNN``: ``loss(batch) -> (loss, dlogits)`` with
``batch = {"ids": (N, T), "targets": (N, T)}`` (T <= ``block_size``; a ``"state"`` of
None is accepted and nothing is carried, so ``final_state`` is always None), and
``backward(dlogits)``. For generation, ``initial_state(N)`` and ``step(ids (N,), state)
-> (logits (N, V), state)`` keep every layer's keys and values (``GPTState``), so each
new position costs one row of attention per layer, O(T), not a whole forward pass.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .. import backend
from .. import functional as F
from ..functional.self_attention import KVCache
from .module import Dropout, Embedding, Linear, Module

INIT_STD = 0.02


def _quiet_overflow():
    """NumPy's overflow and invalid-value warnings off, for the passes of a model whose
    weights have blown up: the layer norms' squares and GELU's cubes overflow first, and
    the training loop stops such a run on its non-finite or exploding loss with its own
    message, which the warnings would only precede with noise. (On CuPy, no-op.)"""
    return np.errstate(over="ignore", invalid="ignore")


class GPTState(NamedTuple):
    """What ``GPT.step`` carries from one position to the next, batch on axis 1 of every
    array (as a CharRNN's ``(L, N, H)`` state, so beam search reorders it the same way).

    ``k[l]`` and ``v[l]`` are layer ``l``'s key and value buffers (a
    ``functional.self_attention.KVCache`` each); ``ids`` holds the tokens fed so far, to
    start the window again when it is full (see ``GPT.step``).
    """
    k: object     # (L, N, n_heads, block_size, hs) keys of the positions so far
    v: object     # (L, N, n_heads, block_size, hs) their values
    ids: object   # (block_size, N) the tokens fed, position-major
    length: int   # positions filled


def _normal(rng, shape, std):
    return rng.normal(0.0, std, size=shape)


class LayerNorm(Module):
    """Layer normalisation over the last axis with a learned scale and shift."""

    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.register("gamma", np.ones(dim))
        self.register("beta", np.zeros(dim))
        self.eps = eps
        self._cache = None

    def forward(self, x):
        y, self._cache = F.layer_norm_forward(x, self.params["gamma"], self.params["beta"],
                                              self.eps)
        return y

    def backward(self, dy):
        dx, dgamma, dbeta = F.layer_norm_backward(dy, self._cache)
        self.grads["gamma"] += dgamma
        self.grads["beta"] += dbeta
        return dx


class CausalSelfAttention(Module):
    """Causal multi-head self-attention, ``F.causal_self_attention_forward``'s weights."""

    def __init__(self, dim, n_heads, rng, proj_std=INIT_STD):
        super().__init__()
        self.n_heads = n_heads
        self.register("Wqkv", _normal(rng, (dim, 3 * dim), INIT_STD))
        self.register("bqkv", np.zeros(3 * dim))
        self.register("Wo", _normal(rng, (dim, dim), proj_std))
        self.register("bo", np.zeros(dim))
        self.cache = None  # the forward's SelfAttentionCache (GPT.step's window reads it)

    def weights(self):
        p = self.params
        return p["Wqkv"], p["bqkv"], p["Wo"], p["bo"]

    def forward(self, x):
        y, self.cache = F.causal_self_attention_forward(x, *self.weights(), self.n_heads)
        return y

    def backward(self, dy):
        dx, *dw = F.causal_self_attention_backward(dy, self.cache)
        for name, d in zip(("Wqkv", "bqkv", "Wo", "bo"), dw):
            self.grads[name] += d
        return dx

    def step(self, x_t, kv):
        """One position: x_t (N, E), kv a KVCache -> (y_t (N, E), kv)."""
        return F.causal_self_attention_step(x_t, kv, *self.weights(), self.n_heads)


class Block(Module):
    """One pre-LayerNorm transformer block: attention, then the MLP, each a residual."""

    def __init__(self, dim, n_heads, dropout, rng, proj_std, seed):
        super().__init__()
        self.ln1 = self.add("ln1", LayerNorm(dim))
        self.attn = self.add("attn", CausalSelfAttention(dim, n_heads, rng, proj_std))
        self.drop1 = self.add("drop1", Dropout(dropout, seed=seed))
        self.ln2 = self.add("ln2", LayerNorm(dim))
        self.fc = self.add("fc", _linear(dim, 4 * dim, rng, INIT_STD))
        self.proj = self.add("proj", _linear(4 * dim, dim, rng, proj_std))
        self.drop2 = self.add("drop2", Dropout(dropout, seed=seed + 1))
        self._gelu = None

    def mlp(self, x):
        u = self.fc.forward(self.ln2.forward(x))        # (N, T, 4E)
        a, self._gelu = F.gelu_forward(u)
        return self.proj.forward(a)                      # (N, T, E)

    def forward(self, x):
        x = x + self.drop1.forward(self.attn.forward(self.ln1.forward(x)))
        return x + self.drop2.forward(self.mlp(x))

    def backward(self, dx):
        """dx: the gradient at the block's output (N, T, E); returns it at the input."""
        du = F.gelu_backward(self.proj.backward(self.drop2.backward(dx)), self._gelu)
        dx = dx + self.ln2.backward(self.fc.backward(du))
        return dx + self.ln1.backward(self.attn.backward(self.drop1.backward(dx)))

    def step(self, x_t, kv):
        """One position of the block in eval mode: x_t (N, E) -> (N, E), kv."""
        a, kv = self.attn.step(self.ln1.forward(x_t), kv)
        x_t = x_t + a
        return x_t + self.mlp(x_t), kv


def _linear(n_in, n_out, rng, std):
    """A Linear layer with GPT-2's initialisation: W ~ N(0, std), b = 0."""
    layer = Linear(n_in, n_out, rng)
    layer.params["W"][...] = backend.asarray(_normal(rng, (n_in, n_out), std),
                                             dtype=layer.params["W"].dtype)
    layer.params["b"][...] = 0
    return layer


class GPT(Module):
    """Decoder-only transformer: ``vocab_size`` symbols, a context of ``block_size``
    positions, ``num_layers`` blocks of width ``embedding_dim`` with ``num_heads`` heads.
    """

    def __init__(self, vocab_size, block_size=64, num_layers=4, embedding_dim=128,
                 num_heads=4, dropout=0.0, seed=0):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("block_size", block_size),
                            ("num_layers", num_layers), ("embedding_dim", embedding_dim),
                            ("num_heads", num_heads)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"GPT: {name} must be a positive int, got {value!r}")
        if embedding_dim % num_heads:
            raise ValueError(f"GPT: num_heads must divide embedding_dim = {embedding_dim} "
                             f"into equal heads, got num_heads = {num_heads}")
        self.config = dict(vocab_size=int(vocab_size), block_size=int(block_size),
                           num_layers=int(num_layers), embedding_dim=int(embedding_dim),
                           num_heads=int(num_heads), dropout=float(dropout), seed=int(seed))
        rng = np.random.default_rng(seed)
        V, B, L, E = vocab_size, block_size, num_layers, embedding_dim
        self.vocab_size, self.block_size, self.num_layers = int(V), int(B), int(L)
        self.num_heads, self.head_size = int(num_heads), E // num_heads
        self.embed = self.add("embed", Embedding(V, E, rng))
        self.embed.params["W"][...] = backend.asarray(_normal(rng, (V, E), INIT_STD),
                                                      dtype=self.embed.params["W"].dtype)
        self.register("pos", _normal(rng, (B, E), INIT_STD))
        self.drop = self.add("drop", Dropout(dropout, seed=seed + 1))
        proj_std = INIT_STD / math.sqrt(2 * L)
        self.blocks = [self.add(f"blocks.{i}", Block(E, num_heads, dropout, rng, proj_std,
                                                     seed + 2 + 2 * i)) for i in range(L)]
        self.ln_f = self.add("ln_f", LayerNorm(E))
        self.head = self.add("head", _linear(E, V, rng, INIT_STD))
        self.final_state = None  # nothing is carried between batches

    # -- training ----------------------------------------------------------------------
    def forward(self, ids):
        """ids: (N, T) ints, T <= block_size -> logits (N, T, V)."""
        T = ids.shape[-1] if getattr(ids, "ndim", 0) == 2 else None
        if T is None or not 1 <= T <= self.block_size:
            raise ValueError(f"GPT: ids must have shape (N, T) with 1 <= T <= block_size = "
                             f"{self.block_size}, got shape {tuple(getattr(ids, 'shape', ()))}")
        with _quiet_overflow():
            x = self.embed.forward(ids)                  # (N, T, E)
            x += self.params["pos"][:T]
            x = self.drop.forward(x)
            for block in self.blocks:
                x = block.forward(x)
            return self.head.forward(self.ln_f.forward(x))  # (N, T, V)

    def loss(self, batch):
        """Mean cross-entropy (nats per symbol) of ``batch["targets"]`` given
        ``batch["ids"]`` -> (loss 0-d array, dlogits (N, T, V))."""
        if batch.get("state") is not None:
            raise ValueError("GPT.loss: batch['state'] must be None: a GPT carries nothing "
                             "from one window to the next")
        logits = self.forward(batch["ids"])
        return F.softmax_cross_entropy(logits, batch["targets"], batch.get("mask"))

    def backward(self, dlogits):
        """Add the gradient of the last ``loss`` into ``grads``; dlogits (N, T, V)."""
        with _quiet_overflow():
            dx = self.ln_f.backward(self.head.backward(dlogits))
            for block in reversed(self.blocks):
                dx = block.backward(dx)
            dx = self.drop.backward(dx)
        self.grads["pos"][:dx.shape[1]] += dx.sum(axis=0)
        self.embed.backward(dx)

    # -- generation --------------------------------------------------------------------
    def initial_state(self, batch_size):
        """An empty GPTState for ``batch_size`` sequences."""
        xp, dtype = backend.get_array_module(self.params["pos"]), self.params["pos"].dtype
        shape = (self.num_layers, batch_size, self.num_heads, self.block_size, self.head_size)
        return GPTState(xp.zeros(shape, dtype=dtype), xp.zeros(shape, dtype=dtype),
                        xp.zeros((self.block_size, batch_size), dtype=np.int64), 0)

    def step(self, ids, state):
        """One position of inference: ids (N,) -> logits (N, V), the next GPTState.

        The logits equal the last position's of ``forward`` over the tokens fed so far,
        as long as they fit the context. When the window is full (``block_size`` tokens),
        it starts again from its last ``block_size // 2`` tokens, whose keys and values
        one batched forward pass recomputes at their new positions: the model then sees
        between half and all of a window of context, and n tokens cost O(n * block_size)
        attention work in all. Call it in eval mode (dropout off).
        """
        k, v, fed, t = state
        if t == self.block_size:
            k, v, fed, t = self._restart(fed)
        fed[t] = ids
        with _quiet_overflow():
            x = self.embed.forward(ids)                  # (N, E)
            x = x + self.params["pos"][t]
            for layer, block in enumerate(self.blocks):
                x, _ = block.step(x, KVCache(k[layer], v[layer], t))
            logits = self.head.forward(self.ln_f.forward(x))  # (N, V)
        return logits, GPTState(k, v, fed, t + 1)

    def _restart(self, fed):
        """The state of a window holding the last ``block_size // 2`` tokens of ``fed``
        (none for a context of one position)."""
        keep, N = self.block_size // 2, fed.shape[1]
        state = self.initial_state(N)
        if keep == 0:
            return state
        recent = fed[self.block_size - keep:]            # (keep, N)
        state.ids[:keep] = recent
        self.forward(backend.get_array_module(fed).ascontiguousarray(recent.T))
        for layer, block in enumerate(self.blocks):
            kv = F.causal_self_attention_kv_cache(N, self.block_size,
                                                  block.attn.params["Wqkv"], self.num_heads,
                                                  block.attn.cache)
            state.k[layer], state.v[layer] = kv.k, kv.v
        return state._replace(length=keep)
