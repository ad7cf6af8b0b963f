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
# # 02 · The LSTM: gates and a gradient highway
#
# Notebook 01 ended with a problem: going back one step multiplies the vanilla RNN's
# gradient by $\mathit{Wh}^\top$ and a $\tanh$ slope, so over many steps it vanishes or
# explodes. The LSTM (long short-term memory) adds a second state, the **cell** $c$,
# that is updated by elementwise operations only. In this notebook you will
#
# 1. compute the four gates $i, f, g, o$ of one step by hand, each from its slice of the
#    pre-activation;
# 2. update the cell and the hidden state;
# 3. send a gradient back through the cell and see why it survives;
# 4. go back through the gates to the weights;
# 5. gradient-check the library's LSTM and compare its gradient over distance with the
#    vanilla RNN's.
#
# The code is `minirnn/functional/lstm.py`, the derivation `docs/derivations/lstm.md`.
# Cells that start with **Exercise** are yours; the cell after each one checks it.

# %%
import numpy as np
import matplotlib.pyplot as plt

from minirnn import functional as F
from minirnn import gradcheck

np.set_printoptions(precision=4, suppress=True)
rng = np.random.default_rng(0)

# %% [markdown]
# ## One step, four gates
#
# An LSTM step takes the input $x$ $(N, D)$, the previous hidden state $h_{prev}$ and
# the previous cell $c_{prev}$ (both $(N, H)$). Like the RNN it starts with one affine
# map, but with $4H$ columns, one block of $H$ per gate:
#
# $$a = x\,\mathit{Wx} + h_{prev}\,\mathit{Wh} + b \qquad (N, 4H),$$
#
# with $\mathit{Wx}$ $(D, 4H)$, $\mathit{Wh}$ $(H, 4H)$ and $b$ $(4H,)$. The blocks are
# stacked in the order $i, f, g, o$ (PyTorch's and Keras's order):
#
# | gate | slice of $a$ | activation | role |
# |---|---|---|---|
# | $i$, input gate | `a[:, 0:H]` | $\sigma$, in $(0, 1)$ | how much of the candidate to write |
# | $f$, forget gate | `a[:, H:2H]` | $\sigma$, in $(0, 1)$ | how much of the old cell to keep |
# | $g$, candidate | `a[:, 2H:3H]` | $\tanh$, in $(-1, 1)$ | what to write |
# | $o$, output gate | `a[:, 3H:4H]` | $\sigma$, in $(0, 1)$ | how much of the cell to show in $h$ |
#
# Here $\sigma(z) = 1/(1 + e^{-z})$ is the logistic sigmoid. The library computes the
# same value as $(1 + \tanh(z/2))/2$, which cannot overflow for any input
# (`docs/derivations/lstm.md#sigmoid`); for the small numbers here the textbook form
# below is fine.
#
# Our example: a batch of $N = 2$, input size $D = 3$, hidden size $H = 2$, so $a$ has
# 8 columns. The previous states are random, as if from earlier steps.

# %%
N, D, H = 2, 3, 2
x = rng.standard_normal((N, D))               # (N, D)
h_prev = 0.5 * rng.standard_normal((N, H))    # (N, H)
c_prev = rng.standard_normal((N, H))          # (N, H)
Wx = rng.standard_normal((D, 4 * H)) / np.sqrt(D)  # (D, 4H)
Wh = rng.standard_normal((H, 4 * H)) / np.sqrt(H)  # (H, 4H)
b = 0.5 * rng.standard_normal(4 * H)               # (4H,)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


a = x @ Wx + h_prev @ Wh + b                  # (N, 4H) pre-activations of all four gates
print("a =\n", a)

# %% [markdown]
# **Exercise 1.** Compute the gates one at a time, in the order $i, f, g, o$, each from
# its slice of `a` (each is $(N, H)$):
#
# $$i = \sigma(a[:, 0{:}H]), \quad f = \sigma(a[:, H{:}2H]), \quad
# g = \tanh(a[:, 2H{:}3H]), \quad o = \sigma(a[:, 3H{:}4H]).$$

# %%
### BEGIN SOLUTION
i = sigmoid(a[:, 0:H])
f = sigmoid(a[:, H:2 * H])
g = np.tanh(a[:, 2 * H:3 * H])
o = sigmoid(a[:, 3 * H:4 * H])
### END SOLUTION
gate_table = [("i", "sigmoid", "0:H", i), ("f", "sigmoid", "H:2H", f),
              ("g", "tanh", "2H:3H", g), ("o", "sigmoid", "3H:4H", o)]
for k, (name, act, cols, value) in enumerate(gate_table):
    print(f"a[:, {cols}] =\n{a[:, k * H:(k + 1) * H]}")
    print(f"{name} = {act}(a[:, {cols}]) =\n{value}\n")

