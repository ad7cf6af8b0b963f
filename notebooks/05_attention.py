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
# # 05 · Attention: translating dates
#
# A sequence-to-sequence model reads a date as a person might type it
# (`tue 3 march 2020`, `03/03/20`, `March 3rd, 2020`, ...) and writes it in ISO form
# (`2020-03-03`). An encoder LSTM reads the source one character at a time. A decoder
# LSTM writes the answer one character at a time. Before each output character the
# decoder *looks back* at every source position through **additive (Bahdanau)
# attention**:
#
# $$e_j = v \cdot \tanh(q\,W_q + k_j\,W_k), \qquad
# w = \operatorname{softmax}_{j:\ \mathrm{mask}_j}(e), \qquad
# \mathrm{context} = \sum_j w_j\,k_j$$
#
# The query $q$ is the decoder's hidden state. The keys $k_j$ are the encoder's states,
# one per source character. The mask keeps the attention off the padding of shorter
# sources. The derivation is in `docs/derivations/attention.md`.
#
# The notebook has two parts:
#
# 1. **Attention by hand.** You compute the scores, the masked softmax, the context
#    and the gradient through the softmax for one small example. In the classroom
#    version of this notebook the bodies of the functions in 1a, 1b and 1c are yours
#    to write. The cell after each one is a graded test: it checks your answer against
#    the library (`minirnn.functional.additive_attention_forward`) or against centred
#    differences (`minirnn.gradcheck`).
# 2. **The model.** We train the `Seq2Seq` model on the date task, translate some
#    dates, look at the attention weights, and compare greedy decoding with beam
#    search.
#
# In the classroom workspace, `additive_attention_forward` and `_backward` in
# `minirnn/functional/attention.py` are yours to write too. The graded tests and the
# second part use them, so those cells run once your implementation is in place.
#
# **Two settings.** When the environment variable `MINIRNN_FAST=1` is set (the test
# suite sets it), the model trains for 300 steps on 20,000 pairs and is scored on 300
# held-out dates, about 15 seconds. That is usually enough for well over 90% exact
# match. Without it (the default when you open this notebook), it trains for 90
# seconds of CPU time on 50,000 pairs and is scored on 1,000 held-out dates. That
# reaches about 100%. Run outputs go to a temporary directory.

# %%
import os

# The matrix products here are small: a second BLAS thread costs more in synchronisation
# than it saves, and far more on a busy machine. This must be set before NumPy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import datetime
import tempfile

import matplotlib.pyplot as plt
import numpy as np

from minirnn import functional as F
from minirnn import gradcheck
from minirnn.data import DATE_FORMATS, TaskData, encode_batch, exact_match, format_date
from minirnn.generate import attention_weights, translate
from minirnn.training import Seq2SeqConfig, train

FAST = os.environ.get("MINIRNN_FAST") == "1"
RUN_DIR = tempfile.mkdtemp(prefix="minirnn-05-")




print("fast setting" if FAST else "full setting", "| run directory:", RUN_DIR)

# %% [markdown]
# ## Part 1 · Attention by hand
#
# One small batch in float64: $N = 2$ queries, each attending over $S = 5$ keys. The
# second row is a shorter source: its last two positions are padding, so its mask is
# False there.
#
# | symbol | array | shape |
# |---|---|---|
# | $q$ | `query` | $(N, H_q) = (2, 4)$ |
# | $k_j$ | `keys[:, j]` | `keys` is $(N, S, H_k) = (2, 5, 3)$ |
# | $W_q$, $W_k$, $v$ | `Wq`, `Wk`, `v` | $(H_q, A)$, $(H_k, A)$, $(A,)$ with $A = 6$ |
# | mask | `mask` | $(N, S)$ bool, True = may attend |

# %%
rng = np.random.default_rng(0)
N, S, Hq, Hk, A = 2, 5, 4, 3, 6
query = rng.standard_normal((N, Hq))
keys = rng.standard_normal((N, S, Hk))
Wq = rng.standard_normal((Hq, A)) / np.sqrt(Hq)
Wk = rng.standard_normal((Hk, A)) / np.sqrt(Hk)
v = rng.standard_normal(A)
mask = np.array([[True, True, True, True, True],
                 [True, True, True, False, False]])

