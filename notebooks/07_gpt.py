# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · From RNN to GPT
#
# An LSTM reads a text one character at a time and carries everything it knows about
# the past in one state vector $h_t$. To use a character fifty positions back, that
# character must survive fifty updates of $h$, and its gradient must come back through
# fifty steps. A **transformer** drops the recurrence. Every position looks directly at
# every earlier position through **self-attention**, so the path between any two
# characters is one step long, and all positions of a window are computed at once, as
# a few large matrix products. GPT is a stack of such blocks trained to predict the next
# character, as our char-RNN was.
#
# One block, in pre-LayerNorm form (GPT-2's), maps $x$ of shape $(N, T, E)$ to the same
# shape:
#
# $$x \leftarrow x + \mathrm{Attention}(\mathrm{LN}_1(x)), \qquad
# x \leftarrow x + W_2\,\mathrm{GELU}(W_1\,\mathrm{LN}_2(x) + b_1) + b_2$$
#
# The notebook has three parts:
#
# 1. **The block by hand.** You write layer normalisation, causal self-attention and the
#    layer norm's backward pass, checked against the library
#    (`minirnn.functional.layer_norm_forward`, `causal_self_attention_forward`) and
#    against centred differences. Then we assemble one block from the library's ops.
# 2. **What the heads look at.** A small GPT (`minirnn.nn.GPT`) trained on tiny
#    Shakespeare, and the attention weights of each of its heads over a passage.
# 3. **LSTM against GPT.** An LSTM trained for the same seconds of CPU time, both
#    validation curves on one plot, a sample from each, and generation with a key/value
#    cache.
#
# The derivations are in `docs/derivations/layer-norm.md`, `gelu.md` and
# `self-attention.md`. In the classroom version of this notebook (the `transformer`
# assignment), `layer_norm_forward`/`_backward` and `causal_self_attention_forward`/
# `_backward` are yours to write as well; Parts 2 and 3 use them.
#
# **Two settings.** When the environment variable `MINIRNN_FAST=1` is set (the test
# suite sets it), the models are tiny and each trains for 1 second: every cell runs,
# but the samples are noise and the heads have learned little. Without it (the default
# when you open this notebook), the GPT is nanoGPT's CPU recipe (4 blocks of width 128,
# 4 heads, a context of 64) and the LSTM the README's (2 layers of 512 units), each
# trained for 5 minutes of CPU time. Run outputs go to a temporary directory.

# %%
import math
import os
import tempfile
import time

import matplotlib.pyplot as plt
import numpy as np

from minirnn import backend, gradcheck, nn
from minirnn import functional as F
from minirnn.data import load_corpus
from minirnn.generate import sample
from minirnn.training import TrainConfig, train
from minirnn.viz import read_metrics

FAST = os.environ.get("MINIRNN_FAST") == "1"
RUN_DIR = tempfile.mkdtemp(prefix="minirnn-07-")
print("fast setting" if FAST else "full setting", "| run directory:", RUN_DIR)

# %% [markdown]
# ## Part 1 · The block by hand
#
# One small batch in float64: $N = 2$ sequences of $T = 5$ positions, width $E = 6$,
# split into 2 heads of size $h_s = 3$.
#
# | symbol | array | shape |
# |---|---|---|
# | $x$ | `x` | $(N, T, E) = (2, 5, 6)$ |
# | $\gamma$, $\beta$ | `gamma`, `beta` | $(E,)$ |
# | $W_{qkv}$, $b_{qkv}$ | `Wqkv`, `bqkv` | $(E, 3E)$, columns $[q \mid k \mid v]$; $(3E,)$ |
# | $W_o$, $b_o$ | `Wo`, `bo` | $(E, E)$, $(E,)$ |

# %%
rng = np.random.default_rng(0)
N, T, E, n_heads = 2, 5, 6, 2
hs = E // n_heads
x = rng.standard_normal((N, T, E)) * 2 + 1
gamma, beta = rng.uniform(0.5, 1.5, E), rng.standard_normal(E)
Wqkv, bqkv = rng.standard_normal((E, 3 * E)) / np.sqrt(E), 0.1 * rng.standard_normal(3 * E)
Wo, bo = rng.standard_normal((E, E)) / np.sqrt(E), 0.1 * rng.standard_normal(E)

