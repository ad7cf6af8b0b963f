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
# # 03 · The GRU: an LSTM without a cell
#
# The gated recurrent unit (Cho et al., 2014) keeps the LSTM's idea, a path back in
# time that no weight matrix touches, with a single state $h$ and three gate blocks
# instead of four. In this notebook you will
#
# 1. compute the reset and update gates $r, z$ of one step by hand;
# 2. compute the candidate $n$ and the new state $h$;
# 3. go back through the state update, where the GRU's gradient path lives;
# 4. go back through the gates to the weights;
# 5. compare the GRU with the LSTM: no cell, a coupled update gate, fewer parameters,
#    and its gradient over distance beside the LSTM's and the vanilla RNN's.
#
# The code is `minirnn/functional/gru.py`, the derivation `docs/derivations/gru.md`.
# Cells that start with **Exercise** are yours; the cell after each one checks it.

# %%
import numpy as np
import matplotlib.pyplot as plt

from minirnn import functional as F
from minirnn import gradcheck, nn

np.set_printoptions(precision=4, suppress=True)
rng = np.random.default_rng(0)

# %% [markdown]
# ## One step: the PyTorch/cuDNN form
#
# minirnn's GRU is the one PyTorch and cuDNN compute, so their weights carry over with
# a transpose. The gate blocks are stacked $r, z, n$; $\mathit{Wx}$ is $(D, 3H)$,
# $\mathit{Wh}$ is $(H, 3H)$, and there are two biases, $\mathit{bx}$ and $\mathit{bh}$,
# each $(3H,)$. One step first forms the input part and the recurrent part of all three
# blocks:
#
# $$\mathit{ax} = x\,\mathit{Wx} + \mathit{bx}, \qquad
# \mathit{ah} = h_{prev}\,\mathit{Wh} + \mathit{bh} \qquad (N, 3H).$$
#
# A superscript picks a block of $H$ columns: $r$ is `0:H`, $z$ is `H:2H`, $n$ is
# `2H:3H`. Then
#
# $$
# \begin{aligned}
# r &= \sigma(\mathit{ax}^r + \mathit{ah}^r) && \text{reset gate}\\
# z &= \sigma(\mathit{ax}^z + \mathit{ah}^z) && \text{update gate}\\
# \mathit{hn} &= \mathit{ah}^n = h_{prev}\,\mathit{Wh}_n + \mathit{bh}_n && \text{recurrent part of the candidate}\\
# n &= \tanh(\mathit{ax}^n + r \odot \mathit{hn}) && \text{candidate}\\
# h &= (1 - z) \odot n + z \odot h_{prev} && \text{new state}
# \end{aligned}
# $$
#
# Note the convention of the last line: $z$ near 1 **keeps** the old state and $z$ near
# 0 replaces it with the candidate. (Some texts swap the roles of $z$ and $1 - z$.)
#
# Our example: a batch of $N = 2$, input size $D = 3$, hidden size $H = 2$.

# %%
N, D, H = 2, 3, 2
x = rng.standard_normal((N, D))                    # (N, D)
h_prev = 0.5 * rng.standard_normal((N, H))         # (N, H)
Wx = rng.standard_normal((D, 3 * H)) / np.sqrt(D)  # (D, 3H)
Wh = rng.standard_normal((H, 3 * H)) / np.sqrt(H)  # (H, 3H)
bx = 0.5 * rng.standard_normal(3 * H)              # (3H,)
bh = 0.5 * rng.standard_normal(3 * H)              # (3H,)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


# %% [markdown]
# **Exercise 1.** Compute `ax` and `ah` $(N, 3H)$, then the reset gate `r` and the
# update gate `z` $(N, H)$, each from its two slices. ($\sigma$ is the `sigmoid` above;
# the library computes the same value as $(1 + \tanh(z/2))/2$, which cannot overflow.)

# %%
### BEGIN SOLUTION
ax = x @ Wx + bx
ah = h_prev @ Wh + bh
r = sigmoid(ax[:, 0:H] + ah[:, 0:H])
z = sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
### END SOLUTION
for name, value in [("ax", ax), ("ah", ah), ("r", r), ("z", z)]:
    print(f"{name} =\n{value}")

