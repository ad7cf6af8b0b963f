# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     notebook_metadata_filter: kernelspec,jupytext
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · The vanilla RNN, one step at a time
#
# A recurrent net reads a sequence one element at a time and carries a hidden state
# $h$ from each step to the next. In this notebook you will
#
# 1. run one step forward by hand on a three-character example, printing every
#    intermediate value;
# 2. run the same step backward by hand;
# 3. derive backpropagation through time (BPTT) on paper and write it as a loop;
# 4. prove the backward pass right with a gradient check;
# 5. watch gradients vanish or explode as the recurrent weights grow.
#
# Everything here calls the pure functions of `minirnn.functional`. The derivation
# behind each line is in `docs/derivations/rnn.md`, and the code is
# `minirnn/functional/rnn.py`. Cells that start with **Exercise** are yours to fill in;
# the cell after each one checks your answer.

# %%
import numpy as np
import matplotlib.pyplot as plt

from minirnn import functional as F
from minirnn import gradcheck

np.set_printoptions(precision=4, suppress=True)
rng = np.random.default_rng(0)

# %% [markdown]
# ## A three-character example
#
# The vocabulary is the four letters of "hello". We use a batch of $N = 2$ sequences
# of $T = 3$ characters: the first reads `h e l` and at every step tries to predict the
# next character, `e l l`; the second reads `e l l` and predicts `l l o`. Each character
# enters as a one-hot vector of length $D = V = 4$, and the hidden state has $H = 3$
# units. Row $n$ of every array below belongs to sequence $n$. Everything is float64,
# so that the gradient checks can reach their tolerance.
#
# The state `h0` that goes into the first step is usually zero at the start of a text.
# Here it is small and random, as if it were carried over from text read earlier (the
# trainer does carry it across batches). A nonzero `h0` makes the recurrent term
# $h_{prev}\,\mathit{Wh}$ of the very first step visible.

# %%
texts = ["hell", "ello"]
inputs = [s[:-1] for s in texts]       # "hel", "ell": what the net reads
targets = [s[1:] for s in texts]       # "ell", "llo": what it should predict
vocab = sorted(set("hello"))           # ['e', 'h', 'l', 'o']
ix = {ch: k for k, ch in enumerate(vocab)}
V = D = len(vocab)
N, T, H = len(texts), len(inputs[0]), 3

X = np.zeros((N, T, D))                # (N, T, D) one-hot inputs
for n, s in enumerate(inputs):
    for t, ch in enumerate(s):
        X[n, t, ix[ch]] = 1.0
y = np.array([[ix[ch] for ch in s] for s in targets])  # (N, T) target ids

Wx = 0.5 * rng.standard_normal((D, H))  # (D, H)
Wh = 0.5 * rng.standard_normal((H, H))  # (H, H)
b = 0.1 * rng.standard_normal(H)        # (H,)
h0 = 0.5 * rng.standard_normal((N, H))  # (N, H) state carried in from earlier text

print("vocab:", vocab)
for n in range(N):
    print(f"sequence {n}: reads {inputs[n]!r}, X[{n}] (one row per step):\n{X[n]}")
print("targets y:\n", y)
for name, value in [("Wx", Wx), ("Wh", Wh), ("b", b), ("h0", h0)]:
    print(f"{name} =\n{value}")

# %% [markdown]
# ## One step forward
#
# One step of the RNN takes the input $x$ $(N, D)$ and the previous state $h_{prev}$
# $(N, H)$ and computes
#
# $$a = x\,\mathit{Wx} + h_{prev}\,\mathit{Wh} + b \qquad (N, H)$$
#
# $$h = \tanh(a) \qquad (N, H)$$
#
# with $b$ added to every row. Because $x$ is one-hot, $x\,\mathit{Wx}$ just picks one
# row of $\mathit{Wx}$: the row of the character being read. A one-hot input times a
# weight matrix is an embedding lookup.
#
# **Exercise 1.** For the first step (characters `h` and `e`, previous state `h0`),
# compute `xWx` $= x\,\mathit{Wx}$, `hWh` $= h_{prev}\,\mathit{Wh}$, the
# pre-activation `a` and the new state `h`, each of shape $(N, H)$.

# %%
x = X[:, 0]     # (N, D) one-hot "h" and "e"
h_prev = h0     # (N, H)
### BEGIN SOLUTION
xWx = x @ Wx
hWh = h_prev @ Wh
a = xWx + hWh + b
h = np.tanh(a)
### END SOLUTION
for name, value in [("x Wx", xWx), ("h_prev Wh", hWh), ("b", b), ("a", a), ("h = tanh(a)", h)]:
    print(f"{name} =\n{value}")