# %% [markdown]
# ### 1a · Layer normalisation
#
# Each row $x$ of $E$ features (one position of one sequence) is normalised on its own:
#
# $$\mu = \frac1E\sum_j x_j, \qquad \sigma^2 = \frac1E\sum_j (x_j - \mu)^2, \qquad
# \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \varepsilon}}, \qquad y = \gamma \odot \hat x + \beta$$
#
# The variance divides by $E$, not $E - 1$ (PyTorch's `nn.LayerNorm` does the same).
# Write `layer_norm` over the last axis of any array; `keepdims=True` keeps the reduced
# axis so that $\mu$ and $\sigma^2$ broadcast against $x$.

# %%
def layer_norm(x, gamma, beta, eps=1e-5):
    """y (..., E): each row of x normalised to mean 0 and variance 1, scaled and shifted."""
    ### BEGIN SOLUTION
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta
    ### END SOLUTION


y = layer_norm(x, gamma, beta)
print(y[0].round(3))

# %% tags=["graded"]
y_ref, _ = F.layer_norm_forward(x, gamma, beta)
y = layer_norm(x, gamma, beta)
assert np.shape(y) == (N, T, E), f"y must have shape (N, T, E) = {(N, T, E)}, got {np.shape(y)}"
assert np.allclose(y, y_ref, rtol=0, atol=1e-12), "y differs from the library's layer norm"
xhat = (y - beta) / gamma
assert np.allclose(xhat.mean(axis=-1), 0, atol=1e-12), "each normalised row must have mean 0"
assert np.allclose(xhat.var(axis=-1), 1, atol=1e-4), "each normalised row must have variance 1"
shifted = layer_norm(3 * x + 7, gamma, beta, eps=0)  # without eps, a row's offset and
assert np.allclose(shifted, layer_norm(x, gamma, beta, eps=0), rtol=0, atol=1e-12), \
    "scaling and shifting a row must not change y"         # scale do not matter at all
print("layer norm: correct")

# %% [markdown]
# ### 1b · Causal self-attention
#
# Every position $t$ asks a **query** $q_t$, offers a **key** $k_t$ and carries a
# **value** $v_t$, all three linear maps of its input: $[q \mid k \mid v] = x W_{qkv} +
# b_{qkv}$. Position $t$ scores every position $j$ by $s_{tj} = q_t \cdot k_j /
# \sqrt{h_s}$ and takes the softmax of its scores as weights for an average of the
# values:
#
# $$a_{tj} = \frac{e^{s_{tj}}}{\sum_{j' \le t} e^{s_{tj'}}} \ \ (j \le t),
# \qquad a_{tj} = 0 \ \ (j > t), \qquad \mathrm{out}_t = \sum_{j \le t} a_{tj}\, v_j$$
#
# The **causal mask** ($j \le t$) keeps a position from reading the characters it has
# to predict. Setting the masked scores to $-\infty$ before the softmax does it, and
# subtracting each row's largest score before `np.exp` keeps the exponents from
# overflowing. Dividing by $\sqrt{h_s}$ keeps the scores of order one however wide the
# head is.
#
# With **several heads**, the $E$ columns of each of $q$, $k$, $v$ are cut into
# `n_heads` slices of $h_s$: head $h$ owns columns `h*hs:(h+1)*hs`. Each head attends
# on its own, the heads' outputs are put side by side again (back to $E$ columns), and
# one more linear map mixes them: $y = z W_o + b_o$.
#
# Write `attend(q, k, v)` for one head of one sequence, then `self_attention`, which
# may loop over the sequences and the heads.

