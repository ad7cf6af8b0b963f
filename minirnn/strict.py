"""The strict test backend: NumPy arrays behind a wall, standing in for CuPy on a CPU.

``StrictArray`` wraps a NumPy array and refuses implicit conversion to
``numpy.ndarray`` and any mixing with plain NumPy arrays, exactly as CuPy arrays do;
``strict`` is the array module that goes with it (``numpy`` as seen through the wall).
Running the test suite under it (``backend.use("strict")``) proves on a CPU machine that
no op calls ``np.*`` on a device array or mixes host and device arrays.

A test double, not a backend to compute with: ``minirnn.backend`` loads it only when
asked for (``use("strict")``, ``backend.strict``, ``backend.StrictArray``).
"""

from __future__ import annotations

import types

import numpy as _np

__all__ = ["StrictArray", "strict"]


def _unwrap(obj, where):
    """StrictArray -> its ndarray; refuse plain ndarrays (mixing host and device)."""
    if isinstance(obj, StrictArray):
        return obj._a
    if isinstance(obj, _np.ndarray):
        raise TypeError(
            f"{where}: a plain numpy.ndarray (shape {obj.shape}) was mixed with strict "
            "device arrays; convert it with backend.asarray first")
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(o, where) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v, where) for k, v in obj.items()}
    return obj


def _wrap(obj):
    if isinstance(obj, _np.ndarray):
        return StrictArray(obj)
    if isinstance(obj, tuple):
        return tuple(_wrap(o) for o in obj)
    if isinstance(obj, list):
        return [_wrap(o) for o in obj]
    return obj


def _binary(op):
    def method(self, other):
        return _wrap(op(self._a, _unwrap(other, f"StrictArray.{op.__name__}")))
    return method


def _reflected(op):
    def method(self, other):
        return _wrap(op(_unwrap(other, f"StrictArray.{op.__name__}"), self._a))
    return method


def _inplace(op):
    def method(self, other):
        op(self._a, _unwrap(other, f"StrictArray.{op.__name__}"), out=self._a)
        return self
    return method


class StrictArray:
    """A NumPy array behind a wall, standing in for a CuPy array in tests.

    Arithmetic, indexing and the usual methods work and return StrictArrays.
    ``numpy.asarray(a)``, ``np.exp(a)`` and any other NumPy function refuse it
    with a TypeError, and so does arithmetic with a plain ``numpy.ndarray``.
    ``a.get()`` (CuPy's spelling) copies it to the host explicitly.
    """

    __slots__ = ("_a",)
    __array_ufunc__ = None  # np.ufunc(strict) -> TypeError, like a foreign array

    def __init__(self, a):
        if not isinstance(a, _np.ndarray):
            raise TypeError(f"StrictArray wraps a numpy.ndarray, got {type(a).__name__}")
        self._a = a

    def __array__(self, *args, **kwargs):
        raise TypeError(
            "Implicit conversion of a strict device array to numpy.ndarray is not allowed; "
            "use backend.to_numpy(a)")

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(
            f"numpy.{func.__name__} was called on a strict device array; "
            "use the array module from backend.get_array_module(...)")

    # -- attributes ------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    T = property(lambda self: StrictArray(self._a.T))
    flags = property(lambda self: self._a.flags)

    def get(self):
        """Copy to a host numpy.ndarray (CuPy's ``ndarray.get``)."""
        return self._a.copy()

    def __repr__(self):
        return f"StrictArray({self._a!r})"

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(v) for v in self._a)

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key, "StrictArray.__getitem__")])

    def __setitem__(self, key, value):
        self._a[_unwrap(key, "StrictArray.__setitem__")] = _unwrap(value, "StrictArray.__setitem__")

    # Scalars out of size-1 arrays are allowed (CuPy synchronises and allows them too).
    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __bool__(self):
        return bool(self._a)

    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    def __neg__(self):
        return StrictArray(-self._a)

    def __abs__(self):
        return StrictArray(abs(self._a))

    def __invert__(self):
        return StrictArray(~self._a)

    __add__, __radd__, __iadd__ = _binary(_np.add), _reflected(_np.add), _inplace(_np.add)
    __sub__, __rsub__, __isub__ = (_binary(_np.subtract), _reflected(_np.subtract),
                                   _inplace(_np.subtract))
    __mul__, __rmul__, __imul__ = (_binary(_np.multiply), _reflected(_np.multiply),
                                   _inplace(_np.multiply))
    __truediv__, __rtruediv__, __itruediv__ = (_binary(_np.true_divide),
                                               _reflected(_np.true_divide),
                                               _inplace(_np.true_divide))
    __floordiv__ = _binary(_np.floor_divide)
    __mod__ = _binary(_np.mod)
    __pow__, __rpow__ = _binary(_np.power), _reflected(_np.power)
    __matmul__, __rmatmul__ = _binary(_np.matmul), _reflected(_np.matmul)
    __lt__, __le__ = _binary(_np.less), _binary(_np.less_equal)
    __gt__, __ge__ = _binary(_np.greater), _binary(_np.greater_equal)
    __eq__, __ne__ = _binary(_np.equal), _binary(_np.not_equal)
    __and__, __or__, __xor__ = (_binary(_np.logical_and), _binary(_np.logical_or),
                                _binary(_np.logical_xor))
    __hash__ = None

    # -- methods: delegate to the ndarray method, wrapping results --------------------
    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        method = getattr(self._a, attr)
        if not callable(method):
            return _wrap(method)

        def call(*args, **kwargs):
            return _wrap(method(*_unwrap(args, f"StrictArray.{attr}"),
                                **_unwrap(kwargs, f"StrictArray.{attr}")))
        return call


