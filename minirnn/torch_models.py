"""The PyTorch twins of minirnn's models, for ``minirnn.interop`` (which imports this
module only when PyTorch is asked for: it needs ``torch``).

Each twin is the plain ``torch.nn`` model a PyTorch user would write, with the same
parameter names as ``interop.LAYOUTS`` gives them, so that weights move by name.
"""

from __future__ import annotations

import torch
from torch import nn


def _rnn(cell, input_size, hidden_size, num_layers, dropout):
    """torch.nn.RNN / LSTM / GRU, batch first; dropout only where PyTorch applies it
    (between layers), so a 1-layer model does not warn."""
    return getattr(nn, cell.upper())(input_size, hidden_size, num_layers, batch_first=True,
                                     dropout=dropout if num_layers > 1 else 0.0)


class CharRNN(nn.Module):
    """Embedding (or one-hot), torch.nn.RNN/LSTM/GRU, dropout, Linear: ids (N, T) ->
    logits (N, T, V) and the final state in the torch layer's form (h, or (h, c))."""
    kind = "charrnn"

    def __init__(self, config):
        super().__init__()
        c = self.config = dict(config)
        V, H, E = c["vocab_size"], c["hidden_size"], c["embedding_dim"]
        self.embed = None if E is None else nn.Embedding(V, E)
        self.rnn = _rnn(c["cell"], E or V, H, c["num_layers"], c["dropout"])
        self.drop = nn.Dropout(c["dropout"])
        self.head = nn.Linear(H, V)

    def forward(self, ids, state=None):
        x = (nn.functional.one_hot(ids, self.config["vocab_size"]).to(self.head.weight.dtype)
             if self.embed is None else self.embed(ids))               # (N, T, E)
        hs, state = self.rnn(x, state)                                 # (N, T, H)
        return self.head(self.drop(hs)), state

class Attention(nn.Module):
    """e_j = v . tanh(q Wq + k_j Wk), softmax over unmasked j, context = sum w_j k_j."""

    def __init__(self, query_size, key_size, attention_size):
        super().__init__()
        self.query = nn.Linear(query_size, attention_size, bias=False)
        self.key = nn.Linear(key_size, attention_size, bias=False)
        self.v = nn.Parameter(torch.zeros(attention_size))

    def forward(self, q, keys, mask):
        e = torch.tanh(self.query(q)[:, None] + self.key(keys)) @ self.v   # (N, S)
        w = torch.softmax(e.masked_fill(~mask, float("-inf")), dim=1)
        return (w[:, :, None] * keys).sum(1), w                            # (N, Hk)

class Seq2Seq(nn.Module):
    """minirnn's Seq2Seq: forward(src, src_mask, tgt_in) -> logits (N, T, V) with
    teacher forcing; the backward encoder reads each source's real positions reversed."""
    kind = "seq2seq"

    def __init__(self, config):
        super().__init__()
        c = self.config = dict(config)
        V, E, H, cell = c["vocab_size"], c["embedding_dim"], c["hidden_size"], c["cell"]
        Hk = 2 * H if c["bidirectional"] else H
        self.embed = nn.Embedding(V, E)
        self.enc = _rnn(cell, E, H, 1, 0.0)
        self.enc_back = _rnn(cell, E, H, 1, 0.0) if c["bidirectional"] else None
        self.dec = getattr(nn, cell.upper() + "Cell")(E + Hk, H)
        self.attn = Attention(H, Hk, c["attention_size"])
        self.head = nn.Linear(H + Hk, V)

    def encode(self, src, src_mask):
        x = self.embed(src)                                            # (N, S, E)
        keys, _ = self.enc(x)
        if self.enc_back is None:
            return keys
        lengths, s = src_mask.sum(1, keepdim=True), torch.arange(src.shape[1])[None]
        rev = torch.where(s < lengths, lengths - 1 - s, s)             # (N, S)
        back, _ = self.enc_back(x.gather(1, rev[..., None].expand_as(x)))
        back = back.gather(1, rev[..., None].expand_as(back))
        return torch.cat([keys, back], dim=2)                          # (N, S, 2H)

    def forward(self, src, src_mask, tgt_in):
        keys = self.encode(src, src_mask)
        context = keys.new_zeros(keys.shape[0], keys.shape[2])
        state, logits = None, []
        for t in range(tgt_in.shape[1]):
            inp = torch.cat([self.embed(tgt_in[:, t]), context], dim=1)
            state = self.dec(inp, state)
            h = state[0] if isinstance(state, tuple) else state
            context, _ = self.attn(h, keys, src_mask)
            logits.append(self.head(torch.cat([h, context], dim=1)))
        return torch.stack(logits, dim=1)                              # (N, T, V)