# %%
def attend(q, k, v):
    """One head of one sequence: q, k, v (T, hs) -> out (T, hs), position t seeing 0..t."""
    ### BEGIN SOLUTION
    T, hs = q.shape
    s = q @ k.T / np.sqrt(hs)                                   # (T, T) scores
    s = np.where(np.tril(np.ones((T, T), bool)), s, -np.inf)    # the causal mask
    a = np.exp(s - s.max(axis=1, keepdims=True))
    a /= a.sum(axis=1, keepdims=True)                           # each row sums to 1
    return a @ v
    ### END SOLUTION


def self_attention(x, Wqkv, bqkv, Wo, bo, n_heads):
    """y (N, T, E): causal multi-head self-attention of x (N, T, E)."""
    ### BEGIN SOLUTION
    N, T, E = x.shape
    size = E // n_heads                                         # of each head
    qkv = x @ Wqkv + bqkv                                       # (N, T, 3E)
    q, k, v = qkv[..., :E], qkv[..., E:2 * E], qkv[..., 2 * E:]
    z = np.zeros((N, T, E))
    for n in range(N):
        for h in range(n_heads):
            cols = slice(h * size, (h + 1) * size)
            z[n, :, cols] = attend(q[n, :, cols], k[n, :, cols], v[n, :, cols])
    return z @ Wo + bo
    ### END SOLUTION


y = self_attention(x, Wqkv, bqkv, Wo, bo, n_heads)
print(y[0].round(3))

# %% tags=["graded"]
y_ref, _ = F.causal_self_attention_forward(x, Wqkv, bqkv, Wo, bo, n_heads)
y = self_attention(x, Wqkv, bqkv, Wo, bo, n_heads)
assert np.shape(y) == (N, T, E), f"y must have shape (N, T, E) = {(N, T, E)}, got {np.shape(y)}"
assert np.allclose(y, y_ref, rtol=0, atol=1e-12), "y differs from the library's self-attention"
# Causality: changing the positions after t leaves positions 0..t as they were.
for t in range(T - 1):
    x_later = x.copy()
    x_later[:, t + 1:] = rng.standard_normal((N, T - t - 1, E))
    assert np.allclose(self_attention(x_later, Wqkv, bqkv, Wo, bo, n_heads)[:, :t + 1],
                       y[:, :t + 1], rtol=0, atol=1e-12), f"position {t} sees the future"
# Huge scores must not overflow.
y_big = self_attention(x * 100, Wqkv, bqkv, Wo, bo, n_heads)
assert np.all(np.isfinite(y_big)), "subtract each row's largest score before np.exp"
print("causal self-attention: correct")

# %% [markdown]
# ### 1c · Backward through the layer norm
#
# A loss $L$ sends back $dy = \partial L / \partial y$. The shift and scale are easy:
# $d\beta = \sum dy$ and $d\gamma = \sum dy \odot \hat x$, summed over every row. For
# $x$, let $d\hat x = dy \odot \gamma$. The mean and the variance depend on the whole
# row, so every $x_j$ reaches every $\hat x_i$, and the chain rule through $\mu$ and
# $\sigma^2$ (docs/derivations/layer-norm.md#backward) gives, for each row,
#
# $$dx = \frac{1}{\sqrt{\sigma^2 + \varepsilon}}\Big(d\hat x - \operatorname{mean}(d\hat x)
# - \hat x \odot \operatorname{mean}(d\hat x \odot \hat x)\Big)$$
#
# The two subtracted terms remove what normalisation ignores: adding the same amount to
# every feature, and scaling the row along $\hat x$. Write `layer_norm_backward_by_hand`.

# %%
dy = rng.standard_normal((N, T, E))


def layer_norm_backward_by_hand(dy, x, gamma, eps=1e-5):
    """dx (N, T, E), dgamma (E,), dbeta (E,) of y = layer_norm(x, gamma, beta, eps)."""
    ### BEGIN SOLUTION
    mu = x.mean(axis=-1, keepdims=True)
    rstd = 1 / np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + eps)
    xhat = (x - mu) * rstd
    dxhat = dy * gamma
    dx = rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                 - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    return dx, (dy * xhat).sum(axis=(0, 1)), dy.sum(axis=(0, 1))
    ### END SOLUTION