# %% tags=["graded"]
assert xWx.shape == hWh.shape == a.shape == h.shape == (N, H)
np.testing.assert_allclose(xWx, Wx[[ix["h"], ix["e"]]], rtol=1e-10, atol=1e-12)  # rows of "h", "e"
np.testing.assert_allclose(a, xWx + hWh + b, rtol=1e-10, atol=1e-12)
h_expected = F.rnn_step_forward(x, h_prev, Wx, Wh, b)[0]
np.testing.assert_allclose(np.tanh(xWx + hWh + b), h_expected, rtol=1e-10, atol=1e-12)
np.testing.assert_allclose(h, h_expected, rtol=1e-10, atol=1e-12)
print("step forward: correct")

# %% [markdown]
# ## One step backward
#
# Suppose the loss sends back a gradient $dh = \partial L / \partial h$ $(N, H)$. The
# step is two nodes, a sum of products and a $\tanh$, so we go back through them in
# turn (rules (P1)–(P3) of `docs/derivations/index.md`).
#
# Through the $\tanh$: its slope is $1 - \tanh^2(a) = 1 - h \odot h$, written with the
# output, so $a$ need not be kept:
#
# $$da = dh \odot (1 - h \odot h) \qquad (N, H)$$
#
# Through $a = x\,\mathit{Wx} + h_{prev}\,\mathit{Wh} + b$: every term receives $da$,
# and a product $Y = XW$ sends $dY\,W^\top$ to $X$ and $X^\top dY$ to $W$:
#
# $$dx = da\,\mathit{Wx}^\top, \quad dh_{prev} = da\,\mathit{Wh}^\top, \quad
# d\mathit{Wx} = x^\top da, \quad d\mathit{Wh} = h_{prev}^\top da, \quad
# db = \textstyle\sum_n da[n, :] .$$
#
# Check the shapes: $dx$ is $(N, H)(H, D) \to (N, D)$ and $d\mathit{Wx}$ is
# $(D, N)(N, H) \to (D, H)$, the shapes of $x$ and $\mathit{Wx}$.
#
# **Exercise 2.** For the step you just computed and the upstream gradient `dh` below,
# compute `da`, `dx`, `dh_prev`, `dWx`, `dWh` and `db`.

# %%
dh = rng.standard_normal((N, H))  # (N, H) dL/dh, as if sent back by the loss
### BEGIN SOLUTION
da = dh * (1 - h * h)
dx = da @ Wx.T
dh_prev = da @ Wh.T
dWx = x.T @ da
dWh = h_prev.T @ da
db = da.sum(axis=0)
### END SOLUTION
for name, value in [("da", da), ("dx", dx), ("dh_prev", dh_prev), ("dWh", dWh), ("db", db)]:
    print(f"{name} =\n{value}")

# %% tags=["graded"]
_, step_cache = F.rnn_step_forward(x, h_prev, Wx, Wh, b)
expected = F.rnn_step_backward(dh, step_cache)
for name, mine, lib in zip(["dx", "dh_prev", "dWx", "dWh", "db"],
                           [dx, dh_prev, dWx, dWh, db], expected):
    assert np.shape(mine) == lib.shape, f"{name}: shape {np.shape(mine)}, expected {lib.shape}"
    np.testing.assert_allclose(mine, lib, rtol=1e-10, atol=1e-12, err_msg=name)
np.testing.assert_allclose(da @ Wh.T, expected[1], rtol=1e-10, atol=1e-12)  # pins da down
# Independently of the library: centred differences of L = sum(h * dh).
for name, mine, wrt in [("dWh", dWh, Wh), ("dh_prev", dh_prev, h_prev), ("dWx", dWx, Wx)]:
    num = gradcheck.numerical_gradient(lambda: F.rnn_step_forward(x, h_prev, Wx, Wh, b)[0], wrt, dh)
    err = gradcheck.rel_error(mine, num)
    assert err < 1e-7, f"{name}: relative error {err:.1e} against centred differences"
print("step backward: correct")