# %% tags=["graded"]
_, step_cache = F.gru_step_forward(x, h_prev, Wx, Wh, bx, bh)
assert np.shape(ax) == np.shape(ah) == (N, 3 * H), "ax and ah must be (N, 3H)"
np.testing.assert_allclose(ax - bx, x @ Wx, rtol=1e-10, atol=1e-12, err_msg="ax")
np.testing.assert_allclose(ah - bh, h_prev @ Wh, rtol=1e-10, atol=1e-12, err_msg="ah")
np.testing.assert_allclose(ah[:, 2 * H:], step_cache.hn, rtol=1e-10, atol=1e-12, err_msg="ah")
np.testing.assert_allclose(r, step_cache.gates[:, 0:H], rtol=1e-10, atol=1e-12, err_msg="r")
np.testing.assert_allclose(z, step_cache.gates[:, H:2 * H], rtol=1e-10, atol=1e-12, err_msg="z")
print("r, z: correct")

# %% [markdown]
# **Exercise 2.** Compute `hn` (the $n$ block of `ah`), the candidate `n` and the new
# state `h` $(N, H)$.

# %%
### BEGIN SOLUTION
hn = ah[:, 2 * H:3 * H]
n = np.tanh(ax[:, 2 * H:3 * H] + r * hn)
h = (1 - z) * n + z * h_prev
### END SOLUTION
for name, value in [("hn", hn), ("n", n), ("h_prev", h_prev), ("h", h)]:
    print(f"{name} =\n{value}")

# %% tags=["graded"]
h_lib, step_cache = F.gru_step_forward(x, h_prev, Wx, Wh, bx, bh)
np.testing.assert_allclose(hn, step_cache.hn, rtol=1e-10, atol=1e-12, err_msg="hn")
np.testing.assert_allclose(n, step_cache.gates[:, 2 * H:], rtol=1e-10, atol=1e-12, err_msg="n")
np.testing.assert_allclose(h, h_lib, rtol=1e-10, atol=1e-12, err_msg="h")
print("hn, n, h: correct")

# %% [markdown]
# **Why the reset comes after the product.** Cho et al. (2014) apply the reset gate to
# the state *before* the recurrent product: $n = \tanh(\mathit{ax}^n + (r \odot
# h_{prev})\,\mathit{Wh}_n + \mathit{bh}_n)$. Then the product for $n$ cannot start
# until $r$ is known, and every step needs two recurrent products, one after the
# other. With the reset applied after $h_{prev}\,\mathit{Wh}_n$, all three blocks
# multiply the same $h_{prev}$, so each step needs one product $h_{prev}\,\mathit{Wh}$
# $(N, 3H)$. The two forms are different functions of the same weights:

# %%
n_cho = np.tanh(ax[:, 2 * H:] + (r * h_prev) @ Wh[:, 2 * H:] + bh[2 * H:])
print("n, reset after the product (minirnn, PyTorch, cuDNN):\n", n)
print("n, reset before the product (Cho et al.):\n", n_cho)

# %% [markdown]
# This form also explains the two biases. In the $r$ and $z$ blocks only
# $\mathit{bx} + \mathit{bh}$ matters; in the $n$ block $\mathit{bh}_n$ sits inside the
# product with $r$ and $\mathit{bx}_n$ does not, so they are different parameters.
#
# ## Back through the state update
#
# Given $dh = \partial L / \partial h$, the last line
# $h = (1 - z) \odot n + z \odot h_{prev}$ sends a gradient to each of its three inputs
# (each factor of a product receives the upstream gradient times the other factor):
#
# $$dn = dh \odot (1 - z), \qquad dz = dh \odot (h_{prev} - n), \qquad
# dh_{prev} \mathrel{+}= dh \odot z .$$
#
# The last term is the GRU's gradient path: it reaches $h_{prev}$ without passing
# through $\mathit{Wh}$ or any $\tanh$, multiplied only by the update gate, as the
# LSTM's cell gradient is multiplied only by the forget gate. Call it the skip term.
#
# **Exercise 3.** For the upstream gradient `dh` below, compute `dn`, `dz` and the
# skip term `dh_skip` $= dh \odot z$.

