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
# # 04 · A character-level LSTM on Shakespeare
#
# The earlier notebooks built the RNN, LSTM and GRU cells and checked every gradient.
# Here we put an LSTM to work as a **language model**. It reads Shakespeare one
# character at a time and, at every position, predicts the next character. Then we:
#
# 1. train it with `minirnn.training` and read the training curve;
# 2. sample text from it with different temperatures, top-k and top-p;
# 3. open it up: run it over a passage and colour each character by the activation of
#    one hidden unit, to find units that track something readable, such as the
#    position in a line (Karpathy, Johnson and Fei-Fei, *Visualizing and Understanding
#    Recurrent Networks*, 2015).
#
# **Two settings.** When the environment variable `MINIRNN_FAST=1` is set (the test
# suite sets it), the model is tiny (one layer of 128 units) and trains for 150 steps,
# a few seconds. That checks that every cell runs, but the samples are still mostly
# noise. Without it (the default when you open this notebook), a two-layer LSTM of 256
# units trains for 3 minutes of CPU time (about 750 to 1,700 steps, depending on the
# machine), long enough for samples with speakers, line breaks and mostly real words.
# Run outputs go to a temporary directory.

# %%
import html
import math
import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import HTML, display

from minirnn.data import load_corpus
from minirnn.generate import filter_logits, sample
from minirnn.training import TrainConfig, load_model, train
from minirnn.viz import read_metrics

FAST = os.environ.get("MINIRNN_FAST") == "1"
RUN_DIR = tempfile.mkdtemp(prefix="minirnn-04-")




print("fast setting" if FAST else "full setting", "| run directory:", RUN_DIR)

# %% [markdown]
# ## The corpus
#
# Tiny Shakespeare is 1.1 million characters of plays, 65 distinct characters. minirnn
# finds it through `$MINIRNN_DATA` (or downloads it once into `~/.cache/minirnn`). The
# first 90% is for training and the last 10% for validation.

# %%
corpus = load_corpus("tinyshakespeare")
vocab = corpus.vocab
print(f"{len(corpus.train_ids):,} training and {len(corpus.val_ids):,} validation "
      f"characters, vocabulary of {len(vocab)}")
print(repr("".join(vocab.symbols)))
print()
print(vocab.decode(corpus.train_ids[:250]))

# %% [markdown]
# ## Training
#
# `train` runs truncated backpropagation through time. The text is cut into
# `batch_size` parallel streams. Each step reads the next `seq_len` characters of every
# stream, starting from the hidden state the previous step ended in. It backpropagates
# through those `seq_len` steps only, clips the gradient norm to 5 and takes an Adam
# step. Every `eval_every` steps it prints the validation loss and a short sample.
#
# The loss is the mean cross-entropy in **nats per character**. A model that knows
# nothing spreads its bets evenly over the 65 characters and scores
# $\ln 65 \approx 4.17$. Bits per character are nats divided by $\ln 2$.

# %%
if FAST:
    cfg = TrainConfig(hidden_size=128, num_layers=1, embedding_dim=32, batch_size=32,
                      seq_len=64, steps=150, eval_every=50, eval_batches=5,
                      sample_length=100, out=RUN_DIR, progress=False)
else:
    cfg = TrainConfig(hidden_size=256, num_layers=2, embedding_dim=32, batch_size=32,
                      seq_len=64, time_budget=180, eval_every=250, sample_length=200,
                      out=RUN_DIR, progress=False)
result = train(cfg)
print(f"\n{result.step} steps; validation loss {result.val_loss:.3f} nats/char "
      f"= {result.val_loss / math.log(2):.3f} bits/char")

# %% [markdown]
# Everything needed to continue or to sample later is in the run directory:
# `checkpoint.npz`, `metrics.jsonl` (one JSON record per step and per evaluation) and
# `loss.png`. Here we read the metrics back and draw the curve ourselves.

# %%
records = read_metrics(RUN_DIR)
steps = np.array([r["step"] for r in records if "loss" in r])
loss = np.array([r["loss"] for r in records if "loss" in r])
w = max(1, len(loss) // 50)  # trailing mean over 2% of the run
smooth = np.convolve(loss, np.ones(w) / w, mode="valid")
val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]

fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(steps, loss, color="C0", alpha=0.25, lw=0.8, label="training loss (per step)")
ax.plot(steps[w - 1:], smooth, color="C0", label=f"training loss (mean of {w})")
ax.plot(*zip(*val), "o-", color="C1", label="validation loss")
ax.axhline(math.log(len(vocab)), color="gray", ls="--", lw=1, label="uniform guess, ln 65")
ax.set_xlabel("step")
ax.set_ylabel("nats per character")
ax.set_ylim(0, 4.5)
ax.grid(alpha=0.3)
ax.legend()
plt.show()