# %% tags=["graded"]
_, _, step_cache = F.lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b)
for k, (name, mine) in enumerate([("i", i), ("f", f), ("g", g), ("o", o)]):
    lib = step_cache.gates[:, k * H:(k + 1) * H]  # the library's gate values, order i, f, g, o
    assert np.shape(mine) == (N, H), f"{name}: shape {np.shape(mine)}, expected {(N, H)}"
    np.testing.assert_allclose(mine, lib, rtol=1e-10, atol=1e-12, err_msg=name)
print("gates: correct")

# %% [markdown]
# ## The cell and the hidden state
#
# The new cell keeps a fraction $f$ of the old one and writes a fraction $i$ of the
# candidate $g$; the new hidden state shows a fraction $o$ of the squashed cell:
#
# $$c = f \odot c_{prev} + i \odot g, \qquad \mathit{tc} = \tanh(c), \qquad
# h = o \odot \mathit{tc} \qquad (N, H).$$
#
# Every operation here is elementwise: no weight matrix touches $c$ on its way from
# $c_{prev}$ to $c$. The weights act only through the gates.
#
# **Exercise 2.** Compute `c`, `tc` and `h`.

# %%
### BEGIN SOLUTION
c = f * c_prev + i * g
tc = np.tanh(c)
h = o * tc
### END SOLUTION
for name, value in [("c_prev", c_prev), ("c", c), ("tc = tanh(c)", tc), ("h", h)]:
    print(f"{name} =\n{value}")

# %% tags=["graded"]
h_lib, c_lib, _ = F.lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b)
np.testing.assert_allclose(c, c_lib, rtol=1e-10, atol=1e-12, err_msg="c")
np.testing.assert_allclose(tc, np.tanh(c_lib), rtol=1e-10, atol=1e-12, err_msg="tc")
np.testing.assert_allclose(h, h_lib, rtol=1e-10, atol=1e-12, err_msg="h")
print("c, tc, h: correct")

# %% [markdown]
# `lstm_forward` runs this step for $t = 0, \dots, T-1$ with the same weights,
# starting from `h0` and `c0`, and returns every $h_t$ as `hs` $(N, T, H)$ and the last
# cell `c_last`.
#
# ## The cell-state gradient
#
# Two gradients arrive at a step from above: $dh = \partial L / \partial h$, and
# $dc^{\text{out}}$, the gradient that reaches $c$ from outside the step (from the next
# step's cell update $c_{next} = f_{next} \odot c + \dots$, or zero at the last step).
# In the code of `lstm_step_backward(dh, dc, cache)` this is the argument `dc`.
#
# The cell is used twice, by $\mathit{tc} = \tanh(c)$ and by the next step, so its
# total gradient is the sum of both uses. Through $h = o \odot \mathit{tc}$ and the
# $\tanh$, whose slope is $1 - \mathit{tc}\odot\mathit{tc}$:
#
# $$dc = dc^{\text{out}} + dh \odot o \odot (1 - \mathit{tc} \odot \mathit{tc}).$$
#
# Then through $c = f \odot c_{prev} + i \odot g$, to the previous cell:
#
# $$dc_{prev} = dc \odot f .$$
#
# That is the whole step back along the cell: an elementwise product with the forget
# gate. Compare the RNN's $dh_{prev} = (dh \odot (1 - h\odot h))\,\mathit{Wh}^\top$.
#
# **Exercise 3.** For the upstream gradients `dh` and `dc_out` below, compute the total
# cell gradient `dc` and `dc_prev`.

# %%
dh = rng.standard_normal((N, H))      # dL/dh, from above
dc_out = rng.standard_normal((N, H))  # dL/dc from outside the step (the next step's cell)
### BEGIN SOLUTION
dc = dc_out + dh * o * (1 - tc * tc)
dc_prev = dc * f
### END SOLUTION
print("dc =\n", dc)
print("dc_prev =\n", dc_prev)

# %% tags=["graded"]
_, _, step_cache = F.lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b)
expected_dc_prev = F.lstm_step_backward(dh, dc_out, step_cache)[2]
np.testing.assert_allclose(dc * f, expected_dc_prev, rtol=1e-10, atol=1e-12, err_msg="dc")
np.testing.assert_allclose(dc_prev, expected_dc_prev, rtol=1e-10, atol=1e-12, err_msg="dc_prev")
# Independently of the library: centred differences of L = sum(h * dh) + sum(c * dc_out).
num = gradcheck.numerical_gradient(lambda: F.lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b)[:2],
                                   c_prev, (dh, dc_out))