# %% [markdown]
# ## The whole sequence and a loss
#
# `rnn_forward` applies the same step for $t = 0, 1, \dots, T-1$, with the same
# weights every time, starting from `h0`. It returns `hs` $(N, T, H)$, where `hs[:, t]`
# is the state after reading character $t$. Its first step is the one you computed.
#
# To get a loss we read each state out into scores over the vocabulary with an affine
# layer, $\text{logits}_t = h_t\,\mathit{Wy} + \mathit{by}$ $(N, V)$, and take the
# cross-entropy of the targets, averaged over all $NT$ predictions:
#
# $$L = -\frac{1}{NT}\sum_{n=0}^{N-1}\sum_{t=0}^{T-1}
# \log \operatorname{softmax}(\text{logits}_t[n])[y_{n,t}] .$$
#
# With small random weights no character is much more likely than another, so $L$ is
# close to $\log 4 \approx 1.39$.

# %%
Wy = 0.5 * rng.standard_normal((H, V))  # (H, V)
by = np.zeros(V)                        # (V,)

hs, rnn_cache = F.rnn_forward(X, h0, Wx, Wh, b)        # (N, T, H)
logits, out_cache = F.affine_forward(hs, Wy, by)       # (N, T, V)
loss, dlogits = F.softmax_cross_entropy(logits, y)     # dlogits: (N, T, V)
print("hs (N, T, H):\n", hs)
print("hs[:, 0] equals your h:", np.allclose(hs[:, 0], h))
print(f"loss = {float(loss):.4f}   (log 4 = {np.log(4):.4f})")

# %% [markdown]
# Going back through the loss and the affine layer gives `dhs` $(N, T, H)$:
# `dhs[:, t]` is the gradient that reaches $h_t$ **directly**, from the prediction made
# at step $t$.

# %%
dhs, dWy, dby = F.affine_backward(dlogits, out_cache)  # dhs: (N, T, H)
print("dhs (N, T, H):\n", dhs)

# %% [markdown]
# ## Backpropagation through time, on paper
#
# `dhs[:, t]` is not all of $dh_t$. The state $h_t$ also feeds $a_{t+1}$, the next
# step's pre-activation, and a value used twice collects the gradient of both uses:
#
# $$dh_t = \texttt{dhs[:, t]} + da_{t+1}\,\mathit{Wh}^\top
# \qquad \text{(no second term for } t = T-1\text{)}$$
#
# $$da_t = dh_t \odot (1 - h_t \odot h_t)$$
#
# So BPTT walks from $t = T-1$ down to $0$ and carries one array: the gradient that
# reaches $h_{t-1}$ through step $t$, $da_t\,\mathit{Wh}^\top$. After $t = 0$ it holds
# $\partial L / \partial h_{-1}$, the gradient of the initial state `h0` (the
# derivation writes `h0` as $h_{-1}$, so that $a_t = x_t\mathit{Wx} +
# h_{t-1}\mathit{Wh} + b$ holds for every $t$).
#
# The weights are shared by every step, so their gradients add up over time:
#
# $$d\mathit{Wx} = \sum_{t} x_t^\top da_t, \qquad
# d\mathit{Wh} = \sum_{t} h_{t-1}^\top da_t, \qquad
# db = \sum_{t}\sum_n da_t[n, :], \qquad dx_t = da_t\,\mathit{Wx}^\top .$$
#
# **Exercise 3.** Write the BPTT loop. For $t = T-1, \dots, 0$: form $dh_t$ from
# `dhs[:, t]` and `dh_next` (the gradient from step $t+1$), then $da_t$; write $dx_t$
# into `dX_bptt[:, t]`; add to `dWx_bptt`, `dWh_bptt`, `db_bptt`; and set `dh_next`
# for the step before. Finally set `dh0_bptt`. Use `hs[:, t - 1]` for $h_{t-1}$, and
# `h0` when $t = 0$.

# %%
dX_bptt = np.zeros_like(X)       # (N, T, D)
dWx_bptt = np.zeros_like(Wx)     # (D, H)
dWh_bptt = np.zeros_like(Wh)     # (H, H)
db_bptt = np.zeros_like(b)       # (H,)
dh_next = np.zeros((N, H))       # gradient reaching h_t from step t+1: none after the last step
### BEGIN SOLUTION
for t in range(T - 1, -1, -1):
    h_before = hs[:, t - 1] if t > 0 else h0
    dh_t = dhs[:, t] + dh_next
    da_t = dh_t * (1 - hs[:, t] * hs[:, t])
    dX_bptt[:, t] = da_t @ Wx.T
    dWx_bptt += X[:, t].T @ da_t
    dWh_bptt += h_before.T @ da_t
    db_bptt += da_t.sum(axis=0)
    dh_next = da_t @ Wh.T