class _StrictUfunc:
    """A ufunc of the strict module: unwraps inputs, wraps outputs; has ``.at``/``.reduce``."""

    def __init__(self, uf):
        self._uf = uf
        self.__name__ = uf.__name__

    def __call__(self, *args, **kwargs):
        where = f"strict.{self.__name__}"
        return _wrap(self._uf(*_unwrap(args, where), **_unwrap(kwargs, where)))

    def __getattr__(self, attr):
        method = getattr(self._uf, attr)

        def call(*args, **kwargs):
            where = f"strict.{self.__name__}.{attr}"
            return _wrap(method(*_unwrap(args, where), **_unwrap(kwargs, where)))
        return call


class _StrictModule(types.ModuleType):
    """``numpy`` as seen through the wall: every function takes and returns StrictArrays.

    Array-creating functions (``zeros``, ``empty``, ``arange``...) return
    StrictArrays; a plain ndarray argument is refused. ``asarray`` is the one
    door in (host -> device), like ``cupy.asarray``; ``asnumpy`` the door out.
    """

    def __init__(self):
        super().__init__("minirnn.backend.strict")
        self.random = _StrictRandom()

    def asarray(self, a, dtype=None):
        if isinstance(a, StrictArray):
            return a if dtype is None or a.dtype == _np.dtype(dtype) else a.astype(dtype)
        return StrictArray(_np.array(a, dtype=dtype))  # a copy: a "transfer" to the device

    array = asarray

    def asnumpy(self, a):
        return a.get() if isinstance(a, StrictArray) else _np.asarray(a)

    def __getattr__(self, attr):
        obj = getattr(_np, attr)
        if isinstance(obj, _np.ufunc):
            return _StrictUfunc(obj)
        if callable(obj) and not isinstance(obj, type):
            def call(*args, **kwargs):
                where = f"strict.{attr}"
                return _wrap(obj(*_unwrap(args, where), **_unwrap(kwargs, where)))
            call.__name__ = attr
            return call
        return obj  # dtypes, constants (float32, pi, newaxis, inf)


class _StrictRandom:
    """``strict.random``: seeded generators whose draws land on the strict device."""

    def default_rng(self, seed=None):
        return _StrictGenerator(_np.random.default_rng(seed))


class _StrictGenerator:
    def __init__(self, rng):
        self._rng = rng

    def __getattr__(self, attr):
        method = getattr(self._rng, attr)
        if not callable(method):
            return method

        def call(*args, **kwargs):
            return _wrap(method(*_unwrap(args, "strict.random"), **_unwrap(kwargs, "strict.random")))
        return call


strict = _StrictModule()