err = gradcheck.rel_error(dc_prev, num)
assert err < 1e-7, f"dc_prev: relative error {err:.1e} against centred differences"
print("cell gradient: correct")

# %% [markdown]
# ## Back through the gates
#
# The rest of the step follows the same rules. From $h = o \odot \mathit{tc}$ and
# $c = f \odot c_{prev} + i \odot g$ (each factor of a product receives the upstream
# gradient times the other factor):
#
# $$do = dh \odot \mathit{tc}, \qquad di = dc \odot g, \qquad
# df = dc \odot c_{prev}, \qquad dg = dc \odot i .$$
#
# Through the activations, written with their outputs: $\sigma'(z) = s\,(1 - s)$ for
# $s = \sigma(z)$, and $\tanh'(z) = 1 - g \odot g$ for $g = \tanh(z)$. The four blocks
# of $da$ $(N, 4H)$, side by side in the order $i, f, g, o$:
#
# $$da = \big[\, di \odot i \odot (1 - i),\ \ df \odot f \odot (1 - f),\ \
# dg \odot (1 - g \odot g),\ \ do \odot o \odot (1 - o) \,\big].$$
#
# Finally, through $a = x\,\mathit{Wx} + h_{prev}\,\mathit{Wh} + b$, exactly as for the
# RNN but with $4H$ columns:
#
# $$dx = da\,\mathit{Wx}^\top, \quad dh_{prev} = da\,\mathit{Wh}^\top, \quad
# d\mathit{Wx} = x^\top da, \quad d\mathit{Wh} = h_{prev}^\top da, \quad
# db = \textstyle\sum_n da[n, :].$$
#
# So $h_{prev}$ gets its gradient only through $\mathit{Wh}$, and $c_{prev}$ only
# through $f$.
#
# **Exercise 4.** Compute `da` $(N, 4H)$, then `dx`, `dh_prev`, `dWx`, `dWh` and `db`.
# (`np.concatenate([...], axis=1)` puts blocks side by side.)

# %%
### BEGIN SOLUTION
do = dh * tc
di = dc * g
df = dc * c_prev
dg = dc * i
da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g * g), do * o * (1 - o)],
                    axis=1)
dx = da @ Wx.T
dh_prev = da @ Wh.T
dWx = x.T @ da
dWh = h_prev.T @ da
db = da.sum(axis=0)
### END SOLUTION
print("da =\n", da)
print("dh_prev =\n", dh_prev)

# %% tags=["graded"]
_, _, step_cache = F.lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b)
expected = F.lstm_step_backward(dh, dc_out, step_cache)  # dx, dh_prev, dc_prev, dWx, dWh, db
assert np.shape(da) == (N, 4 * H), f"da: shape {np.shape(da)}, expected {(N, 4 * H)}"
for name, mine, lib in zip(["dx", "dh_prev", "dWx", "dWh", "db"], [dx, dh_prev, dWx, dWh, db],
                           [expected[0], expected[1], expected[3], expected[4], expected[5]]):
    assert np.shape(mine) == lib.shape, f"{name}: shape {np.shape(mine)}, expected {lib.shape}"
    np.testing.assert_allclose(mine, lib, rtol=1e-10, atol=1e-12, err_msg=name)
np.testing.assert_allclose(x.T @ da, expected[3], rtol=1e-10, atol=1e-12, err_msg="da")
np.testing.assert_allclose(da.sum(axis=0), expected[5], rtol=1e-10, atol=1e-12, err_msg="da")
# Independently of the library: centred differences of L = sum(h * dh) + sum(c * dc_out).
for name, mine, wrt in [("dWh", dWh, Wh), ("dh_prev", dh_prev, h_prev), ("db", db, b)]:
    num = gradcheck.numerical_gradient(
        lambda: F.lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b)[:2], wrt, (dh, dc_out))
    err = gradcheck.rel_error(mine, num)
    assert err < 1e-7, f"{name}: relative error {err:.1e} against centred differences"
print("step backward: correct")

# %% [markdown]
# `lstm_backward` runs this step for $t = T-1, \dots, 0$ and carries two arrays back
# in time: $dh$ gets `dhs[:, t]` plus $da_{t+1}\,\mathit{Wh}^\top$, exactly as in the
# RNN, and $dc^{\text{out}}$ for step $t$ is the $dc_{prev}$ of step $t+1$.
#
# ## The gradient check
#
# `check_op` compares the library's backward passes with centred differences in
# float64, for random inputs (notebook 01 explains the check). The `lstm` check sends
# a random gradient into both outputs, `hs` and `c_last`, so the path through the
# cell is checked too.

# %%
report = gradcheck.check_op("lstm_step") + gradcheck.check_op("lstm", N=2, T=4, D=3, H=5)
print(report)
assert report.passed

