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
# # 06 · Conv-LSTM: predicting the next frames of a video
#
# An LSTM's state is a vector. For video we want a state that is an *image*, so that
# what happens at a pixel is remembered at that pixel. The **Conv-LSTM** (Shi et al.,
# 2015) keeps the LSTM's equations and replaces its two matrix products by same-padding
# convolutions:
#
# $$a_t = \mathrm{conv}(x_t, W_x) + \mathrm{conv}(h_{t-1}, W_h) + b, \qquad
# [i, f, g, o] = [\sigma, \sigma, \tanh, \sigma](a_t),$$
#
# $$c_t = f \odot c_{t-1} + i \odot g, \qquad h_t = o \odot \tanh(c_t).$$
#
# Here $x_t$ is a frame $(N, C, H, W)$, while $h_t$ and $c_t$ are $F$-channel images
# $(N, F, H, W)$. The gates are computed per pixel from a $k \times k$ neighbourhood.
# A $3 \times 3$ kernel lets information move one pixel per step. minirnn computes each
# convolution as im2col plus one matrix product, and `convlstm_backward` runs backward
# through time exactly as the LSTM does (`docs/derivations/convlstm.md`).
#
# The task: white squares bounce around a 16×16 black frame. The model sees 10 frames
# and predicts the next 5.
#
# **Two settings.** When the environment variable `MINIRNN_FAST=1` is set (the test
# suite sets it), a Conv-LSTM with 8 channels trains for 150 steps and is scored on 200
# held-out sequences, about 15 seconds. It learns that the frames are mostly dark,
# which beats copying the last frame, but not yet the motion. Without it (the default
# when you open this notebook), 16 channels train for 3 minutes of CPU time and are
# scored on all 1,000 held-out sequences, long enough for the predicted squares to
# move. Run outputs go to a temporary directory.

# %%
import os

# The per-step products are small (about 4096 x 144 times 144 x 64): a second BLAS thread
# costs more in synchronisation than it saves (docs/convlstm.md measured about 4x).
# This must be set before NumPy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import tempfile

import matplotlib.pyplot as plt
import numpy as np

from minirnn import backend, gradcheck
from minirnn.training import ConvLSTMConfig, predict_probs, train
from minirnn.data import clipped_bce, copy_last_frame_bce, held_out_set, moving_squares
from minirnn.nn import NextFrameModel
from minirnn.viz import read_metrics

FAST = os.environ.get("MINIRNN_FAST") == "1"
RUN_DIR = tempfile.mkdtemp(prefix="minirnn-06-")




print("fast setting" if FAST else "full setting", "| run directory:", RUN_DIR)

# %% [markdown]
# ## Moving squares
#
# `moving_squares(n, seed)` draws `n` sequences of one or two squares (side 3 or 4).
# Each square moves with its own velocity $(v_y, v_x) \in \{-1, 0, 1\}^2$, not both 0,
# and bounces off the walls. Frames 1-10 are the input and frames 11-15 the target,
# float32 arrays of 0s and 1s.

# %%
inputs, targets = moving_squares(3, seed=0)
print("inputs", inputs.shape, "targets", targets.shape)