# %% [markdown]
# The first drop is the model learning character frequencies: spaces, `e`, `t`. After
# that it learns common words and the shape of a speech (a name in capitals, a colon, a
# line break). The validation loss sits on the training curve because three minutes are
# far from enough to memorise a million characters. Overfitting appears only after much
# longer runs with larger models.
#
# ## Sampling
#
# Generation feeds the model one character, turns its output logits $z$ into a
# probability distribution, draws the next character from it and feeds that back.
# Three knobs change the distribution before each draw (see `docs/sampling.md`):
#
# - **temperature** $T$: $p_i \propto \exp(z_i / T)$. $T < 1$ sharpens toward the
#   likeliest characters, $T > 1$ flattens toward uniform, and $T = 0$ is greedy
#   (always the argmax);
# - **top-k**: keep only the $k$ most probable characters, then renormalise;
# - **top-p** (nucleus): keep the most probable characters until their probability
#   reaches $p$, then renormalise. The cut adapts: a confident step keeps one or two
#   characters, an uncertain one keeps many.
#
# Here is what they do to one real distribution: the model's guess for the character
# after a prompt.

# %%
model, vocab, meta = load_model(os.path.join(RUN_DIR, "checkpoint.npz"))
model.eval()

prompt = "ROMEO:\nWhat say"
state = model.initial_state(1)
for i in vocab.encode(prompt):
    logits, state = model.step(np.array([i]), state)
logits = logits[0]  # (V,): the scores of the character after the prompt

settings = [("T = 0.5", dict(temperature=0.5)), ("T = 1", dict(temperature=1.0)),
            ("T = 1.5", dict(temperature=1.5)), ("T = 1, top-p 0.8", dict(top_p=0.8))]
top = np.argsort(-filter_logits(logits))[:12]  # the 12 likeliest at T = 1
labels = [{" ": "␣", "\n": "↵"}.get(vocab.symbols[i], vocab.symbols[i]) for i in top]
fig, axes = plt.subplots(1, len(settings), figsize=(13, 2.8), sharey=True)
for ax, (name, kw) in zip(axes, settings):
    p = filter_logits(logits, **kw)
    ax.bar(range(len(top)), p[top], color="C0")
    ax.set_xticks(range(len(top)), labels, fontsize=8)
    ax.set_title(f"{name}: {np.count_nonzero(p > 1e-3)} chars with p > 0.001", fontsize=9)
axes[0].set_ylabel(f"p(next | {prompt[-8:]!r})")
plt.show()

# %% [markdown]
# Now whole samples, all from the same prompt and the same seed, so the differences
# come from the settings alone.

# %%
length = 120 if FAST else 300
runs = [("greedy (T = 0)", dict(temperature=0)),
        ("T = 0.5", dict(temperature=0.5)),
        ("T = 0.8", dict(temperature=0.8)),
        ("T = 1.0", dict(temperature=1.0)),
        ("T = 1.5", dict(temperature=1.5)),
        ("top-k 5", dict(top_k=5)),
        ("top-p 0.9", dict(top_p=0.9)),
        ("top-p 0.5", dict(top_p=0.5))]
for name, kw in runs:
    text = sample(model, vocab, prompt="ROMEO:\n", length=length, seed=1, **kw)
    print(f"===== {name} =====\n{text}\n")

# %% [markdown]
# What to look for:
#
# - **Greedy** text is the same on every run and soon falls into a loop: the most
#   likely next character, over and over, gives the most likely phrase over and over.
# - **Low temperature** reads safely but repeats itself. **High temperature** invents
#   words and breaks the format.
# - **Top-k** and **top-p** at $T = 1$ cut the unlikely tail, where most of the
#   misspellings come from, and keep the variety. A small top-p comes close to greedy.
#
# ## Looking inside: one hidden unit over a passage
#
# An LSTM's cell state $c_t$ is its memory, and $\tanh(c_t) \in (-1, 1)$ is what the
# output gate reads from (the hidden state is $h_t = o_t \odot \tanh(c_t)$). Some units
# of $\tanh(c_t)$ track things a person can name. To find one, we run the model over
# 2,000 characters of validation text and record $\tanh(c_t)$ of every unit of every
# layer after each character. Then we correlate each unit with two features of the
# text:
#
# - **position in the line**: the number of characters since the last line break. The
#   model needs this to know when a verse line should end;
# - **speaker name**: 1 on the lines that name a speaker (`ROMEO:`), 0 elsewhere.
#
# `model.step` returns the state as `(h, c)`, each of shape `(layers, batch, units)`.