# %% [markdown]
# ### 1a · The scores
#
# Write `attention_scores`: for every row $n$ and position $j$,
# $e_{nj} = v \cdot \tanh(q_n W_q + k_{nj} W_k)$. Compute it for every position,
# masked or not; the mask comes in with the softmax. Do it without a Python loop:
# `query @ Wq` is $(N, A)$, `keys @ Wk` is $(N, S, A)$, and broadcasting adds the first
# to every position of the second once you give it a middle axis of length 1.

# %%
def attention_scores(query, keys, Wq, Wk, v):
    """Scores e (N, S): e[n, j] = v . tanh(query[n] @ Wq + keys[n, j] @ Wk)."""
    ### BEGIN SOLUTION
    a = (query @ Wq)[:, None, :] + keys @ Wk  # (N, 1, A) + (N, S, A) -> (N, S, A)
    return np.tanh(a) @ v                     # (N, S)
    ### END SOLUTION


e = attention_scores(query, keys, Wq, Wk, v)
print(e.round(4))

# %% tags=["graded"]
# The library returns softmax(e), so the differences between a row's scores must equal
# the differences between its log-weights. A key that projects exactly opposite to the
# query, k Wk = -q Wq, must score v . tanh(0) = 0.
_, w_ref, _ = F.additive_attention_forward(query, keys, Wq, Wk, v)
e = attention_scores(query, keys, Wq, Wk, v)
assert np.shape(e) == (N, S), f"e must have shape (N, S) = {(N, S)}, got {np.shape(e)}"
assert np.allclose(e - e[:, :1], np.log(w_ref) - np.log(w_ref[:, :1]), rtol=0, atol=1e-10), \
    "the scores do not give the library's attention weights; check the tanh, products and axes"
keys2 = np.stack([-query, query], axis=1)  # (N, 2, Hq): with Wk = Wq, key 0 cancels the query
e2 = attention_scores(query, keys2, Wq, Wq, v)
assert np.allclose(e2[:, 0], 0, rtol=0, atol=1e-12), \
    f"scores of cancelling keys must be 0, got {e2[:, 0]}"
_, w2_ref, _ = F.additive_attention_forward(query, keys2, Wq, Wq, v)
assert np.allclose(e2[:, 1] - e2[:, 0], np.log(w2_ref[:, 1] / w2_ref[:, 0]), rtol=0, atol=1e-10)
print("scores: correct")

# %% [markdown]
# ### 1b · The masked softmax and the context
#
# Write `masked_softmax(e, mask)`: a softmax over each row of `e` taken over the
# positions where `mask` is True, with weight exactly 0 where it is False. Two things
# make it safe for any scores:
#
# - subtract each row's largest score before `np.exp`, so that no exponent is positive
#   and nothing overflows (the weights do not change);
# - take that maximum over the **unmasked** positions only. Setting the masked scores
#   to $-\infty$ first does both: $e^{-\infty} = 0$ exactly, and a huge score at a
#   padding position cannot push every real position's $e^{e_j - m}$ down to 0.
#
# Then write `weighted_context(w, keys)`: $\mathrm{context}_n = \sum_j w_{nj} k_{nj}$,
# shape $(N, H_k)$.

# %%
def masked_softmax(e, mask):
    """Weights w (N, S): the softmax of each row of e over its True positions, 0 elsewhere."""
    ### BEGIN SOLUTION
    e = np.where(mask, e, -np.inf)
    z = np.exp(e - e.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)
    ### END SOLUTION


def weighted_context(w, keys):
    """Context (N, Hk): the weighted average sum_j w[n, j] * keys[n, j]."""
    ### BEGIN SOLUTION
    return np.einsum("ns,nsh->nh", w, keys)
    ### END SOLUTION


w = masked_softmax(e, mask)
context = weighted_context(w, keys)
print("weights:\n", w.round(4))
print("context:\n", context.round(4))