# %%
dh = rng.standard_normal((N, H))  # dL/dh, from above
### BEGIN SOLUTION
dn = dh * (1 - z)
dz = dh * (h_prev - n)
dh_skip = dh * z
### END SOLUTION
for name, value in [("dn", dn), ("dz", dz), ("dh_skip", dh_skip)]:
    print(f"{name} =\n{value}")

# %% tags=["graded"]
_, step_cache = F.gru_step_forward(x, h_prev, Wx, Wh, bx, bh)
_, _, dWx_lib, _, _, _ = F.gru_step_backward(dh, step_cache)
z_lib, n_lib = step_cache.gates[:, H:2 * H], step_cache.gates[:, 2 * H:]
# dWx's z and n blocks are x^T (dz through the sigmoid) and x^T (dn through the tanh).
np.testing.assert_allclose(x.T @ (dz * z_lib * (1 - z_lib)), dWx_lib[:, H:2 * H],
                           rtol=1e-10, atol=1e-12, err_msg="dz")
np.testing.assert_allclose(x.T @ (dn * (1 - n_lib * n_lib)), dWx_lib[:, 2 * H:],
                           rtol=1e-10, atol=1e-12, err_msg="dn")
np.testing.assert_allclose(dh_skip, dh * z_lib, rtol=1e-10, atol=1e-12, err_msg="dh_skip")
print("dn, dz, skip term: correct")

# %% [markdown]
# ## Back through the gates
#
# Through the candidate's $\tanh$: `dan` is the gradient of its argument
# $\mathit{ax}^n + r \odot \mathit{hn}$,
#
# $$\mathit{dan} = dn \odot (1 - n \odot n), \qquad
# dr = \mathit{dan} \odot \mathit{hn}, \qquad d\mathit{hn} = \mathit{dan} \odot r .$$
#
# Through the sigmoids ($\sigma' = s\,(1 - s)$), and side by side in the order
# $r, z, n$. In the $r$ and $z$ blocks $\mathit{ax}$ and $\mathit{ah}$ are simply added,
# so they receive the same gradient; in the $n$ block $\mathit{ax}^n$ gets `dan` while
# $\mathit{ah}^n = \mathit{hn}$ gets `dan` $\odot\, r$:
#
# $$\mathit{dah} = \big[\, dr \odot r \odot (1 - r),\ \ dz \odot z \odot (1 - z),\ \
# \mathit{dan} \odot r \,\big], \qquad
# \mathit{dax} = \big[\, dr \odot r \odot (1 - r),\ \ dz \odot z \odot (1 - z),\ \
# \mathit{dan} \,\big].$$
#
# Finally through the two products, adding the skip term to $dh_{prev}$:
#
# $$
# \begin{aligned}
# dx &= \mathit{dax}\,\mathit{Wx}^\top, & d\mathit{Wx} &= x^\top \mathit{dax}, &
# d\mathit{bx} &= \textstyle\sum_n \mathit{dax}[n, :],\\
# dh_{prev} &= dh \odot z + \mathit{dah}\,\mathit{Wh}^\top, & d\mathit{Wh} &= h_{prev}^\top \mathit{dah}, &
# d\mathit{bh} &= \textstyle\sum_n \mathit{dah}[n, :].
# \end{aligned}
# $$
#
# **Exercise 4.** Compute `dan`, `dah` and `dax` $(N, 3H)$, then `dx`, `dh_prev`,
# `dWx`, `dWh`, `dbx` and `dbh`.

# %%
### BEGIN SOLUTION
dan = dn * (1 - n * n)
dr = dan * hn
dar = dr * r * (1 - r)
daz = dz * z * (1 - z)
dah = np.concatenate([dar, daz, dan * r], axis=1)
dax = np.concatenate([dar, daz, dan], axis=1)
dx = dax @ Wx.T
dh_prev = dh_skip + dah @ Wh.T
dWx = x.T @ dax
dWh = h_prev.T @ dah
dbx = dax.sum(axis=0)
dbh = dah.sum(axis=0)
### END SOLUTION
print("dah =\n", dah)
print("dax =\n", dax)
print("dh_prev =\n", dh_prev)

