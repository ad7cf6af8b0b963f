"""The Module base and the simple layers: Embedding, Linear, Dropout.

A Module owns two dicts with the same keys: ``params`` (name -> array) and ``grads``
(name -> array of the same shape). Arrays are allocated once and only ever changed in
place, so an optimizer built on ``model.params`` / ``model.grads`` keeps pointing at the
live arrays. ``backward`` *adds* into ``grads`` (call ``zero_grad()`` first), like PyTorch.

A parent registers children with ``self.add(name, child)``; their entries appear in the
parent's dicts under ``"name.key"``. Every layer calls ``minirnn.functional`` for its math.

``model.flatten()`` moves every parameter into one contiguous 1-D buffer,
``model.flat.params``, and every gradient into another, ``model.flat.grads``; the
arrays in the dicts become views of them, in the order of ``params``. Zeroing the
gradients, clipping their norm and an optimizer's update are then a handful of
whole-array operations instead of a loop over dozens of arrays.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import backend
from .. import functional as F


class Flat(NamedTuple):
    """The flat buffers behind a flattened model's parameters and gradients."""
    params: object  # (P,) every parameter, in the order of Module.params
    grads: object   # (P,) every gradient, in the same order


class Module:
    """Base class: parameters, gradients, train/eval mode and state dicts."""

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.training = True
        self.flat = None
        self._children = {}

    # -- building ----------------------------------------------------------------------
    def register(self, name, value):
        """Make the host array ``value`` a parameter (moved to the backend) with a zero grad."""
        if self.flat is not None:
            raise RuntimeError(f"{type(self).__name__}.register: the model is flattened; "
                               "register every parameter before flatten()")
        p = backend.asarray(value, dtype=backend.default_dtype())
        self.params[name] = p
        self.grads[name] = backend.xp.zeros_like(p)
        return p

    def add(self, name, module):
        """Register a child module; its parameters join ours as ``"name.key"``."""
        self._children[name] = module
        for k in module.params:
            self.params[f"{name}.{k}"] = module.params[k]
            self.grads[f"{name}.{k}"] = module.grads[k]
        return module

    # -- using -------------------------------------------------------------------------
    def modules(self):
        """This module and every module below it, parents first, in a fixed order."""
        found = [self]
        for child in self._children.values():
            found += child.modules()
        return found

    def parameters(self):
        """The parameter arrays, in a fixed order."""
        return list(self.params.values())

    def zero_grad(self):
        if self.flat is not None:
            self.flat.grads[...] = 0
            return
        for g in self.grads.values():
            g[...] = 0

    def flatten(self):
        """Put every parameter and gradient into one flat buffer each (``self.flat``);
        the arrays of ``params`` and ``grads``, here and in every child, become views of
        them with their values kept. Returns self."""
        if self.flat is not None:
            return self
        first = next(iter(self.params.values()))
        xp, size = backend.get_array_module(first), sum(int(p.size) for p in self.params.values())
        flat = Flat(xp.empty(size, dtype=first.dtype), xp.zeros(size, dtype=first.dtype))
        views, start = {}, 0  # id(old array) -> its view in the flat buffer
        for k, p in self.params.items():
            stop = start + int(p.size)
            flat.params[start:stop] = p.reshape(-1)
            flat.grads[start:stop] = self.grads[k].reshape(-1)
            views[id(p)] = flat.params[start:stop].reshape(p.shape)
            views[id(self.grads[k])] = flat.grads[start:stop].reshape(p.shape)
            start = stop
        for m in self.modules():
            for d in (m.params, m.grads):
                for k in d:
                    d[k] = views[id(d[k])]
        self.flat = flat
        return self

    def gradient_arrays(self):
        """The gradients as the fewest arrays: ``[flat.grads]`` once flattened."""
        return [self.flat.grads] if self.flat is not None else list(self.grads.values())

    def train(self, mode=True):
        self.training = bool(mode)
        for child in self._children.values():
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def num_parameters(self):
        return sum(int(p.size) for p in self.params.values())

    def state_dict(self):
        """Host NumPy copies of every parameter (so a GPU model saves like a CPU one)."""
        return {k: backend.to_numpy(v).copy() for k, v in self.params.items()}

    def load_state_dict(self, state):
        """Copy ``state`` (name -> array) into the parameters, in place, after checking it."""
        if not isinstance(state, dict):
            raise TypeError(f"load_state_dict: state must be a dict of arrays, "
                            f"got {type(state).__name__}")
        missing = sorted(set(self.params) - set(state))
        extra = sorted(set(state) - set(self.params))
        if missing or extra:
            raise ValueError(f"load_state_dict: keys do not match this model; missing "
                             f"{missing or 'none'}, unexpected {extra or 'none'}")
        for k, p in self.params.items():
            v = state[k]
            if tuple(v.shape) != tuple(p.shape):
                raise ValueError(f"load_state_dict: {k} must have shape {tuple(p.shape)}, "
                                 f"got {tuple(v.shape)}")
        for k, p in self.params.items():
            p[...] = backend.get_array_module(p).asarray(backend.to_numpy(state[k]), dtype=p.dtype)


def _uniform(rng, shape, bound):
    return rng.uniform(-bound, bound, size=shape)


class Embedding(Module):
    """A table of ``num_embeddings`` vectors of size ``dim``: ids (N, T) -> (N, T, dim)."""

    def __init__(self, num_embeddings, dim, rng=None):
        super().__init__()
        rng = np.random.default_rng(0) if rng is None else rng
        self.register("W", rng.standard_normal((num_embeddings, dim)))
        self._cache = None

    def forward(self, ids):
        out, self._cache = F.embedding_forward(ids, self.params["W"])
        return out

    def backward(self, dout):
        self.grads["W"] += F.embedding_backward(dout, self._cache)


class Linear(Module):
    """``x @ W + b`` over the last axis; ``W`` is (in_features, out_features)."""

    def __init__(self, in_features, out_features, rng=None):
        super().__init__()
        rng = np.random.default_rng(0) if rng is None else rng
        bound = 1.0 / np.sqrt(in_features)
        self.register("W", _uniform(rng, (in_features, out_features), bound))
        self.register("b", _uniform(rng, (out_features,), bound))
        self._cache = None

    def forward(self, x):
        out, self._cache = F.affine_forward(x, self.params["W"], self.params["b"])
        return out

    def backward(self, dout):
        dx, dW, db = F.affine_backward(dout, self._cache)
        self.grads["W"] += dW
        self.grads["b"] += db
        return dx


class Dropout(Module):
    """Inverted dropout: in training, zero each entry with probability ``p`` and scale the
    rest by ``1 / (1 - p)``, so evaluation needs no rescaling. Seeded and resumable:
    ``rng_state()`` / ``set_rng_state()`` give the generator's state as JSON-able data.
    """

    def __init__(self, p=0.0, seed=0):
        super().__init__()
        if not (isinstance(p, (int, float)) and 0.0 <= p < 1.0):
            raise ValueError(f"Dropout: p must be a probability in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng = np.random.default_rng(seed)  # host generator: its state is saveable
        self._mask = None

    def forward(self, x):
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        keep = self.rng.random(x.shape, dtype=np.float32) >= self.p
        xp = backend.get_array_module(x)
        self._mask = xp.asarray(keep.astype(x.dtype) / x.dtype.type(1.0 - self.p))
        return x * self._mask

    def backward(self, dout):
        return dout if self._mask is None else dout * self._mask

    def rng_state(self):
        return self.rng.bit_generator.state

    def set_rng_state(self, state):
        self.rng.bit_generator.state = state