# %% tags=["graded"]
context_ref, w_ref, _ = F.additive_attention_forward(query, keys, Wq, Wk, v, mask=mask)
w = masked_softmax(attention_scores(query, keys, Wq, Wk, v), mask)
context = weighted_context(w, keys)
assert np.shape(w) == (N, S), f"w must have shape (N, S) = {(N, S)}, got {np.shape(w)}"
assert np.all(w[~mask] == 0), f"masked positions must have weight exactly 0, got {w[~mask]}"
assert np.allclose(w, w_ref, rtol=0, atol=1e-12), "weights differ from the library's"
assert np.shape(context) == (N, Hk), \
    f"context must have shape (N, Hk) = {(N, Hk)}, got {np.shape(context)}"
assert np.allclose(context, context_ref, rtol=0, atol=1e-12), "context differs from the library's"
# Large scores: +1000 everywhere, and a huge score at every masked position.
e_big = np.where(mask, e + 1000.0, 1e4)
with np.errstate(all="ignore"):
    w_big = masked_softmax(e_big, mask)
assert np.all(np.isfinite(w_big)) and np.allclose(w_big, w, rtol=0, atol=1e-12), \
    "large scores break the softmax: subtract each row's largest *unmasked* score before exp"
print("masked softmax and context: correct")

# %% [markdown]
# ### 1c · Backward through the context and the softmax
#
# Say a loss $L$ sends back $dc = \partial L / \partial\,\mathrm{context}$, shape
# $(N, H_k)$. Write `context_backward(dcontext, keys, w)`, which returns two gradients:
#
# - $dw_j = \partial L / \partial w_j = dc \cdot k_j$, because
#   $\mathrm{context} = \sum_j w_j k_j$ is linear in each $w_j$;
# - $de_j = \partial L / \partial e_j$, through the softmax. Its Jacobian is
#   $\partial w_i / \partial e_j = w_i(\delta_{ij} - w_j)$, so
#   $de_j = \sum_i dw_i\, w_i (\delta_{ij} - w_j) = w_j\big(dw_j - \sum_i w_i\, dw_i\big)$.
#
# No Jacobian matrix is needed: one weighted sum per row and two elementwise
# operations. The masked positions need no special case, because their $w_j = 0$
# makes their $de_j = 0$.

# %%
dcontext = np.random.default_rng(1).standard_normal((N, Hk))


def context_backward(dcontext, keys, w):
    """dL/dw and dL/de, both (N, S), given dL/dcontext (N, Hk), the keys and the weights."""
    ### BEGIN SOLUTION
    dw = np.einsum("nsh,nh->ns", keys, dcontext)           # dw_j = dc . k_j
    de = w * (dw - (w * dw).sum(axis=1, keepdims=True))    # softmax Jacobian-vector product
    return dw, de
    ### END SOLUTION


dw, de = context_backward(dcontext, keys, w)
print("dw:\n", dw.round(4))
print("de:\n", de.round(4))

# %% tags=["graded"]
# Centred differences of L = sum(context * dcontext), in float64, perturbing one entry at a time.
dw, de = context_backward(dcontext, keys, w)
w_var, e_var = w.copy(), attention_scores(query, keys, Wq, Wk, v)
num_dw = gradcheck.numerical_gradient(lambda: weighted_context(w_var, keys), w_var, dcontext)
num_de = gradcheck.numerical_gradient(
    lambda: weighted_context(masked_softmax(e_var, mask), keys), e_var, dcontext)
err_w, err_e = gradcheck.rel_error(dw, num_dw), gradcheck.rel_error(de, num_de)
assert np.shape(dw) == (N, S) and np.shape(de) == (N, S), "dw and de must both have shape (N, S)"
assert err_w < 1e-7, f"dw: relative error {err_w:.2e} against centred differences (tolerance 1e-7)"
assert err_e < 1e-7, f"de: relative error {err_e:.2e} against centred differences (tolerance 1e-7)"
assert np.all(de[~mask] == 0), "de must be exactly 0 at masked positions"
print(f"dw: relative error {err_w:.1e}; de: relative error {err_e:.1e}")

# %% [markdown]
# ### From the scores to the parameters
#
# The rest of the backward pass follows the forward pass in reverse. Since $e_j = u_j
# \cdot v$ with $u_j = \tanh(a_j)$, we get $dv = \sum_{n,j} de_{nj}\,u_{nj}$, then
# $da_j = de_j\, v \odot (1 - u_j^2)$, and from $da$ the gradients of $W_q$, $W_k$, the
# query and the keys. The keys also get a second, direct term from the context,
# $w_j\,dc$. `additive_attention_backward` does all of it. Your $de$ already gives $dv$:

