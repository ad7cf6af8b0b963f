"""Argument checks shared by the functional ops.

Each check raises ``TypeError`` (wrong kind or dtype) or ``ValueError`` (wrong shape
or value) with a message of the form ``"<op>: <argument> must be <expected>, got <came>"``,
so a mistake a user makes never surfaces as a broadcasting error deep inside NumPy.
The checks look only at ``shape`` and ``dtype``: they cost nothing next to the math.
"""

from __future__ import annotations

import numpy as _np  # dtype objects only; never used on array data


def _shape_str(labels, dims):
    if labels is None:
        return str(tuple(dims))
    inner = ", ".join(f"{l}={d}" if d is not None else l for l, d in zip(labels, dims))
    return f"({inner},)" if len(dims) == 1 else f"({inner})"


def float_array(op, name, a, ndim, labels):
    """``a`` must be a float32/float64 array with ``ndim`` axes, described by ``labels``."""
    if not (hasattr(a, "shape") and hasattr(a, "dtype")):
        raise TypeError(f"{op}: {name} must be an array of shape ({labels}), "
                        f"got {type(a).__name__}")
    if a.dtype not in (_np.float32, _np.float64):
        raise TypeError(f"{op}: {name} must have a float dtype (float32 or float64), "
                        f"got {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{op}: {name} must be {ndim}-D with shape ({labels}), "
                         f"got {a.ndim}-D shape {tuple(a.shape)}")


def int_array(op, name, a):
    """``a`` must be an integer array (token ids or class targets)."""
    if not (hasattr(a, "shape") and hasattr(a, "dtype")):
        raise TypeError(f"{op}: {name} must be an integer array, got {type(a).__name__}")
    if a.dtype.kind not in "iu":
        raise TypeError(f"{op}: {name} must have an integer dtype, got {a.dtype}")


def shape_is(op, name, a, expected, labels):
    """``a.shape`` must equal ``expected``; ``labels`` names each axis for the message."""
    if tuple(a.shape) != tuple(expected):
        raise ValueError(f"{op}: {name} must have shape {_shape_str(labels, expected)}, "
                         f"got {tuple(a.shape)}")


def same_dtype(op, **arrays):
    """All float arrays of one call share one dtype: no silent float32 -> float64."""
    named = [(k, v) for k, v in arrays.items() if v is not None]
    first_name, first = named[0]
    for k, v in named[1:]:
        if v.dtype != first.dtype:
            raise TypeError(f"{op}: {k} has dtype {v.dtype} but {first_name} has "
                            f"{first.dtype}; pass every float array in one dtype")


def ids_in_range(op, name, ids, upper, xp):
    """Every entry of ``ids`` must lie in ``[0, upper)``."""
    if ids.size == 0:
        return
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= upper:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{op}: {name} must lie in [0, {upper}), got a value of {bad}")


def gate_weights(op, Wx, Wh, k, names=("Wx", "Wh")):
    """Check ``Wx (D, kH)`` against ``Wh (H, kH)`` and return ``(D, H)``."""
    float_array(op, names[0], Wx, 2, f"D, {k}H")
    float_array(op, names[1], Wh, 2, f"H, {k}H")
    H = Wh.shape[0]
    if Wh.shape[1] != k * H:
        raise ValueError(f"{op}: {names[1]} must have shape (H, {k}H) = ({H}, {k * H}), "
                         f"got {tuple(Wh.shape)}")
    if Wx.shape[1] != k * H:
        raise ValueError(f"{op}: {names[0]} must have {k}H = {k * H} columns to match "
                         f"{names[1]} {tuple(Wh.shape)}, got {tuple(Wx.shape)}")
    return Wx.shape[0], H


def bias(op, name, b, width, k):
    float_array(op, name, b, 1, f"{k}H")
    shape_is(op, name, b, (width,), (f"{k}H",))


def step_inputs(op, x, h_prev, Wx, Wh, k, state_name="h_prev"):
    """Check one recurrent step's ``x (N, D)``, ``h_prev (N, H)``, ``Wx``, ``Wh``; return N, D, H."""
    D, H = gate_weights(op, Wx, Wh, k)
    float_array(op, "x", x, 2, "N, D")
    N = x.shape[0]
    if x.shape[1] != D:
        raise ValueError(f"{op}: x must have D = {D} features to match Wx {tuple(Wx.shape)}, "
                         f"got x of shape {tuple(x.shape)}")
    float_array(op, state_name, h_prev, 2, "N, H")
    shape_is(op, state_name, h_prev, (N, H), ("N", "H"))
    return N, D, H


def sequence_x(op, x, features, weight, step="time step"):
    """``x (N, T, F)``: a float array whose F is ``features = (letter, size)``, the size
    a weight ``weight = (name, array)`` gives it, holding at least one sequence and one
    ``step``; returns N, T."""
    letter, F = features
    float_array(op, "x", x, 3, f"N, T, {letter}")
    N, T, Fx = x.shape
    if Fx != F:
        raise ValueError(f"{op}: x must have {letter} = {F} features to match {weight[0]} "
                         f"{tuple(weight[1].shape)}, got x of shape {tuple(x.shape)}")
    if N == 0 or T == 0:
        raise ValueError(f"{op}: x must hold at least one sequence and one {step}, "
                         f"got shape {tuple(x.shape)}")
    return N, T


