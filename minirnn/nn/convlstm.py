"""Stacked Conv-LSTM layers and a next-frame model built on them.

``ConvLSTM.forward(x, state=None) -> (hs, state)`` with ``x (N, T, C, H, W)`` and
``hs (N, T, F, H, W)`` (the top layer's hidden states); ``state`` is ``(h, c)``, each
``(L, N, F, H, W)``. ``backward(dhs) -> dx`` adds the weight gradients into ``grads``.
Parameters of layer ``l`` are ``"l.Wx" (4F, C, k, k)``, ``"l.Wh" (4F, F, k, k)`` and
``"l.b" (4F,)``, initialised like PyTorch's convolutions: uniform in
``[-1/sqrt(F*k*k), 1/sqrt(F*k*k)]``. The math is ``minirnn.functional.convlstm_*``.

``NextFrameModel`` reads 10 frames and predicts the next 5 (docs/convlstm.md):

    x  = [inputs_1 .. inputs_10, 0, 0, 0, 0, 0]     (N, 15, 1, H, W): zeros after the inputs
    hs = ConvLSTM(x)                                (N, 15, F, H, W)
    logits_j = conv1x1(hs_{10+j}) + b               (N, 5, 1, H, W), j = 1..5

The five extra steps see no input: the state alone has to carry the squares forward,
so the whole model is one ``convlstm_forward`` and one ``convlstm_backward`` per layer,
with no sampling or feedback loop to differentiate through.
"""

from __future__ import annotations

import numpy as np

from .. import backend
from .. import functional as F
from .module import Module


def _positive_int(where, name, v):
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{where}: {name} must be a positive int, got {v!r}")
    return int(v)


class ConvLSTM(Module):
    """``num_layers`` stacked Conv-LSTM layers with ``hidden_channels`` channels each."""

    def __init__(self, in_channels, hidden_channels, kernel_size=3, num_layers=1, seed=0):
        super().__init__()
        name = type(self).__name__
        C = _positive_int(name, "in_channels", in_channels)
        Fh = _positive_int(name, "hidden_channels", hidden_channels)
        k = _positive_int(name, "kernel_size", kernel_size)
        L = _positive_int(name, "num_layers", num_layers)
        if k % 2 == 0:
            raise ValueError(f"{name}: kernel_size must be odd (same padding needs "
                             f"k = 2p + 1), got {k}")
        self.in_channels, self.hidden_channels, self.kernel_size, self.num_layers = C, Fh, k, L
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(Fh * k * k)
        for layer in range(L):
            Cl = C if layer == 0 else Fh
            self.register(f"{layer}.Wx", rng.uniform(-bound, bound, (4 * Fh, Cl, k, k)))
            self.register(f"{layer}.Wh", rng.uniform(-bound, bound, (4 * Fh, Fh, k, k)))
            self.register(f"{layer}.b", rng.uniform(-bound, bound, 4 * Fh))
        self._caches = []

    def initial_state(self, N, H, W, xp=None):
        """Zeros h and c of shape (L, N, F, H, W), on the weights' array module and in
        their dtype."""
        w = next(iter(self.params.values()))
        xp = backend.get_array_module(w) if xp is None else xp
        shape = (self.num_layers, N, self.hidden_channels, H, W)
        return tuple(xp.zeros(shape, dtype=w.dtype) for _ in range(2))

    def forward(self, x, state=None):
        """x: (N, T, C, H, W) -> hs (N, T, F, H, W) of the top layer, and (h, c) at the end."""
        name = type(self).__name__
        if getattr(x, "ndim", None) != 5 or x.shape[2] != self.in_channels:
            raise ValueError(f"{name}.forward: x must have shape (N, T, C, H, W) with "
                             f"C = {self.in_channels}, got {tuple(getattr(x, 'shape', ()))}")
        N, _, _, H, W = x.shape
        xp = backend.get_array_module(x)
        if state is None:
            state = self.initial_state(N, H, W, xp)
        want = (self.num_layers, N, self.hidden_channels, H, W)
        if not isinstance(state, tuple) or len(state) != 2 or \
                any(tuple(s.shape) != want for s in state):
            raise ValueError(f"{name}.forward: state must be a tuple (h, c) of arrays of "
                             f"shape (L, N, F, H, W) = {want}")
        self._caches = []
        hs, h_last, c_last = x, [], []
        for layer in range(self.num_layers):
            p = self.params
            hs, c, cache = F.convlstm_forward(hs, state[0][layer], state[1][layer],
                                              p[f"{layer}.Wx"], p[f"{layer}.Wh"], p[f"{layer}.b"])
            self._caches.append(cache)
            h_last.append(hs[:, -1])
            c_last.append(c)
        return hs, (xp.stack(h_last), xp.stack(c_last))

    def backward(self, dhs):
        """dhs: (N, T, F, H, W) -> dx (N, T, C, H, W); weight gradients are added to grads."""
        if not self._caches:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        for layer in range(self.num_layers - 1, -1, -1):
            dhs, _, _, dWx, dWh, db = F.convlstm_backward(dhs, self._caches[layer])
            self.grads[f"{layer}.Wx"] += dWx
            self.grads[f"{layer}.Wh"] += dWh
            self.grads[f"{layer}.b"] += db
        return dhs