# %%
_, _, cache = F.additive_attention_forward(query, keys, Wq, Wk, v, mask=mask)
dquery, dkeys, dWq, dWk, dv = F.additive_attention_backward(dcontext, cache)
u = np.tanh((query @ Wq)[:, None, :] + keys @ Wk)  # (N, S, A)
dv_by_hand = np.einsum("ns,nsa->a", de, u)
print(f"dv from your de vs the library's: relative error {gradcheck.rel_error(dv_by_hand, dv):.1e}")
print()
print(gradcheck.check_op("additive_attention"))  # every argument against centred differences

# %% [markdown]
# ## Part 2 · The model
#
# ### The task
#
# `minirnn.data.tasks` writes every date from 1950 to 2049 in 17 formats. Numeric dates
# are day first, and two-digit years 50-99 mean 19xx. Every source and target shares
# one character vocabulary, with `<pad>`, `<sos>` and `<eos>` at ids 0, 1 and 2.

# %%
day = datetime.date(2020, 3, 3)
for fmt in DATE_FORMATS:
    print(f"{fmt:>24}   {format_date(day, fmt)}")

# %% [markdown]
# ### Training
#
# `Seq2Seq` embeds the source characters and reads them with a **bidirectional** LSTM,
# so each key $k_j$ knows what comes before and after position $j$. The decoder is an
# LSTM cell stepped by hand. Its input at step $t$ is the previous output character and
# the previous context. It predicts from $[h_t, \mathrm{context}_t]$. Training uses
# teacher forcing: the decoder reads the true previous character. Every `eval_every`
# steps the held-out dates are decoded greedily and scored by **exact match**: the
# whole output string must equal the target.

# %%
if FAST:
    cfg = Seq2SeqConfig(task="dates", steps=300, eval_every=100, n_train=20_000, n_test=300,
                        out=RUN_DIR, progress=False)
else:
    cfg = Seq2SeqConfig(task="dates", time_budget=90, eval_every=250, n_train=50_000,
                        n_test=1000, out=RUN_DIR, progress=False)
result = train(cfg)
model, vocab = result.model, result.vocab

# %% [markdown]
# ### Translating
#
# `translate` encodes the sources, then decodes greedily: at each step it takes the
# most probable character and stops at `<eos>`.

# %%
sources = ["tue 3 march 2020", "March 3rd, 2020", "3-Mar-20", "20200303",
           "the 1st of january 1999", "SATURDAY 29 FEBRUARY 2048", "31/12/49", "01/01/50"]
for source, output in zip(sources, translate(model, vocab, sources)):
    print(f"{source:>28}  ->  {output}")

# %% [markdown]
# ### Where the decoder looks
#
# `attention_weights(model, vocab, source, target)` runs the decoder over a given
# target and returns its weights, one row per output character (the last for `<eos>`)
# and one column per source character. Here the target is the model's own translation.
# A trained model copies the year digits from the year, reads the month from the
# month's name or number and the day from the day: the bright cells trace an
# alignment, reordered from the source's order into ISO order. Where the source does
# not hold the answer, as for the century of `03/03/20`, the weights spread out.

# %%
examples = ["tue 3 march 2020", "3rd of March, 2020", "03/03/20"]
outputs = translate(model, vocab, examples)
fig, axes = plt.subplots(1, len(examples), figsize=(4.2 * len(examples), 4.2))
for ax, source, output in zip(axes, examples, outputs):
    weights = attention_weights(model, vocab, source, output)  # (T, S)
    ax.imshow(weights, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(source)), [c if c != " " else "␣" for c in source], fontsize=8)
    ax.set_yticks(range(len(output) + 1), list(output) + ["<eos>"], fontsize=8)
    ax.set_xlabel("source")
    ax.set_title(f"{source!r} -> {output!r}", fontsize=9)
axes[0].set_ylabel("output")
plt.show()

