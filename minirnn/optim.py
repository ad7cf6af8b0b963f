"""Optimizers, gradient clipping and learning-rate schedules.

Every optimizer works on the two dicts a Module owns, ``params`` and ``grads``
(the same keys, arrays of the same shapes); given ``flat=model.flat`` (a flattened
model's buffers) it updates them all at once::

    opt = Adam(model.params, model.grads, lr=2e-3)
    loss = model.backward(...)            # fills model.grads
    clip_grad_norm(model.grads, 5.0)
    opt.lr = schedule(step)                # a plain attribute
    opt.step()                             # updates every params[k] in place

``step`` writes into the parameter arrays themselves (``p -= ...``), never
rebinding ``params[k]``, so every reference a Module keeps stays valid. It reads
``grads[k]`` afresh on each step, so a backward pass may rebind the gradients.

The update rules follow PyTorch's ``torch.optim`` exactly (same formulas, same
order of operations); each class's docstring writes its rule out, with ``g`` the
gradient, ``p`` the parameter and ``t`` the step count (1 on the first step).
Per-parameter state buffers are made with ``zeros_like(p)``, so float32
parameters keep float32 state, and all array math goes through the parameter's
own array module (NumPy, CuPy or the strict test backend); scalars are Python floats.

``state_dict()`` returns ``{"hyper": {...}, "arrays": {...}}``: JSON-able scalars
(``type``, ``lr``, ``t`` and the optimizer's settings) and copies of the state
buffers keyed ``"<buffer>/<param name>"`` (e.g. ``"m/Wx"``). ``load_state_dict``
checks every key and shape before it changes anything and then restores exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Optional

from .backend import get_array_module, to_numpy

__all__ = [
    "Optimizer", "SGD", "Adagrad", "RMSProp", "Adam", "AdamW",
    "clip_grad_norm", "clip_grad_value", "StepDecay", "Cosine", "LinearWarmup", "cosine_between",
]


# --------------------------------------------------------------------------------------
# Argument checks: "<where>: <argument> must be <expected>, got <value>"
# --------------------------------------------------------------------------------------

def _number(where, name, value):
    if isinstance(value, bool) or not hasattr(value, "__float__"):
        raise TypeError(f"{where}: {name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{where}: {name} must be finite, got {value}")
    return value


def _positive(where, name, value):
    v = _number(where, name, value)
    if v <= 0:
        raise ValueError(f"{where}: {name} must be > 0, got {value}")
    return v


def _non_negative(where, name, value):
    v = _number(where, name, value)
    if v < 0:
        raise ValueError(f"{where}: {name} must be >= 0, got {value}")
    return v


def _unit(where, name, value):
    """A decay rate in [0, 1)."""
    v = _number(where, name, value)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"{where}: {name} must be in [0, 1), got {value}")
    return v


def _count(where, name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__"):
        raise TypeError(f"{where}: {name} must be an int, got {type(value).__name__}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{where}: {name} must be an int >= {minimum}, got {value}")
    return value


_CHUNK = 1 << 18  # entries of the flat buffers updated together (1 MB of float32)


def _views(where, flat, params):
    """Views of the 1-D ``flat`` shaped and ordered like ``params`` (a flattened model's)."""
    views, start = {}, 0
    for k, p in params.items():
        stop = start + int(p.size)
        views[k] = flat[start:stop].reshape(p.shape)
        start = stop
    if start != flat.size:
        raise ValueError(f"{where}: flat buffers of {flat.size} entries for parameters of "
                         f"{start}; pass the flat buffers of the model these params belong to")
    return views


def _check_pairs(where, params, grads):
    if not isinstance(params, Mapping) or not isinstance(grads, Mapping):
        raise TypeError(f"{where}: params and grads must be dicts name -> array, got "
                        f"{type(params).__name__} and {type(grads).__name__}")
    if params.keys() != grads.keys():
        only_p = sorted(set(params) - set(grads))
        only_g = sorted(set(grads) - set(params))
        raise ValueError(f"{where}: params and grads must have the same keys; only in params: "
                         f"{only_p}, only in grads: {only_g}")
    for k, p in params.items():
        g = grads[k]
        if not hasattr(p, "shape") or not hasattr(g, "shape"):
            raise TypeError(f"{where}: params[{k!r}] and grads[{k!r}] must be arrays, got "
                            f"{type(p).__name__} and {type(g).__name__}")
        if tuple(g.shape) != tuple(p.shape):
            raise ValueError(f"{where}: grads[{k!r}] must have the shape of params[{k!r}] "
                             f"{tuple(p.shape)}, got {tuple(g.shape)}")


# --------------------------------------------------------------------------------------
# Optimizers
# --------------------------------------------------------------------------------------

class Optimizer:
    """Base class: holds ``params``/``grads``, the step count ``t`` and state buffers.

    A subclass names its per-parameter buffers in ``buffers``, validates and sets its
    settings in ``_configure(**hyper)`` and updates one parameter in ``_update``.
    """

    buffers: tuple = ()

    def __init__(self, params, grads, lr, flat=None, **hyper):
        where = type(self).__name__
        _check_pairs(where, params, grads)
        self.params, self.grads = params, grads
        self._keys = tuple(params)
        self.t = 0
        self.lr = _positive(where, "lr", lr)  # then a plain attribute: schedules set it
        self._configure(**hyper)
        self.flat = flat
        if flat is None:
            self.state = {b: {k: get_array_module(p).zeros_like(p) for k, p in params.items()}
                          for b in self.buffers}
        else:
            self._flat_state = {b: get_array_module(flat.params).zeros_like(flat.params)
                                for b in self.buffers}
            self.state = {b: _views(where, buf, params) for b, buf in self._flat_state.items()}

    def _configure(self, **hyper):  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def _hyper(self):
        """The settings other than lr, as keyword arguments of ``_configure`` (JSON-able)."""
        raise NotImplementedError  # pragma: no cover

    def _update(self, p, g, s, xp):  # pragma: no cover
        """Update ``p`` in place from ``g``; ``s`` maps each buffer name to its array."""
        raise NotImplementedError

    def step(self):
        """Apply one update to every parameter, in place: one whole-array update over
        the flat buffers when the model is flattened, else one per parameter (the same
        arithmetic entry by entry, so the two give the same numbers)."""
        where = f"{type(self).__name__}.step"
        if tuple(self.params) != self._keys:
            raise ValueError(f"{where}: params keys changed since the optimizer was made: "
                             f"{list(self._keys)} -> {list(self.params)}")
        self.t += 1
        if self.flat is not None:
            p, g = self.flat.params, self.flat.grads
            xp = get_array_module(p, g)
            # A chunk at a time: each update takes a dozen passes over its arrays, and a
            # chunk of 1 MB stays in cache for all of them (the whole 13 MB of a 3.3 M
            # parameter model would be read from memory a dozen times).
            for start in range(0, p.size, _CHUNK):
                part = slice(start, start + _CHUNK)
                self._update(p[part], g[part],
                             {b: buf[part] for b, buf in self._flat_state.items()}, xp)
            return
        _check_pairs(where, self.params, self.grads)
        for k, p in self.params.items():
            g = self.grads[k]
            self._update(p, g, {b: self.state[b][k] for b in self.buffers},
                         get_array_module(p, g))

    def state_dict(self):
        """``{"hyper": {type, t, lr, ...}, "arrays": {"<buffer>/<name>": copy}}``."""
        hyper = {"type": type(self).__name__, "t": self.t, "lr": float(self.lr), **self._hyper()}
        arrays = {f"{b}/{k}": a.copy() for b, per in self.state.items() for k, a in per.items()}
        return {"hyper": hyper, "arrays": arrays}

    def load_state_dict(self, d):
        """Restore what ``state_dict`` saved; every key and shape is checked first."""
        where = f"{type(self).__name__}.load_state_dict"
        if not isinstance(d, Mapping) or set(d) != {"hyper", "arrays"}:
            got = sorted(d) if isinstance(d, Mapping) else type(d).__name__
            raise ValueError(f"{where}: state must be a dict with keys 'hyper' and 'arrays', "
                             f"got {got}")
        hyper, arrays = dict(d["hyper"]), d["arrays"]
        expected = {"type", "t", "lr", *self._hyper()}
        missing, extra = sorted(expected - set(hyper)), sorted(set(hyper) - expected)
        if missing or extra:
            raise ValueError(f"{where}: hyper key {(missing or extra)[0]!r} is "
                             f"{'missing' if missing else 'unexpected'}")
        if hyper["type"] != type(self).__name__:
            raise ValueError(f"{where}: hyper key 'type' must be {type(self).__name__!r}, "
                             f"got {hyper['type']!r}")
        t = _count(where, "t", hyper.pop("t"), 0)
        lr = _non_negative(where, "lr", hyper.pop("lr"))  # a schedule may have reached 0
        names = {f"{b}/{k}": buf for b, per in self.state.items() for k, buf in per.items()}
        missing, extra = sorted(set(names) - set(arrays)), sorted(set(arrays) - set(names))
        if missing or extra:
            raise ValueError(f"{where}: array key {(missing or extra)[0]!r} is "
                             f"{'missing' if missing else 'unexpected'}")
        for key, buf in names.items():
            got = getattr(arrays[key], "shape", None)
            if got is None or tuple(got) != tuple(buf.shape):
                raise ValueError(f"{where}: array {key!r} must have shape {tuple(buf.shape)}, "
                                 f"got {got if got is None else tuple(got)}")
        del hyper["type"]
        self._configure(**hyper)  # validates everything before it sets anything
        for key, buf in names.items():
            src = arrays[key]
            xp = get_array_module(buf)
            if get_array_module(src) is not xp:  # host <-> device: go through the host
                src = xp.asarray(to_numpy(src))
            buf[...] = src
        self.t, self.lr = t, lr

    def __repr__(self):
        settings = ", ".join(f"{k}={v!r}" for k, v in {"lr": self.lr, **self._hyper()}.items())
        return f"{type(self).__name__}({settings}, t={self.t}, params={list(self._keys)})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov and L2 weight decay.

    ``torch.optim.SGD`` (dampening 0)::

        g = g + weight_decay * p            # if weight_decay != 0
        b = momentum * b + g                # if momentum != 0 (b starts at 0)
        g = g + momentum * b  if nesterov else  b
        p = p - lr * g

    State: ``"b/<name>"`` when momentum > 0.
    """

    def __init__(self, params, grads, lr, momentum=0.0, nesterov=False, weight_decay=0.0,
                 flat=None):
        self.buffers = ("b",) if _number("SGD", "momentum", momentum) > 0 else ()
        super().__init__(params, grads, lr=lr, flat=flat, momentum=momentum,
                         nesterov=nesterov, weight_decay=weight_decay)

    def _configure(self, momentum, nesterov, weight_decay):
        momentum = _non_negative("SGD", "momentum", momentum)
        weight_decay = _non_negative("SGD", "weight_decay", weight_decay)
        if not isinstance(nesterov, bool):
            raise TypeError(f"SGD: nesterov must be a bool, got {nesterov!r}")
        if nesterov and momentum == 0:
            raise ValueError(f"SGD: nesterov=True needs momentum > 0, got momentum={momentum}")
        if (momentum > 0) != bool(self.buffers):
            raise ValueError(f"SGD: momentum={momentum} does not match this optimizer's state "
                             f"(made with momentum {'> 0' if self.buffers else '= 0'})")
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay

    def _hyper(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}

    def _update(self, p, g, s, xp):
        if self.weight_decay:
            g = g + self.weight_decay * p  # a new array: grads are never modified
        if self.momentum:
            b = s["b"]
            b *= self.momentum
            b += g
            g = g + self.momentum * b if self.nesterov else b
        p -= self.lr * g


class Adagrad(Optimizer):
    """Adagrad: per-entry step sizes shrinking with the sum of squared gradients.

    ``torch.optim.Adagrad`` (no lr decay, no weight decay, initial sum 0)::

        s = s + g * g
        p = p - lr * g / (sqrt(s) + eps)

    State: ``"sum/<name>"``.
    """

    buffers = ("sum",)

    def __init__(self, params, grads, lr, eps=1e-8, flat=None):
        super().__init__(params, grads, lr=lr, flat=flat, eps=eps)

    def _configure(self, eps):
        self.eps = _non_negative("Adagrad", "eps", eps)

    def _hyper(self):
        return {"eps": self.eps}

    def _update(self, p, g, s, xp):
        total = s["sum"]
        total += g * g
        p -= self.lr * (g / (xp.sqrt(total) + self.eps))


class RMSProp(Optimizer):
    """RMSProp: steps divided by a running root-mean-square of the gradient.

    ``torch.optim.RMSprop`` (not centred, no momentum)::

        v = alpha * v + (1 - alpha) * g * g
        p = p - lr * g / (sqrt(v) + eps)

    State: ``"v/<name>"``.
    """

    buffers = ("v",)

    def __init__(self, params, grads, lr, alpha=0.99, eps=1e-8, flat=None):
        super().__init__(params, grads, lr=lr, flat=flat, alpha=alpha, eps=eps)

    def _configure(self, alpha, eps):
        alpha, eps = _unit("RMSProp", "alpha", alpha), _non_negative("RMSProp", "eps", eps)
        self.alpha, self.eps = alpha, eps

    def _hyper(self):
        return {"alpha": self.alpha, "eps": self.eps}

    def _update(self, p, g, s, xp):
        v = s["v"]
        v *= self.alpha
        v += (1.0 - self.alpha) * (g * g)
        p -= self.lr * (g / (xp.sqrt(v) + self.eps))


class Adam(Optimizer):
    """Adam with bias correction; ``weight_decay`` is L2 added to the gradient.

    ``torch.optim.Adam`` (amsgrad off)::

        g = g + weight_decay * p                     # if weight_decay != 0
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t),  v_hat = v / (1 - b2**t)
        p = p - lr * m_hat / (sqrt(v_hat) + eps)

    computed as PyTorch does: ``p -= lr/(1 - b1**t) * m / (sqrt(v)/sqrt(1 - b2**t) + eps)``.
    On step 1, ``m_hat = g`` and ``v_hat = g*g``, so each entry moves by
    ``lr * g / (|g| + eps)``, i.e. ``lr * sign(g)`` when eps is tiny.

    State: ``"m/<name>"``, ``"v/<name>"``.
    """

    buffers = ("m", "v")
    _decoupled = False

    def __init__(self, params, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 flat=None):
        super().__init__(params, grads, lr=lr, flat=flat, betas=betas, eps=eps,
                         weight_decay=weight_decay)

    def _configure(self, betas, eps, weight_decay):
        where = type(self).__name__
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{where}: betas must be a pair (beta1, beta2), got {betas!r}")
        b1, b2 = _unit(where, "betas[0]", betas[0]), _unit(where, "betas[1]", betas[1])
        eps = _non_negative(where, "eps", eps)
        weight_decay = _non_negative(where, "weight_decay", weight_decay)
        self.betas, self.eps, self.weight_decay = (b1, b2), eps, weight_decay

    def _hyper(self):
        return {"betas": list(self.betas), "eps": self.eps,
                "weight_decay": self.weight_decay}

    def _update(self, p, g, s, xp):
        b1, b2 = self.betas
        if self.weight_decay:
            if self._decoupled:
                p *= 1.0 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * p
        m, v = s["m"], s["v"]
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * (g * g)
        step_size = self.lr / (1.0 - b1 ** self.t)
        denom = xp.sqrt(v) / math.sqrt(1.0 - b2 ** self.t) + self.eps
        p -= step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter).

    ``torch.optim.AdamW``: first ``p = p - lr * weight_decay * p``, then the Adam step
    of :class:`Adam` with ``weight_decay = 0`` (the decay never enters m or v).
    State: ``"m/<name>"``, ``"v/<name>"``.
    """

    _decoupled = True

    def __init__(self, params, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
                 flat=None):
        super().__init__(params, grads, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         flat=flat)