frames = np.concatenate([inputs, targets], axis=1)[:, :, 0]  # (3, 15, 16, 16)
fig, axes = plt.subplots(3, 15, figsize=(15, 3.3))
for n in range(3):
    for t in range(15):
        ax = axes[n, t]
        ax.imshow(frames[n, t], cmap="gray" if t < 10 else "magma", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        if n == 0:
            ax.set_title(f"t={t + 1}", fontsize=8)
fig.suptitle("three sequences: 10 input frames (grey), then the 5 frames to predict", fontsize=10)
plt.show()

# %% [markdown]
# ## How good is good? Two baselines
#
# A prediction is a probability for every future pixel. We score it by the mean
# per-pixel binary cross-entropy (BCE) on a fixed held-out set of 1,000 sequences.
# Before scoring, the probabilities are clipped to $[0.01, 0.99]$ (`clipped_bce`), for
# the model and the baselines alike.
#
# - **Copy the last frame**: predict that nothing moves. Its probabilities are exactly
#   0 or 1. Without the clip, every pixel it got wrong would cost $-\ln 0 = \infty$;
#   with it, each costs $-\ln 0.01 \approx 4.6$.
# - **A constant**: predict the same probability $\bar p$ for every pixel, the fraction
#   of pixels that are on. It knows nothing about where the squares are. It scores
#   about the entropy of a coin with bias $\bar p$.

# %%
n_test = 200 if FAST else 1000
test_in, test_out = held_out_set(n_test)
p_bar = float(moving_squares(1000, seed=1)[1].mean())  # on-pixel fraction, training-style data
copy_bce = copy_last_frame_bce(test_in, test_out)
const_bce = clipped_bce(np.full(test_out.shape, p_bar), test_out)
print(f"copy the last frame:           BCE {copy_bce:.4f}")
print(f"constant p = {p_bar:.3f} everywhere: BCE {const_bce:.4f}")

# %% [markdown]
# The constant beats copying the last frame, because every square that moves leaves
# two bands of confidently wrong pixels. To show it has learned motion, the model has
# to beat **both**. Beating the copy baseline alone only takes learning that the
# background is dark.
#
# ## The model
#
# `NextFrameModel` runs a Conv-LSTM over the 10 input frames and then 5 more steps on
# *zero* input. The motion has to be carried forward in the state. A 1×1 convolution
# reads each of those 5 states out as a map of logits, one per pixel:
#
# ```
# x      = [frame_1 .. frame_10, 0, 0, 0, 0, 0]     (N, 15, 1, 16, 16)
# hs     = ConvLSTM(x)                              (N, 15, F, 16, 16)
# logits = conv1x1(hs[:, 10:]) + b                  (N, 5, 1, 16, 16)
# loss   = mean BCE(sigmoid(logits), frames 11..15)
# ```
#
# Before training, one check that the whole model's gradient is right: a tiny model
# (2 channels, 6×6 frames) in float64 against centred differences, every parameter.

# %%
def tiny_loss(backward):
    value, dlogits = tiny.loss({"inputs": x_small, "targets": y_small})
    if backward:
        tiny.backward(dlogits)
    return value


backend.set_default_dtype("float64")  # the model is built with float64 parameters
try:
    tiny = NextFrameModel(hidden_channels=2, kernel_size=3, seed=0, n_out=2)
    x_small, y_small = (a.astype(np.float64)
                        for a in moving_squares(2, seed=0, size=6, n_in=3, n_out=2))
    print(gradcheck.check_params(tiny.params, tiny.grads, tiny_loss, op="NextFrameModel"))
finally:
    backend.set_default_dtype("float32")

# %% [markdown]
# ## Training
#
# `train_convlstm` draws a fresh batch of 16 sequences at every step (seeded by the
# step number), so the model practically never sees a sequence twice and cannot
# overfit. It minimises the BCE with
# Adam (learning rate 0.01, gradient norm clipped at 5). Every `eval_every` steps it
# prints the held-out BCE next to the copy-last-frame baseline's.

# %%
if FAST:
    cfg = ConvLSTMConfig(hidden_channels=8, steps=150, eval_every=50, n_test=n_test,
                         out=RUN_DIR, progress=False)
else:
    cfg = ConvLSTMConfig(hidden_channels=16, time_budget=180, eval_every=250, n_test=n_test,
                         out=RUN_DIR, progress=False)
model = train(cfg).model

# %%
records = read_metrics(RUN_DIR)
train_steps = [r["step"] for r in records if "loss" in r]
train_loss = [r["loss"] for r in records if "loss" in r]
evals = [(r["step"], r["val_bce"]) for r in records if "val_bce" in r]

fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(train_steps, train_loss, color="C0", alpha=0.4, lw=0.8, label="training loss (one batch)")
ax.plot(*zip(*evals), "o-", color="C1", label="held-out BCE")
ax.axhline(copy_bce, color="C3", ls="--", lw=1, label="copy the last frame")
ax.axhline(const_bce, color="gray", ls=":", lw=1.2, label="constant probability")
ax.set_xlabel("step")
ax.set_ylabel("BCE per pixel")
ax.set_ylim(0, max(copy_bce, max(train_loss[:5])) * 1.05)
ax.grid(alpha=0.3)
ax.legend()
plt.show()

# %% [markdown]
# The training loss is unclipped and measured on a fresh batch each step, while the
# held-out BCE is clipped. The two are close, but not the same number. Within a few
# dozen steps the model learns to say "dark" everywhere and lands on the constant's
# line. It sits on that plateau for a couple of hundred steps, then falls below it as
# it learns to carry the squares forward. The fast setting stops on the plateau.
#
# ## Predictions
#
# For a few held-out sequences: the last 5 input frames, the 5 true future frames and
# the model's predicted probabilities, where brighter means more likely on.

# %%
show_idx = [0, 1, 2]
probs = predict_probs(model, test_in[show_idx])  # (3, 5, 1, 16, 16)
fig, axes = plt.subplots(3 * len(show_idx), 5, figsize=(6.5, 4.1 * len(show_idx)))
for k, n in enumerate(show_idx):
    rows = [("input", test_in[n, -5:, 0], 6), ("true", test_out[n, :, 0], 11),
            ("predicted", probs[k, :, 0], 11)]
    for r, (label, frames, first) in enumerate(rows):
        for t in range(5):
            ax = axes[3 * k + r, t]
            ax.imshow(frames[t], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"t={first + t}", fontsize=7)
        axes[3 * k + r, 0].set_ylabel(f"#{n} {label}", fontsize=8)
plt.show()

# %% [markdown]
# ## The score, frame by frame
#
# The further ahead, the harder the prediction: a square's position is only as certain
# as its velocity estimate, and a bounce has to be foreseen. The model hedges by
# blurring the squares over the places they might be. Under BCE that is the right
# thing to do when unsure. Copying the last frame does about as well as the constant
# one frame ahead, and far worse after that.

# %%
all_probs = predict_probs(model, test_in)  # (n_test, 5, 1, 16, 16)
model_bce = clipped_bce(all_probs, test_out)
last = np.broadcast_to(test_in[:, -1:], test_out.shape)
print(f"{'':>22}" + "".join(f"   t={11 + j}" for j in range(5)) + "    all")
for name, p in [("Conv-LSTM", all_probs), ("copy the last frame", last),
                ("constant probability", np.full(test_out.shape, p_bar))]:
    per_frame = [clipped_bce(p[:, j], test_out[:, j]) for j in range(5)]
    print(f"{name:>22}" + "".join(f"  {b:.3f}" for b in per_frame)
          + f"  {clipped_bce(p, test_out):.3f}")
print(f"\nConv-LSTM: BCE {model_bce:.4f}, {model_bce / copy_bce:.0%} of the copy baseline's "
      f"and {model_bce / const_bce:.0%} of the constant's")

# %% [markdown]
# `docs/convlstm.md` reports 0.092 after 10 minutes of training (80% below copying the
# last frame). After the full setting's 3 minutes expect about 0.12 to 0.15, depending
# on how many steps the machine fits in. The first frames are predicted sharply and
# the last ones blur.
#
# ## Exercises
#
# - Train with `kernel_size=5`. A 5×5 kernel can move information two pixels per
#   step. Does it learn faster, and is it worth the extra cost per step?
# - Stack two layers (`num_layers=2`), or use more channels, for the same time budget.
# - The model predicts all 5 frames from zero inputs. A common variant feeds each
#   predicted frame back in as the next input. What would the backward pass have to
#   differentiate through then?