class ConvLSTMCell(nn.Module):
    def __init__(self, in_channels, hidden_channels, k):
        super().__init__()
        self.input = nn.Conv2d(in_channels, 4 * hidden_channels, k, padding=k // 2)
        self.hidden = nn.Conv2d(hidden_channels, 4 * hidden_channels, k, padding=k // 2,
                                bias=False)

    def forward(self, x, h, c):
        i, f, g, o = (self.input(x) + self.hidden(h)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

class NextFrameModel(nn.Module):
    """inputs (N, T_in, 1, H, W) -> logits (N, n_out, 1, H, W), as minirnn's model."""
    kind = "convlstm"

    def __init__(self, config):
        super().__init__()
        c = self.config = dict(config)
        Fh, k = c["hidden_channels"], c["kernel_size"]
        self.convlstm = nn.ModuleList(ConvLSTMCell(1 if layer == 0 else Fh, Fh, k)
                                      for layer in range(c["num_layers"]))
        self.head = nn.Conv2d(Fh, 1, 1)

    def forward(self, inputs):
        N, T_in, _, H, W = inputs.shape
        n_out, Fh = self.config["n_out"], self.config["hidden_channels"]
        x = torch.cat([inputs, inputs.new_zeros(N, n_out, 1, H, W)], dim=1)
        for cell in self.convlstm:
            h = c = x.new_zeros(N, Fh, H, W)
            hs = []
            for t in range(x.shape[1]):
                h, c = cell(x[:, t], h, c)
                hs.append(h)
            x = torch.stack(hs, dim=1)                                 # (N, T, F, H, W)
        out = self.head(x[:, T_in:].reshape(N * n_out, Fh, H, W))
        return out.reshape(N, n_out, 1, H, W)

class SelfAttention(nn.Module):
    """Causal multi-head self-attention: one nn.Linear for q, k and v, PyTorch's
    scaled_dot_product_attention with is_causal=True, an output nn.Linear."""

    def __init__(self, dim, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        N, T, E = x.shape
        q, k, v = (a.view(N, T, self.n_heads, E // self.n_heads).transpose(1, 2)
                   for a in self.qkv(x).split(E, dim=2))            # (N, heads, T, hs)
        heads = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(heads.transpose(1, 2).reshape(N, T, E))


class Block(nn.Module):
    """Pre-LayerNorm: x + dropout(attention(ln1(x))), then x + dropout(MLP(ln2(x)))."""

    def __init__(self, dim, n_heads, dropout):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, n_heads)
        self.fc, self.proj = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.gelu = nn.GELU(approximate="tanh")
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x):
        x = x + self.drop1(self.attn(self.ln1(x)))
        return x + self.drop2(self.proj(self.gelu(self.fc(self.ln2(x)))))


class GPT(nn.Module):
    """minirnn's GPT: ids (N, T) -> logits (N, T, V)."""
    kind = "gpt"

    def __init__(self, config):
        super().__init__()
        c = self.config = dict(config)
        V, E = c["vocab_size"], c["embedding_dim"]
        self.embed, self.pos = nn.Embedding(V, E), nn.Embedding(c["block_size"], E)
        self.drop = nn.Dropout(c["dropout"])
        self.blocks = nn.ModuleList(Block(E, c["num_heads"], c["dropout"])
                                    for _ in range(c["num_layers"]))
        self.ln_f, self.head = nn.LayerNorm(E), nn.Linear(E, V)

    def forward(self, ids):
        x = self.drop(self.embed(ids) + self.pos.weight[:ids.shape[1]])  # (N, T, E)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))                                 # (N, T, V)


def recurrent(c):
    """A stack of cells: torch.nn.RNN / LSTM / GRU, batch first."""
    return _rnn(c["cell"], c["input_size"], c["hidden_size"], c["num_layers"], c["dropout"])


MODELS = {"charrnn": CharRNN, "seq2seq": Seq2Seq, "convlstm": NextFrameModel, "gpt": GPT,
          "recurrent": recurrent}