# --------------------------------------------------------------------------------------
# Gradient clipping
# --------------------------------------------------------------------------------------

def _arrays(grads):
    return list(grads.values()) if isinstance(grads, Mapping) else list(grads)


def clip_grad_norm(grads, max_norm):
    """Scale all gradients together so their global L2 norm is at most ``max_norm``.

    ``norm = sqrt(sum_k sum(g_k**2))``; if ``norm > max_norm`` every array is
    multiplied in place by ``max_norm / (norm + 1e-6)`` (``torch.nn.utils.clip_grad_norm_``).
    ``grads``: a dict name -> array (or a list of arrays). Returns the norm before
    clipping as a Python float (NaN/Inf pass through unclipped, for the caller to catch).
    """
    max_norm = _positive("clip_grad_norm", "max_norm", max_norm)
    arrays = _arrays(grads)
    total = math.sqrt(sum(float(get_array_module(g).vdot(g, g)) for g in arrays))
    if total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in arrays:
            g *= scale
    return total


def clip_grad_value(grads, clip):
    """Clip every gradient entry into ``[-clip, clip]``, in place."""
    clip = _positive("clip_grad_value", "clip", clip)
    for g in _arrays(grads):
        get_array_module(g).clip(g, -clip, clip, out=g)


# --------------------------------------------------------------------------------------
# Learning-rate schedules: pure functions of the step (0 = the first update)
# --------------------------------------------------------------------------------------