# %% [markdown]
# ### Greedy decoding and beam search
#
# Greedy decoding commits to the most probable character at each step. That is not
# always the most probable *string*: a likely first character can lead to unlikely
# ones afterwards. **Beam search** keeps the $K$ most probable partial outputs
# (hypotheses) at every step, extends each by every character, and keeps the $K$ best
# of those. Finished hypotheses are ranked by their summed log-probability divided by
# their length. With $K = 1$ it is exactly greedy decoding.
#
# On the held-out set:

# %%
data = TaskData(cfg.task, n_train=cfg.n_train, n_test=cfg.n_test, seed=cfg.seed)  # the same split
test_sources = [s for s, _ in data.test_pairs]
targets = [t for _, t in data.test_pairs]
greedy, beam = [], []
for i in range(0, len(test_sources), 250):
    greedy += translate(model, vocab, test_sources[i:i + 250])
    beam += translate(model, vocab, test_sources[i:i + 250], beam_width=4)
print(f"greedy:           exact match {exact_match(greedy, targets):.1%}")
print(f"beam search, K=4: exact match {exact_match(beam, targets):.1%}")

# %% [markdown]
# Where the two disagree, we score both outputs under the model: the summed
# log-probability of the output characters and `<eos>`, from the teacher-forced loss.
# Beam search ranks by that sum divided by the length, so it should pick the output the
# model itself rates higher, per character. That output need not be the correct one.

# %%
def log_prob(source, output):
    """log p(output + <eos> | source) under the model, summed over the output's characters."""
    b = encode_batch(vocab, [(source, output)])
    loss, _ = model.loss(b)
    return -float(loss) * int(b["tgt_mask"].sum())  # the loss is the mean over those characters


differ = [i for i in range(len(targets)) if greedy[i] != beam[i]]
print(f"{len(differ)} of {len(targets)} held-out dates decode differently")
for i in differ[:8]:
    print(f"{test_sources[i]!r:>30}  target {targets[i]}   "
          f"greedy {greedy[i]!r} (log p {log_prob(test_sources[i], greedy[i]):.2f})   "
          f"beam {beam[i]!r} (log p {log_prob(test_sources[i], beam[i]):.2f})")

# %% [markdown]
# A trained model is nearly certain of every character of a held-out date, so the
# greedy path is usually already the best one. Sources unlike anything in training
# are another matter. None of these is in one of the 17 formats, but every character
# is in the vocabulary. A `*` marks the sources where beam search changes the answer.

# %%
odd = ["2020/03/03", "3.3.20", "march 3rd 2020", "03 03 2020", "mar 3 20", "3 3 2020",
       "3rd march", "12/11", "1 2 3", "may 5", "tuesday", "0", "2020-03-03"]
odd_greedy = translate(model, vocab, odd)
odd_beam = translate(model, vocab, odd, beam_width=4)
for source, g, b in zip(odd, odd_greedy, odd_beam):
    mark = "*" if g != b else " "
    print(f"{mark} {source!r:>14}   greedy {g!r:>14} (log p {log_prob(source, g):6.2f})"
          f"   beam {b!r:>14} (log p {log_prob(source, b):6.2f})")

# %% [markdown]
# Some of these come out right, and others are confidently wrong, with made-up
# centuries, months read from the wrong digits, even an ISO date not copied through.
# The model learned the 17 formats, not what a date is. Where it is unsure, beam search
# may change the answer, and its pick is the one with the higher log-probability per
# character. On in-format dates it rarely changes anything, because the model is
# nearly certain of every character. Beam search earns its cost on open-ended
# outputs, where many continuations are plausible: `04_char_rnn` compares sampling settings for that
# case, and `minirnn sample CKPT --beam-width K` runs beam
# search on a character model.
#
# ## Exercises
#
# - Train with `bidirectional=False`. The keys then know only the characters to their
#   left. How does the exact match after 300 steps change, and what happens to the
#   heatmap of `03/03/20`?
# - Train for only 150 steps and compare greedy decoding with beam search again on the
#   held-out set.
# - `additive_attention_backward` also accepts `dweights`, a gradient on the weights
#   themselves. Work out the gradient of the entropy $-\sum_j w_j \log w_j$ of the
#   weights, pass it as `dweights`, and check the resulting `dquery` with
#   `gradcheck.numerical_gradient`.