dx, dgamma, dbeta = layer_norm_backward_by_hand(dy, x, gamma)
print(dx[0].round(4))

# %% tags=["graded"]
dx, dgamma, dbeta = layer_norm_backward_by_hand(dy, x, gamma)
_, cache = F.layer_norm_forward(x, gamma, beta)
dx_ref, dgamma_ref, dbeta_ref = F.layer_norm_backward(dy, cache)
for name, got, want in (("dx", dx, dx_ref), ("dgamma", dgamma, dgamma_ref),
                        ("dbeta", dbeta, dbeta_ref)):
    assert np.shape(got) == np.shape(want), f"{name} must have shape {np.shape(want)}"
    assert gradcheck.rel_error(got, want) < 1e-12, f"{name} differs from the library's"
x_var = x.copy()  # centred differences of L = sum(y * dy), one entry of x at a time
num_dx = gradcheck.numerical_gradient(lambda: layer_norm(x_var, gamma, beta), x_var, dy)
err = gradcheck.rel_error(dx, num_dx)
assert err < 1e-7, f"dx: relative error {err:.2e} against centred differences (tolerance 1e-7)"
assert np.allclose(dx.sum(axis=-1), 0, atol=1e-12), "each row of dx must sum to 0"
print(f"dx: relative error {err:.1e} against centred differences")

# %% [markdown]
# The backward pass of attention follows the same pattern as additive attention's
# (notebook 05): through $W_o$, through the weighted sum of values, then through the
# softmax with $ds = a \odot (da - \sum_j a_j\, da_j)$ and back into $q$, $k$ and
# $W_{qkv}$. `causal_self_attention_backward` does it for all heads at once; here it is
# against centred differences:

# %%
print(gradcheck.check_op("causal_self_attention", N=2, T=4, D=3, H=2))

# %% [markdown]
# ### One block from the library's ops
#
# `minirnn.nn.GPT` stacks blocks built from these functions. Here is its first block's
# forward pass, op by op, with the shapes. The MLP widens each position to $4E$ and
# applies GELU, $\mathrm{GELU}(u) = u \cdot \tfrac12\big(1 + \tanh(\sqrt{2/\pi}\,(u +
# 0.044715\,u^3))\big)$, a smooth ReLU. Both branches are **residual**: the block adds its
# result to $x$ instead of replacing it, so the identity path carries the gradient
# straight through every block.

# %%
model = nn.GPT(vocab_size=11, block_size=T, num_layers=1, embedding_dim=E,
               num_heads=n_heads, seed=0)
block = model.blocks[0]
p = {k: backend.to_numpy(v).astype(np.float64) for k, v in model.params.items()}
w = lambda name: p[f"blocks.0.{name}"]  # noqa: E731

h, _ = F.layer_norm_forward(x, w("ln1.gamma"), w("ln1.beta"))
att, _ = F.causal_self_attention_forward(h, w("attn.Wqkv"), w("attn.bqkv"), w("attn.Wo"),
                                         w("attn.bo"), n_heads)
x1 = x + att
h2, _ = F.layer_norm_forward(x1, w("ln2.gamma"), w("ln2.beta"))
u, _ = F.affine_forward(h2, w("fc.W"), w("fc.b"))
g, _ = F.gelu_forward(u)
mlp, _ = F.affine_forward(g, w("proj.W"), w("proj.b"))
out = x1 + mlp
for name, a in (("x", x), ("LN1(x)", h), ("attention", att), ("x + attention", x1),
                ("W1 LN2(x) + b1", u), ("GELU", g), ("W2 GELU + b2", mlp), ("out", out)):
    print(f"{name:>16}  {str(a.shape):>12}")
print("the block's own forward:", np.allclose(block.forward(x.astype(np.float32)), out,
                                            atol=1e-5))

uu = np.linspace(-4, 4, 200)
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(uu, F.gelu_forward(uu)[0], label="GELU (tanh form)")
ax.plot(uu, np.maximum(uu, 0), "--", label="ReLU")
ax.set_xlabel("u")
ax.grid(alpha=0.3)
ax.legend()
plt.show()