def _step(where, step):
    return _count(where, "step", step, 0)


@dataclass(frozen=True)
class StepDecay:
    """``lr(step) = base_lr * gamma ** (step // step_size)``."""

    base_lr: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self):
        _positive("StepDecay", "base_lr", self.base_lr)
        _count("StepDecay", "step_size", self.step_size, 1)
        _positive("StepDecay", "gamma", self.gamma)

    def __call__(self, step):
        n_decays = _step("StepDecay", step) // self.step_size
        return float(self.base_lr) * float(self.gamma) ** n_decays


@dataclass(frozen=True)
class Cosine:
    """Cosine annealing: with ``s = min(step, total_steps)``,
    ``lr(step) = min_lr + (base_lr - min_lr) * (1 + cos(pi * s / total_steps)) / 2``.

    Falls from ``base_lr`` at step 0 to ``min_lr`` at ``total_steps`` and stays there.
    """

    base_lr: float
    total_steps: int
    min_lr: float = 0.0

    def __post_init__(self):
        _positive("Cosine", "base_lr", self.base_lr)
        _count("Cosine", "total_steps", self.total_steps, 1)
        if not 0 <= _number("Cosine", "min_lr", self.min_lr) <= self.base_lr:
            raise ValueError(f"Cosine: min_lr must be in [0, base_lr={self.base_lr}], "
                             f"got {self.min_lr}")

    def __call__(self, step):
        frac = min(_step("Cosine", step), self.total_steps) / self.total_steps
        return cosine_between(self.base_lr, self.min_lr, frac)