def sequence_inputs(op, x, h0, Wx, Wh, k):
    """Check a sequence's ``x (N, T, D)``, ``h0 (N, H)``, ``Wx``, ``Wh``; return N, T, D, H."""
    D, H = gate_weights(op, Wx, Wh, k)
    if hasattr(x, "ndim") and x.ndim == 2:
        raise ValueError(f"{op}: x must be 3-D (N, T, D) for a sequence, got 2-D shape "
                         f"{tuple(x.shape)}; use the *_step_forward function for one step "
                         "or add a time axis with x[:, None, :]")
    N, T = sequence_x(op, x, ("D", D), ("Wx", Wx), "time step")
    float_array(op, "h0", h0, 2, "N, H")
    shape_is(op, "h0", h0, (N, H), ("N", "H"))
    return N, T, D, H


def upstream(op, name, d, expected_shape, labels, dtype):
    """An upstream gradient must match the output it differentiates, in shape and dtype."""
    float_array(op, name, d, len(expected_shape),
                ", ".join(labels) if labels else _shape_str(None, expected_shape)[1:-1])
    shape_is(op, name, d, expected_shape, labels)
    if d.dtype != dtype:
        raise TypeError(f"{op}: {name} has dtype {d.dtype} but the forward pass ran in "
                        f"{dtype}; pass the upstream gradient in the same dtype")


def keys_and_Wk(op, keys, Wk):
    """Check attention's ``keys (N, S, Hk)`` against ``Wk (Hk, A)``; return N, S, Hk, A."""
    float_array(op, "Wk", Wk, 2, "Hk, A")
    Hk, A = Wk.shape
    float_array(op, "keys", keys, 3, "N, S, Hk")
    N, S, Hk_keys = keys.shape
    if Hk_keys != Hk:
        raise ValueError(f"{op}: keys must have Hk = {Hk} features to match Wk "
                         f"{tuple(Wk.shape)}, got keys of shape {tuple(keys.shape)}")
    if S == 0:
        raise ValueError(f"{op}: keys must hold at least one source position, "
                         f"got shape {tuple(keys.shape)}")
    return N, S, Hk, A


def bool_mask(op, name, mask, shape, labels, like=None):
    """``mask`` must be a bool array of ``shape`` (the shape of the array ``like``)."""
    if not (hasattr(mask, "shape") and hasattr(mask, "dtype")) or mask.dtype != bool:
        want = f"({', '.join(labels)})" if labels else str(tuple(shape))
        raise TypeError(f"{op}: {name} must be a bool array of shape {want}, "
                        f"got {getattr(mask, 'dtype', type(mask).__name__)}")
    if like is not None and tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{op}: {name} must have shape {tuple(shape)} (like {like}), "
                         f"got {tuple(mask.shape)}")
    shape_is(op, name, mask, shape, labels)


def attention_inputs(op, query, keys, Wq, Wk, v, mask, keys_proj):
    """Every argument of additive attention, against each other (see attention.py)."""
    N, S, Hk, A = keys_and_Wk(op, keys, Wk)
    float_array(op, "Wq", Wq, 2, "Hq, A")
    Hq = Wq.shape[0]
    shape_is(op, "Wq", Wq, (Hq, A), ("Hq", "A"))
    float_array(op, "query", query, 2, "N, Hq")
    if query.shape[1] != Hq:
        raise ValueError(f"{op}: query must have Hq = {Hq} features to match Wq "
                         f"{tuple(Wq.shape)}, got query of shape {tuple(query.shape)}")
    shape_is(op, "query", query, (N, Hq), ("N", "Hq"))
    float_array(op, "v", v, 1, "A")
    shape_is(op, "v", v, (A,), ("A",))
    if keys_proj is not None:
        float_array(op, "keys_proj", keys_proj, 3, "N, S, A")
        shape_is(op, "keys_proj", keys_proj, (N, S, A), ("N", "S", "A"))
    same_dtype(op, query=query, keys=keys, Wq=Wq, Wk=Wk, v=v, keys_proj=keys_proj)
    if mask is not None:
        bool_mask(op, "mask", mask, (N, S), ("N", "S"))
        empty = ~mask.any(axis=1)  # (N,) rows where nothing may be attended
        if bool(empty.any()):
            row = int(empty.argmax())
            raise ValueError(f"{op}: mask must allow at least one source position in every "
                             f"row, got row {row} with none (all False); the softmax over "
                             "no positions is undefined")


def positive_int(op, name, value):
    """``value`` must be an integer >= 1 (a Python or NumPy int; a bool is refused)."""
    from numbers import Integral
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{op}: {name} must be a positive int, got {value!r} "
                        f"({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{op}: {name} must be a positive int, got {value}")