# %%
passage = vocab.decode(corpus.val_ids[:2000])
state = model.initial_state(1)
cells = []
for i in vocab.encode(passage):
    _, state = model.step(np.array([i]), state)
    cells.append(np.tanh(state[1][:, 0]).reshape(-1))  # (layers * units,)
cells = np.array(cells)  # (characters, layers * units)

line_pos, in_name, previous = [], [], ""
for line in passage.split("\n"):
    is_name = line.endswith(":") and previous == ""  # a speech opens after a blank line
    previous = line
    line_pos += list(range(len(line) + 1))  # the line's characters and its "\n"
    in_name += [float(is_name)] * (len(line) + 1)
features = {"position in the line": np.array(line_pos[:len(passage)], dtype=float),
            "speaker name": np.array(in_name[:len(passage)])}


def correlations(acts, feature):
    a = acts - acts.mean(axis=0)
    f = feature - feature.mean()
    return (a * f[:, None]).sum(axis=0) / (np.linalg.norm(a, axis=0) * np.linalg.norm(f) + 1e-12)


H = model.config["hidden_size"]
best = {}
for name, feature in features.items():
    r = correlations(cells, feature)
    unit = int(np.argmax(np.abs(r)))
    best[name] = unit
    print(f"{name:>22}: layer {unit // H}, unit {unit % H}, correlation {r[unit]:+.2f}")

# %% [markdown]
# Below, each character's background is that unit's $\tanh(c_t)$ right after the model
# read the character: red for positive, blue for negative, white near 0. A `↵` marks a
# line break.

# %%
def coloured_text(text, values, cmap=plt.get_cmap("coolwarm")):
    """HTML: ``text`` with each character's background coloured by ``values`` in [-1, 1]."""
    spans = []
    for ch, v in zip(text, values):
        r, g, b, _ = cmap((v + 1) / 2)
        shown = "↵" if ch == "\n" else html.escape(ch)
        spans.append(f'<span style="background-color: rgb({r * 255:.0f}, {g * 255:.0f}, '
                     f'{b * 255:.0f})">{shown}</span>' + ("\n" if ch == "\n" else ""))
    return ('<pre style="font-size: 13px; line-height: 1.35; color: black">'
            + "".join(spans) + "</pre>")


shown = slice(0, 700)
for name, unit in best.items():
    display(HTML(f"<b>{name}</b>: layer {unit // H}, unit {unit % H}"))
    display(HTML(coloured_text(passage[shown], cells[shown, unit])))

# %% [markdown]
# The same two units as curves, next to the feature each was picked for (scaled to the
# range $[-1, 1]$), over the first 300 characters:

# %%
fig, axes = plt.subplots(2, 1, figsize=(12, 4.5), sharex=True)
for ax, (name, unit) in zip(axes, best.items()):
    f = features[name][:300]
    ax.plot(2 * (f - f.min()) / (np.ptp(f) + 1e-12) - 1, color="gray", lw=1, label=name)
    ax.plot(cells[:300, unit], color="C3", lw=1.2, label=f"tanh(c), unit {unit % H}")
    ax.set_ylim(-1.1, 1.1)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
axes[-1].set_xlabel("character of the passage")
plt.show()

# %% [markdown]
# After the full three-minute run, both correlations are typically around 0.9 (the
# sign of a unit is arbitrary). The position-in-line unit starts each line at one end
# of its range, drifts to the other as the line goes on and resets at the line break.
# The speaker-name unit holds one value through a name and the opposite through the
# speech. Nobody told the model about lines or speakers: it found that tracking them
# helps predict the next character, such as `\n` near the end of a verse line, or `:`
# after a name. With the fast setting the model is barely trained and the
# position-in-line picture is mostly noise. Most units, in any model, are not this
# readable: they share many jobs between them.
#
# ## Where to go next
#
# - Train longer from the command line. Ten minutes of a 2 × 512 LSTM reach about 1.48
#   nats/char (see the README):
#
#   ```bash
#   minirnn train --data tinyshakespeare --hidden-size 512 --num-layers 2 \
#       --embedding-dim 64 --time-budget 600 --out runs/shakespeare
#   ```
#
# - Swap `cell="gru"` or `cell="rnn"` in the config above and compare the curves for
#   the same time budget.
# - Search the other units: sort them by variance, or correlate them with other
#   features, such as "inside a word" or "after a comma".