def cosine_between(base_lr, min_lr, frac):
    """The cosine schedule at ``frac`` (0 to 1) of the way: ``base_lr`` at 0, ``min_lr`` at 1."""
    return float(min_lr) + (float(base_lr) - float(min_lr)) * (1.0 + math.cos(math.pi * frac)) / 2.0


@dataclass(frozen=True)
class LinearWarmup:
    """Linear warm-up to ``base_lr``, then constant ``base_lr`` or another schedule.

    ``lr(step) = base_lr * (step + 1) / warmup_steps`` for ``step < warmup_steps``
    (so the first update already has a non-zero rate), then ``base_lr`` if ``after``
    is None, else ``after(step - warmup_steps)``: the wrapped schedule starts at its
    own step 0 when warm-up ends (give it ``total_steps - warmup_steps``).
    """

    base_lr: float
    warmup_steps: int
    after: Optional[Callable[[int], float]] = None

    def __post_init__(self):
        _positive("LinearWarmup", "base_lr", self.base_lr)
        _count("LinearWarmup", "warmup_steps", self.warmup_steps, 0)
        if self.after is not None and not callable(self.after):
            raise TypeError(f"LinearWarmup: after must be a schedule (callable step -> lr) or "
                            f"None, got {type(self.after).__name__}")

    def __call__(self, step):
        step = _step("LinearWarmup", step)
        if step < self.warmup_steps:
            return float(self.base_lr) * (step + 1) / self.warmup_steps
        if self.after is None:
            return float(self.base_lr)
        return float(self.after(step - self.warmup_steps))