# %% [markdown]
# ## Part 2 · What the heads look at
#
# `minirnn train --model gpt` trains `nn.GPT` with the same loop as the char-RNN. Only
# the batches differ: an LSTM reads $N$ long streams in order, carrying its state from
# one batch to the next, while a transformer carries nothing, so each batch is $N$
# **windows** of `seq_len` characters taken at random places in the text. Optimizer and
# settings follow nanoGPT's CPU recipe: AdamW, learning rate $10^{-3}$, gradient norm
# clipped to 1.

# %%
corpus = load_corpus("tinyshakespeare")
vocab = corpus.vocab
BUDGET = 1 if FAST else 300  # seconds of training for each model
if FAST:
    gpt_cfg = TrainConfig(model="gpt", num_layers=2, embedding_dim=32, num_heads=4,
                          seq_len=64, batch_size=12, optimizer="adamw", lr=1e-3, clip=1.0,
                          time_budget=BUDGET, eval_every=25, eval_batches=4,
                          sample_length=0, out=os.path.join(RUN_DIR, "gpt"), progress=False)
else:
    gpt_cfg = TrainConfig(model="gpt", num_layers=4, embedding_dim=128, num_heads=4,
                          seq_len=64, batch_size=12, optimizer="adamw", lr=1e-3, clip=1.0,
                          time_budget=BUDGET, eval_every=500, sample_length=200,
                          out=os.path.join(RUN_DIR, "gpt"), progress=False)
gpt = train(gpt_cfg)
print(f"\nGPT: {gpt.step} steps in {gpt.train_time:.0f} s; validation loss "
      f"{gpt.val_loss:.3f} nats/char")

# %% [markdown]
# We run the model over a passage from the validation text and read the attention
# weights $a_{tj}$ that each layer's forward pass keeps (`block.attn.cache.att`, shape
# $(N, \mathrm{heads}, T, T)$). Row $t$ of a map is where position $t$ looked, over the
# characters up to and including itself (the upper triangle is exactly zero). After a
# few minutes of training, look for heads that attend to the character just before,
# heads that look back to the last space or line break (the start of the current word
# or line), and heads that spread their weight over the whole line.

# %%
passage = vocab.decode(corpus.val_ids[:400])
start = passage.index("\n", 100) + 1
passage = passage[start:start + 40]
model = gpt.model.eval()
ids = np.asarray(vocab.encode(passage))[None, :]
model.forward(ids)
L, H = model.num_layers, model.num_heads
fig, axes = plt.subplots(L, H, figsize=(3.0 * H, 3.0 * L), squeeze=False)
labels = [c if c not in " \n" else {" ": "␣", "\n": "⏎"}[c] for c in passage]
for layer, (block, row) in enumerate(zip(model.blocks, axes)):
    weights = backend.to_numpy(block.attn.cache.att)[0]  # (heads, T, T)
    for head, ax in enumerate(row):
        ax.imshow(weights[head], cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(len(passage)), labels, fontsize=4)
        ax.set_yticks(range(len(passage)), labels, fontsize=4)
        ax.set_title(f"layer {layer + 1}, head {head + 1}", fontsize=8)