# %% tags=["graded"]
_, step_cache = F.gru_step_forward(x, h_prev, Wx, Wh, bx, bh)
expected = F.gru_step_backward(dh, step_cache)  # dx, dh_prev, dWx, dWh, dbx, dbh
for name, mine, lib in zip(["dx", "dh_prev", "dWx", "dWh", "dbx", "dbh"],
                           [dx, dh_prev, dWx, dWh, dbx, dbh], expected):
    assert np.shape(mine) == lib.shape, f"{name}: shape {np.shape(mine)}, expected {lib.shape}"
    np.testing.assert_allclose(mine, lib, rtol=1e-10, atol=1e-12, err_msg=name)
np.testing.assert_allclose(x.T @ dax, expected[2], rtol=1e-10, atol=1e-12, err_msg="dax")
np.testing.assert_allclose(h_prev.T @ dah, expected[3], rtol=1e-10, atol=1e-12, err_msg="dah")
# Independently of the library: centred differences of L = sum(h * dh).
for name, mine, wrt in [("dWh", dWh, Wh), ("dh_prev", dh_prev, h_prev), ("dbh", dbh, bh),
                        ("dbx", dbx, bx)]:
    num = gradcheck.numerical_gradient(
        lambda: F.gru_step_forward(x, h_prev, Wx, Wh, bx, bh)[0], wrt, dh)
    err = gradcheck.rel_error(mine, num)
    assert err < 1e-7, f"{name}: relative error {err:.1e} against centred differences"
print("step backward: correct")

# %% [markdown]
# `dbx` and `dbh` agree in the $r$ and $z$ blocks, as they must for two biases that
# are only ever added there. `gru_backward` runs this step for $t = T-1, \dots, 0$,
# carrying one array: $dh_t$ = `dhs[:, t]` plus the $dh_{prev}$ of step $t+1$.
#
# ## The gradient check
#
# `check_op` compares the library's backward passes with centred differences in
# float64, for random inputs (notebook 01 explains the check).

# %%
report = gradcheck.check_op("gru_step") + gradcheck.check_op("gru", N=2, T=4, D=3, H=5)
print(report)
assert report.passed

# %% [markdown]
# ## How the GRU differs from the LSTM
#
# | | LSTM | GRU |
# |---|---|---|
# | state | $h$ and a cell $c$ | $h$ only |
# | gate blocks | $i, f, g, o$: four | $r, z, n$: three |
# | keep vs write | $c = f \odot c_{prev} + i \odot g$: two independent gates | $h = z \odot h_{prev} + (1 - z) \odot n$: one gate, coupled |
# | output | $h = o \odot \tanh(c)$: an output gate hides part of the cell | $h$ is the state itself |
# | path back in time | $dc_{prev} = dc \odot f$ | $dh_{prev} \mathrel{+}= dh \odot z$ |
# | recurrent products per step | one, $h_{prev}\,\mathit{Wh}$ $(N, 4H)$ | one, $h_{prev}\,\mathit{Wh}$ $(N, 3H)$ |
#
# The coupled update gate means the GRU can only keep what it does not write: the
# weights $z$ and $1 - z$ of the old state and the candidate add up to 1, so $h$ stays
# in $(-1, 1)$ when $h_{prev}$ and $n$ do. The LSTM can keep ($f \approx 1$) and write
# ($i \approx 1$) at once, and its cell can grow without bound.
#
# Three blocks instead of four also means a quarter fewer weights. Here are the
# parameter counts of one layer for a character model with $D = 65$ inputs (the
# tinyshakespeare vocabulary) and $H = 256$, from the shapes of the arrays, checked
# against `minirnn.nn.Recurrent`:

# %%
D_cmp, H_cmp = 65, 256
shapes = {
    "rnn": {"Wx": (D_cmp, H_cmp), "Wh": (H_cmp, H_cmp), "b": (H_cmp,)},
    "lstm": {"Wx": (D_cmp, 4 * H_cmp), "Wh": (H_cmp, 4 * H_cmp), "b": (4 * H_cmp,)},
    "gru": {"Wx": (D_cmp, 3 * H_cmp), "Wh": (H_cmp, 3 * H_cmp),
            "bx": (3 * H_cmp,), "bh": (3 * H_cmp,)},
}
counts = {cell: sum(int(np.prod(s)) for s in arrays.values()) for cell, arrays in shapes.items()}
for cell, count in counts.items():
    assert count == nn.Recurrent(cell, D_cmp, H_cmp).num_parameters()
    print(f"{cell:5s} {count:8,d} parameters   ({count / counts['lstm']:.3f} of the LSTM's)")