dh0_bptt = dh_next
### END SOLUTION
print("dWh_bptt:\n", dWh_bptt)
print("dh0_bptt:", dh0_bptt)

# %% tags=["graded"]
for name, mine, lib in zip(["dX", "dh0", "dWx", "dWh", "db"],
                           [dX_bptt, dh0_bptt, dWx_bptt, dWh_bptt, db_bptt],
                           F.rnn_backward(dhs, rnn_cache)):
    assert np.shape(mine) == lib.shape, f"{name}: shape {np.shape(mine)}, expected {lib.shape}"
    np.testing.assert_allclose(mine, lib, rtol=1e-10, atol=1e-12, err_msg=name)


def _loss_of_model():
    hs_, _ = F.rnn_forward(X, h0, Wx, Wh, b)
    return F.softmax_cross_entropy(F.affine_forward(hs_, Wy, by)[0], y)[0]


# Independently of the library: centred differences of the loss itself.
for name, mine, wrt in [("dWh", dWh_bptt, Wh), ("dh0", dh0_bptt, h0), ("db", db_bptt, b)]:
    num = gradcheck.numerical_gradient(_loss_of_model, wrt, np.ones(()))
    err = gradcheck.rel_error(mine, num)
    assert err < 1e-7, f"{name}: relative error {err:.1e} against centred differences"
print("BPTT: correct")

# %% [markdown]
# Your loop is what `rnn_backward` does, with one change for speed: it stores every
# $da_t$ and forms $d\mathit{Wx}$, $d\mathit{Wh}$, $db$ and $dx$ after the loop, each
# as one matrix product (or sum) over all $T$ steps
# (`docs/derivations/rnn.md#backward-through-time`).
#
# ## The gradient check
#
# How do we know a backward pass is right without trusting another one? Centred
# differences. For a scalar $L$ and each entry $w$ of each input,
#
# $$\frac{\partial L}{\partial w} \approx \frac{L(w + \varepsilon) - L(w - \varepsilon)}{2\varepsilon},$$
#
# with an error of order $\varepsilon^2$. `minirnn.gradcheck` builds the scalar
# $L = \sum_k \sum \text{out}_k \odot d\text{out}_k$ from random upstream gradients,
# compares the two answers with the relative error
# $\lVert g - \tilde g \rVert / (\lVert g \rVert + \lVert \tilde g \rVert)$, and passes
# below $10^{-7}$. In float64 with $\varepsilon = 10^{-5}$ a correct backward reaches
# about $10^{-10}$; a wrong one misses by orders of magnitude. (In float32 the
# rounding of $L$ alone would swamp the comparison: always check in float64.)
#
# `check_op` runs the ready-made check of one op on random float64 inputs:

# %%
report = gradcheck.check_op("rnn_step") + gradcheck.check_op("rnn", N=2, T=4, D=3, H=5)
print(report)
assert report.passed

# %% [markdown]
# `check_params` checks a whole model: it calls a `loss(backward)` function that runs
# the forward pass (and, when asked, the backward pass, adding into `grads`), then
# compares every parameter's gradient with centred differences of the loss. Here is
# the three-character model from above, end to end.

# %%
params = {"Wx": Wx, "Wh": Wh, "b": b, "Wy": Wy, "by": by}
grads = {k: np.zeros_like(p) for k, p in params.items()}


def model_loss(backward):
    hs_, cache_ = F.rnn_forward(X, h0, params["Wx"], params["Wh"], params["b"])
    logits_, out_cache_ = F.affine_forward(hs_, params["Wy"], params["by"])
    loss_, dlogits_ = F.softmax_cross_entropy(logits_, y)
    if backward:
        dhs_, dWy_, dby_ = F.affine_backward(dlogits_, out_cache_)
        _, _, dWx_, dWh_, db_ = F.rnn_backward(dhs_, cache_)
        for k, g in zip(["Wx", "Wh", "b", "Wy", "by"], [dWx_, dWh_, db_, dWy_, dby_]):
            grads[k] += g
    return float(loss_)


report = gradcheck.check_params(params, grads, model_loss, op="char-rnn")
print(report)
assert report.passed