# %% [markdown]
# ## The cell state as a gradient highway
#
# Going back $k$ steps along the cell multiplies by $k$ forget gates,
# $dc_{t-k} \leftarrow dc_t \odot f_t \odot f_{t-1} \odot \cdots \odot f_{t-k+1}$,
# elementwise, with no weight matrix and no $\tanh$ slope in between. Where the forget
# gates are near 1 this product stays near 1 for many steps: the net can keep both a
# memory and its gradient for as long as it learns to hold $f$ open. A positive bias on
# the forget block, $b_f$, starts every gate near 1 before any training (Gers et al.,
# 2000, *Learning to forget*; Jozefowicz et al., 2015, recommend $b_f = 1$).
#
# The cell is not the only path. The gradient also reaches $h_{t-1}$ through
# $\mathit{Wh}$ and the gates, and $\lVert \partial L / \partial h_t \rVert$ below
# counts every path. The experiment is the one from notebook 01: a batch of 8 random
# sequences of $T = 50$ steps with $H = 32$, a loss that reads only the last hidden
# state, and the gradient followed back with the step functions. We compare the
# vanilla RNN with spectral radius $\rho = 1$ and the LSTM with forget biases
# $b_f = 0, 1, 3$ (all other biases 0).

# %%
H_big, D_big, T_long, N_big = 32, 8, 50, 8
rng_plot = np.random.default_rng(1)
W_base = rng_plot.standard_normal((H_big, H_big)) / np.sqrt(H_big)
Wx_rnn = rng_plot.standard_normal((D_big, H_big)) / np.sqrt(D_big)
X_long = 0.3 * rng_plot.standard_normal((N_big, T_long, D_big))
dh_last = rng_plot.standard_normal((N_big, H_big))
dh_last /= np.linalg.norm(dh_last)  # ||dL/dh_{T-1}|| = 1
Wh_rnn = W_base / np.max(np.abs(np.linalg.eigvals(W_base)))  # spectral radius 1
rng_lstm = np.random.default_rng(2)
Wx_lstm = rng_lstm.standard_normal((D_big, 4 * H_big)) / np.sqrt(D_big)
Wh_lstm = rng_lstm.standard_normal((H_big, 4 * H_big)) / np.sqrt(H_big)


def rnn_grad_norms():
    """||dL/dh_t|| for distances k = 0..T from a loss that reads only the last state."""
    weights = (Wx_rnn, Wh_rnn, np.zeros(H_big))
    return gradcheck.gradient_norms_through_time("rnn", X_long, weights, dh_last)[0]


def lstm_grad_norms(b_f):
    """Same for the LSTM with forget bias b_f; also returns the mean forget gate."""
    b_ = np.zeros(4 * H_big)
    b_[H_big:2 * H_big] = b_f
    norms, caches = gradcheck.gradient_norms_through_time(
        "lstm", X_long, (Wx_lstm, Wh_lstm, b_), dh_last)
    return norms, np.mean([cache_.gates[:, H_big:2 * H_big] for cache_ in caches])


k = np.arange(T_long + 1)
fig, ax = plt.subplots(figsize=(7, 4.5))
ax.semilogy(k, rnn_grad_norms(), color="black", label="vanilla RNN, ρ = 1")
for b_f in [0, 1, 3]:
    norms, mean_f = lstm_grad_norms(b_f)
    ax.semilogy(k, norms, label=f"LSTM, $b_f$ = {b_f} (mean f = {mean_f:.2f})")
ax.set_xlabel("distance from the loss, k = T − 1 − t (steps)")
ax.set_ylabel(r"$\Vert \partial L / \partial h_t \Vert$")
ax.set_title("Gradient norm vs distance: LSTM beside the vanilla RNN")
ax.legend()
plt.show()

# %% [markdown]
# - With $b_f = 0$ the forget gates sit near $\sigma(0) = 0.5$: every step back along
#   the cell halves the gradient, and this LSTM loses its gradient even faster than the
#   RNN. The cell is a highway only where the forget gates are open.
# - With $b_f = 1$ ($f \approx 0.73$) the gradient decays far more slowly than the
#   RNN's, and with $b_f = 3$ ($f \approx 0.95$) it does not decay at all: the loss can
#   still adjust how the first inputs were written into the cell, 50 steps back.
# - A highway carries growth as well as signal. With $b_f = 3$ the norm even rises
#   towards the start of the sequence, where the cell is still small (with $f$ near 1
#   it grows as the sequence goes on) and its $\tanh$ is far from saturation, so the
#   paths through $h$ add to the path along the cell. LSTMs are trained with gradient
#   clipping too.
#
# The GRU (notebook 03) gets a similar path with fewer parameters, without a separate
# cell.