# %% [markdown]
# The GRU has $3(DH + H^2) + 6H$ parameters against the LSTM's $4(DH + H^2) + 4H$:
# just over three quarters, because of its second bias. (PyTorch's LSTM keeps two biases
# too, $8H$; minirnn's keeps their sum, since only the sum matters.)
#
# ## The gradient path, measured
#
# The experiment of notebooks 01 and 02 once more: a batch of 8 random sequences of
# $T = 50$ steps with $H = 32$, a loss that reads only the last hidden state, and
# $\lVert \partial L / \partial h_t \rVert$ followed back with the step functions. The
# vanilla RNN has spectral radius $\rho = 1$. Each gated cell is drawn with its gate
# bias at 0 (dashed) and at 3 (solid): the forget bias $b_f$ for the LSTM, the update
# bias $b_z$ for the GRU (put in the $z$ block of `bx`; only $\mathit{bx}^z +
# \mathit{bh}^z$ matters).

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
rng_gru = np.random.default_rng(3)
Wx_gru = rng_gru.standard_normal((D_big, 3 * H_big)) / np.sqrt(D_big)
Wh_gru = rng_gru.standard_normal((H_big, 3 * H_big)) / np.sqrt(H_big)


def rnn_grad_norms():
    """||dL/dh_t|| for distances k = 0..T from a loss that reads only the last state."""
    weights = (Wx_rnn, Wh_rnn, np.zeros(H_big))
    return gradcheck.gradient_norms_through_time("rnn", X_long, weights, dh_last)[0]


def lstm_grad_norms(b_f):
    """Same for the LSTM with forget bias b_f."""
    b_ = np.zeros(4 * H_big)
    b_[H_big:2 * H_big] = b_f
    return gradcheck.gradient_norms_through_time(
        "lstm", X_long, (Wx_lstm, Wh_lstm, b_), dh_last)[0]


def gru_grad_norms(b_z):
    """Same for the GRU with update bias b_z; also returns the mean update gate."""
    bx_, bh_ = np.zeros(3 * H_big), np.zeros(3 * H_big)
    bx_[H_big:2 * H_big] = b_z
    norms, caches = gradcheck.gradient_norms_through_time(
        "gru", X_long, (Wx_gru, Wh_gru, bx_, bh_), dh_last)
    return norms, np.mean([cache_.gates[:, H_big:2 * H_big] for cache_ in caches])


k = np.arange(T_long + 1)
fig, ax = plt.subplots(figsize=(7, 4.5))
ax.semilogy(k, rnn_grad_norms(), color="black", label="vanilla RNN, ρ = 1")
for bias, style in [(0, "--"), (3, "-")]:
    ax.semilogy(k, lstm_grad_norms(bias), color="tab:blue", ls=style, label=f"LSTM, $b_f$ = {bias}")
    norms, mean_z = gru_grad_norms(bias)
    ax.semilogy(k, norms, color="tab:orange", ls=style,
                label=f"GRU, $b_z$ = {bias} (mean z = {mean_z:.2f})")
ax.set_xlabel("distance from the loss, k = T − 1 − t (steps)")
ax.set_ylabel(r"$\Vert \partial L / \partial h_t \Vert$")
ax.set_title("Gradient norm vs distance: GRU, LSTM and vanilla RNN")
ax.legend()
plt.show()

# %% [markdown]
# - With the gate biases at 0 ($z \approx 0.5$, $f \approx 0.5$) both gated cells lose
#   their gradient quickly, faster than this RNN: every step back halves the gradient
#   on the gated path.
# - With $b_z = 3$ the GRU keeps about 95% of its state per step, and its gradient
#   loses only about 4% per step, close to the 5% that the skip path $dh \odot z$ lets
#   go. With $b_f = 3$ the LSTM's gradient does not decay at all (notebook 02 says why
#   it can even grow).
# - The coupled gate has a price: a GRU that keeps its state ($z \approx 1$) cannot
#   also write much of the candidate, while an LSTM can do both. In practice the two
#   cells reach similar quality on many tasks (Chung et al., 2014; Jozefowicz et al.,
#   2015), and the GRU does it with three quarters of the weights.