# %% [markdown]
# ## Vanishing and exploding gradients
#
# Going back one step multiplies the carried gradient by the slope of the $\tanh$ and
# then by $\mathit{Wh}^\top$:
#
# $$dh_{t-1} = \big(dh_t \odot (1 - h_t \odot h_t)\big)\,\mathit{Wh}^\top
# \qquad \text{(when the loss reaches } h_{t-1} \text{ only through } h_t\text{)}.$$
#
# Going back $k$ steps multiplies by $k$ such factors. If every slope were 1 (a linear
# RNN), the size of the gradient would change like $\rho^k$ for large $k$, where $\rho$
# is the spectral radius of $\mathit{Wh}$, its largest eigenvalue magnitude: it
# **vanishes** when $\rho < 1$ and **explodes** when $\rho > 1$. The slope
# $1 - h\odot h$ lies between 0 and 1, so at every step it can only shrink the vector
# it multiplies; when the states saturate ($h$ near $\pm 1$) it is near 0 and takes
# back much of the growth.
#
# The experiment: a bigger RNN ($H = 32$) reads a batch of 8 sequences of $T = 50$
# random inputs, the loss sees only the last state ($dh_{T-1}$ is a fixed array of
# norm 1), and we go back one step at a time with `rnn_step_backward`, recording
# $\lVert \partial L / \partial h_t \rVert$ (over the whole batch) at distance
# $k = T-1-t$ from the loss; $k = T$ is the initial state. $\mathit{Wh}$ is one random
# matrix rescaled to each spectral radius. `gradcheck.gradient_norms_through_time` does
# the bookkeeping: it runs `rnn_step_forward` over the 50 steps from a zero state,
# then `rnn_step_backward` one step at a time, keeping the norm of each carried `dh_prev`.

# %%
H_big, D_big, T_long, N_big = 32, 8, 50, 8
rng_plot = np.random.default_rng(1)
W_base = rng_plot.standard_normal((H_big, H_big)) / np.sqrt(H_big)
Wx_big = rng_plot.standard_normal((D_big, H_big)) / np.sqrt(D_big)
b_big = np.zeros(H_big)
X_long = 0.3 * rng_plot.standard_normal((N_big, T_long, D_big))
dh_last = rng_plot.standard_normal((N_big, H_big))
dh_last /= np.linalg.norm(dh_last)  # ||dL/dh_{T-1}|| = 1


def with_spectral_radius(W, rho):
    """W rescaled so that its largest eigenvalue magnitude is rho."""
    return W * (rho / np.max(np.abs(np.linalg.eigvals(W))))


def rnn_grad_norms(Wh_):
    """||dL/dh_t|| for distances k = 0..T from a loss that reads only the last state."""
    weights = (Wx_big, Wh_, b_big)
    return gradcheck.gradient_norms_through_time("rnn", X_long, weights, dh_last)[0]


radii = [0.5, 1.0, 1.5, 2.0, 3.0]
k = np.arange(T_long + 1)
fig, ax = plt.subplots(figsize=(7, 4.5))
for rho in radii:
    (line,) = ax.semilogy(k, rnn_grad_norms(with_spectral_radius(W_base, rho)), label=f"ρ = {rho}")
    ax.semilogy(k, rho ** k, ls=":", color=line.get_color())
ax.set_ylim(1e-12, 1e8)
ax.set_xlabel("distance from the loss, k = T − 1 − t (steps)")
ax.set_ylabel(r"$\Vert \partial L / \partial h_t \Vert$")
ax.set_title(r"Vanilla RNN (dotted: $\rho^k$, the rate of a linear RNN)")
ax.legend(title="spectral radius of Wh")
plt.show()

# %% [markdown]
# Read the plot from left to right, which is backwards in time.
#
# - With $\rho = 0.5$ the gradient falls by about ten orders of magnitude in 30 steps:
#   the loss can tell the weights almost nothing about inputs that far back. Even at
#   $\rho = 1$ it keeps shrinking, because the $\tanh$ slopes are below 1.
# - At $\rho = 1.5$ growth and saturation roughly cancel. At $\rho = 2$ and $3$ the
#   gradient grows by orders of magnitude: one long-range gradient can then dominate
#   an update and throw the weights far off (the trainer clips the global gradient
#   norm for this reason).
# - Every curve stays below its dotted line: the saturated states tame the growth,
#   but at $\rho = 3$ not enough.
#
# There is no $\rho$ that keeps the gradient near 1 over long distances for every
# input. The LSTM (notebook 02) and the GRU (notebook 03) fix this by adding a path
# back in time that the gradient can travel without a weight matrix.