class NextFrameModel(Module):
    """ConvLSTM over the input frames, ``n_out`` more steps on zeros, a 1x1 conv to logits.

    ``forward(inputs (N, T_in, 1, H, W)) -> logits (N, n_out, 1, H, W)``;
    ``loss(batch) -> (loss, dlogits)`` with ``batch = {"inputs": ..., "targets": (N, n_out,
    1, H, W)}``; ``backward(dlogits)``; ``predict(inputs) -> probabilities``.
    """

    def __init__(self, hidden_channels=16, kernel_size=3, num_layers=1, seed=0, n_out=5):
        super().__init__()
        self.n_out = _positive_int(type(self).__name__, "n_out", n_out)
        self.convlstm = self.add("convlstm", ConvLSTM(1, hidden_channels, kernel_size,
                                                      num_layers, seed))
        Fh = self.convlstm.hidden_channels
        rng = np.random.default_rng(seed + 1)
        bound = 1.0 / np.sqrt(Fh)
        self.register("head.W", rng.uniform(-bound, bound, (1, Fh, 1, 1)))
        self.register("head.b", np.zeros(1))
        self.config = {"hidden_channels": Fh, "kernel_size": self.convlstm.kernel_size,
                       "num_layers": self.convlstm.num_layers, "seed": int(seed),
                       "n_out": self.n_out}
        self._cache = None

    def forward(self, inputs):
        """inputs: (N, T_in, 1, H, W) frames -> logits (N, n_out, 1, H, W)."""
        xp = backend.get_array_module(inputs)
        N, T_in, C, H, W = inputs.shape
        x = xp.concatenate([inputs, xp.zeros((N, self.n_out, C, H, W), dtype=inputs.dtype)],
                           axis=1)                                # (N, T_in + n_out, 1, H, W)
        hs, _ = self.convlstm.forward(x)
        Fh = hs.shape[2]
        h_out = hs[:, T_in:].reshape(N * self.n_out, Fh, H, W)   # the n_out predicting steps
        out, conv_cache = F.conv2d_same_forward(h_out, self.params["head.W"])
        self._cache = (conv_cache, hs.shape, T_in)
        return out.reshape(N, self.n_out, 1, H, W) + self.params["head.b"][0]

    def backward(self, dlogits):
        if self._cache is None:
            raise RuntimeError("NextFrameModel.backward called before forward")
        conv_cache, hs_shape, T_in = self._cache
        N, T, Fh, H, W = hs_shape
        xp = backend.get_array_module(dlogits)
        self.grads["head.b"] += dlogits.sum()
        dh_out, dW = F.conv2d_same_backward(dlogits.reshape(N * self.n_out, 1, H, W), conv_cache)
        self.grads["head.W"] += dW
        dhs = xp.zeros(hs_shape, dtype=dlogits.dtype)
        dhs[:, T_in:] = dh_out.reshape(N, self.n_out, Fh, H, W)  # the input steps get no loss
        self.convlstm.backward(dhs)
        self._cache = None

    def loss(self, batch):
        """Mean per-pixel BCE of the predicted frames -> (loss, dlogits)."""
        return F.sigmoid_binary_cross_entropy(self.forward(batch["inputs"]), batch["targets"])

    def predict(self, inputs):
        """Probabilities (N, n_out, 1, H, W) that each future pixel is on."""
        logits = self.forward(inputs)
        self._cache = None
        return F.sigmoid(logits)