fig.suptitle(repr(passage), fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Part 3 · LSTM against GPT, for the same seconds
#
# Now the LSTM, trained by the same loop for the same seconds of training time
# (evaluation not counted), with its own batching: $N$ streams read in order with the
# state carried.

# %%
if FAST:
    lstm_cfg = TrainConfig(hidden_size=64, num_layers=1, embedding_dim=16, batch_size=16,
                           seq_len=64, time_budget=BUDGET, eval_every=25, eval_batches=4,
                           sample_length=0, out=os.path.join(RUN_DIR, "lstm"), progress=False)
else:
    lstm_cfg = TrainConfig(hidden_size=512, num_layers=2, embedding_dim=64, batch_size=64,
                           seq_len=64, time_budget=BUDGET, eval_every=100, sample_length=200,
                           out=os.path.join(RUN_DIR, "lstm"), progress=False)
lstm = train(lstm_cfg)
print(f"\nLSTM: {lstm.step} steps in {lstm.train_time:.0f} s; validation loss "
      f"{lstm.val_loss:.3f} nats/char")

# %% [markdown]
# Both validation curves against seconds of training. Which one is lower after five
# minutes depends on the machine: the LSTM's steps are few but each reads 4,096
# characters, the GPT's are many but each reads 768. `benchmarks/lstm_vs_gpt.py`
# runs the comparison at 300 and 600 seconds, with a larger GPT too
# (docs/gpt.md has the table).

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
for name, result in (("LSTM", lstm), ("GPT", gpt)):
    val = [r for r in read_metrics(result.out) if "val_loss" in r]
    ax.plot([r["train_time"] for r in val], [r["val_loss"] for r in val], "o-", ms=3,
            label=f"{name}, {result.model.num_parameters():,} parameters, {result.step} steps")
ax.axhline(math.log(len(vocab)), color="gray", ls=":", lw=1, label="uniform guess, ln 65")
ax.set_xlabel("training time (s)")
ax.set_ylabel("validation loss (nats/char)")
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
plt.show()

# %%
for name, result in (("LSTM", lstm), ("GPT", gpt)):
    text = sample(result.model.eval(), vocab, prompt="ROMEO:\n", length=200,
                  temperature=0.8, seed=1)
    print(f"--- {name} ---\n{text}\n")

# %% [markdown]
# ### Generating with a key/value cache
#
# To predict character $t + 1$, a GPT needs the keys and values of every position up to
# $t$. Rerunning the whole window for each new character, as a plain forward pass
# would, costs $O(T^2)$ attention work per character. But the keys and values of the
# earlier positions do not change when a character is appended, so `GPT.step` keeps
# them in a cache and computes one new row of attention per layer, $O(T)$. The logits
# are the same. When the window of `block_size` positions is full, the two part ways:
# the cache starts again from the window's last half, recomputed in one batched pass,
# while the plain forward pass slides the window one character along.

# %%
model = gpt.model.eval()
prompt = [int(i) for i in vocab.encode("ROMEO:\n")]
n = 30 if FAST else 200


def greedy_with_cache(prompt, n):
    state = model.initial_state(1)
    for token in prompt[:-1]:
        _, state = model.step(np.array([token]), state)
    out, token = [], prompt[-1]
    for _ in range(n):
        logits, state = model.step(np.array([token]), state)  # one new row of attention
        token = int(np.argmax(logits))
        out.append(token)
    return out


def greedy_without_cache(prompt, n):
    window = list(prompt)
    for _ in range(n):  # the whole window again for every character
        logits = model.forward(np.array([window[-model.block_size:]]))[:, -1]
        window.append(int(np.argmax(logits)))
    return window[len(prompt):]


t0 = time.perf_counter()
with_cache = greedy_with_cache(prompt, n)
t1 = time.perf_counter()
without = greedy_without_cache(prompt, n)
t2 = time.perf_counter()
same = model.block_size - len(prompt)  # until the window is full, the two are one model
print(f"{n} characters: {(t1 - t0) * 1e3:.0f} ms with the cache, {(t2 - t1) * 1e3:.0f} ms "
      f"rerunning the window; the first {min(n, same)} agree: "
      f"{with_cache[:same] == without[:same]}")
print(repr(vocab.decode(prompt + with_cache)))

# %% [markdown]
# ## Exercises
#
# - Train the GPT with `num_heads=1` and with `num_heads=8` (same width) for the same
#   time. Does the validation loss change, and what do the attention maps look like?
# - Self-attention by itself does not know the order of the positions it averages over:
#   only the position embedding tells them apart. Set it to zero in the trained model
#   (`model.params["pos"][...] = 0`) and compare its validation loss
#   (`minirnn.training.evaluate`) before and after.
# - With `minirnn train --model gpt --seq-len 128`, the context doubles and each step
#   costs more. Compare the validation loss after the same time with `--seq-len 64`.
