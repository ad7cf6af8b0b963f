"""The array module: NumPy by default, CuPy for GPU arrays, and a strict stand-in for tests.

Everything in minirnn takes its array functions from here. Library code that
receives arrays asks ``get_array_module(*arrays)`` which module they belong to
(the Chainer idiom), so the same function runs on NumPy, CuPy and the strict
test backend. Code that *creates* arrays from nothing uses ``backend.xp``.

Choosing a backend::

    MINIRNN_BACKEND=cupy python -m minirnn ...      # before import
    minirnn.backend.use("cupy")                      # at run time

The strict backend (``use("strict")``), a stand-in for CuPy used by the tests, lives
in ``minirnn/strict.py`` and is loaded only when asked for.
"""

from __future__ import annotations

import importlib
import os
import sys

import numpy as _np

__all__ = [
    "xp", "use", "name", "get_array_module", "to_numpy", "asarray",
    "default_dtype", "set_default_dtype", "scatter_add", "reuse_freed_memory",
    "blas_threads", "blas_thread_count", "cores", "ThreadChoice",
]

BACKENDS = ("numpy", "cupy", "strict")

# float32 for training; gradient checks ask for float64 explicitly.
_default_dtype = _np.dtype(_np.float32)


def default_dtype():
    """The float dtype new parameters and data are made with (float32 unless changed)."""
    return _default_dtype


def set_default_dtype(dtype):
    """Set the default float dtype: ``"float32"`` or ``"float64"``."""
    global _default_dtype
    d = _np.dtype(dtype)
    if d not in (_np.float32, _np.float64):
        raise TypeError(f"set_default_dtype: dtype must be float32 or float64, got {d}")
    _default_dtype = d


# --------------------------------------------------------------------------------------
# Choosing and querying the backend
# --------------------------------------------------------------------------------------

xp = _np
name = "numpy"


def _load(backend_name):
    if backend_name == "numpy":
        return _np
    if backend_name == "strict":
        return importlib.import_module(_STRICT).strict
    if backend_name == "cupy":
        try:
            return importlib.import_module("cupy")
        except ImportError as e:  # pragma: no cover - depends on the machine
            raise ImportError(
                "backend 'cupy' needs CuPy: pip install 'minirnn[gpu]' "
                f"(a CUDA 12 machine); import failed with: {e}") from e
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend_name!r}")


def use(backend_name):
    """Switch the array module used to create new arrays: "numpy", "cupy" or "strict"."""
    global xp, name
    if not isinstance(backend_name, str):
        raise TypeError(f"use: backend_name must be a str from {BACKENDS}, "
                        f"got {type(backend_name).__name__}")
    xp = _load(backend_name)
    name = backend_name
    return xp


_STRICT = "minirnn.strict"


def _device_modules():
    """``(array type, its module)`` of every device backend loaded in this process: an
    array of a module nobody imported cannot exist, so nothing else is ever imported."""
    found = []
    strict_mod = sys.modules.get(_STRICT)
    if strict_mod is not None:
        found.append((strict_mod.StrictArray, strict_mod.strict))
    cp = sys.modules.get("cupy")
    if cp is not None:
        found.append((cp.ndarray, cp))
    return found


def get_array_module(*arrays):
    """The array module that owns ``arrays``: numpy, cupy or the strict stand-in.

    Plain Python scalars and ``None`` are ignored.
    """
    devices = _device_modules()
    for a in arrays:
        for array_type, module in devices:
            if isinstance(a, array_type):
                return module
    return _np


def to_numpy(a):
    """A host ``numpy.ndarray`` holding ``a`` (a copy for device arrays)."""
    for array_type, module in _device_modules():
        if isinstance(a, array_type):
            return module.asnumpy(a)
    return _np.asarray(a)


def asarray(a, dtype=None):
    """``a`` as an array of the current backend (moved to the device if needed)."""
    if xp is _np:
        return _np.asarray(to_numpy(a), dtype=dtype)
    return xp.asarray(a, dtype=dtype)


def scatter_add(a, indices, values):
    """``a[indices] += values`` with repeated indices accumulated, on any backend.

    indices: (n,) ints; values: (n, ...) rows. On the host the rows are sorted by index
    and each run of equal indices summed with one ``add.reduceat``: several times faster
    than ``add.at``, which adds row by row.
    """
    mod = get_array_module(a)
    if mod.__name__ == "cupy":
        import cupyx
        cupyx.scatter_add(a, indices, values)
        return a
    if indices.size == 0:
        return a
    order = mod.argsort(indices, kind="stable")
    ordered = indices[order]                                   # (n,) runs of equal indices
    starts = mod.flatnonzero(mod.concatenate([mod.ones(1, dtype=bool),
                                              ordered[1:] != ordered[:-1]]))
    a[ordered[starts]] += mod.add.reduceat(values[order], starts, axis=0)
    return a


def __getattr__(attr):
    """``backend.strict`` and ``backend.StrictArray``: the test double, loaded on first use."""
    if attr in ("strict", "StrictArray"):
        return getattr(importlib.import_module(_STRICT), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


# --------------------------------------------------------------------------------------
# Threads and memory: settings of a job, never of an import
# --------------------------------------------------------------------------------------

class blas_threads:
    """A job's BLAS thread count: ``with blas_threads(n) as threads:`` runs the block with
    the BLAS library (OpenBLAS, MKL...) limited to ``n`` threads (``None``: as it is),
    lets the job change the count as it goes (``threads.set(k)``), and restores the
    count it found on the way out, whatever happens (``threadpoolctl``).

    A BLAS pool left at its default spins one thread per core; on a machine that is
    doing something else too, those threads wait on each other and on the other load.
    """

    def __init__(self, n=None):
        self.n = n

    def __enter__(self):
        from threadpoolctl import ThreadpoolController
        self._libs = ThreadpoolController().select(user_api="blas").lib_controllers
        self._before = [lib.num_threads for lib in self._libs]
        self._now = None
        if self.n is not None:
            self.set(self.n)
        return self

    def set(self, n):
        if n != self._now:  # cheap to call every step: the libraries are told of changes
            for lib in self._libs:
                lib.set_num_threads(int(n))
            self._now = n

    def __exit__(self, *exc):
        for lib, n in zip(self._libs, self._before):
            lib.set_num_threads(n)
        return False


def blas_thread_count():
    """The number of threads the BLAS library uses now (the largest, if several)."""
    from threadpoolctl import threadpool_info
    return max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"),
               default=1)


def cores():
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


class ThreadChoice:
    """The BLAS thread count of each step of a job that repeats one kind of step
    (training steps, sampled tokens): ``fixed`` when given, else chosen as it goes.

    After ``warmup`` steps on every core comes a probe: runs of ``run`` steps take turns
    between every core and one thread (so a drift in speed, from caches warming or the
    machine getting busy, falls on both alike). The first step of a run is not timed
    (unless ``run`` is 1, which alternates every step): it pays for the switch (waking
    BLAS threads that went to sleep, data in another core's cache), which a run that
    stays on one count does not. The probe lasts until each count has ``probe`` timed
    steps and the probe has taken ``probe_s`` seconds; the count with the shorter mean
    step is kept (one thread on a tie). The second probe comes after ``recheck`` times
    the first one's length of work, so that a first probe misled by a job's slow first
    steps (buffers allocated, caches filled) is soon put right; every later one after
    ``spacing`` times its own length, so probing costs a few percent of the steps at
    most whatever their length. So an idle machine gets its cores, and a busy one is
    spared BLAS threads that wait on each other.

    Use: ``n = choice.threads_for()``, run one step on ``n`` threads, then
    ``choice.record(seconds)`` with how long the step took.
    """

    def __init__(self, fixed=None, n_cores=None, warmup=2, probe=2, probe_s=1.0, spacing=20,
                 run=3, recheck=2):
        if run < 1:
            raise ValueError(f"ThreadChoice: run must be at least 1 step, got {run}")
        n_cores = cores() if n_cores is None else n_cores
        self.options = (fixed,) if fixed is not None else tuple(sorted({1, n_cores}))
        self.warmup, self.probe, self.probe_s = warmup, probe, probe_s
        self.spacing, self.run, self.recheck = spacing, run, recheck
        self.best = self.options[-1]
        self.steps = 0          # steps recorded
        self.since = 0.0        # seconds of work since the last probe ended
        self.gap = None         # seconds of work until the next probe (None: after warmup)
        self.timings = None     # {count: [seconds, ...]} of the probe under way, or None
        self.probes = 0         # probes finished
        self.spent = 0.0        # seconds the probe under way has taken so far
        self.left = 0           # steps left in the probe's current run
        self.current = self.best

    def _probe_due(self):
        if len(self.options) < 2:
            return False
        return self.steps >= self.warmup if self.gap is None else self.since >= self.gap

    def threads_for(self):
        """The thread count of the next step."""
        if self.timings is None and self._probe_due():
            self.timings, self.spent, self.left = {n: [] for n in self.options}, 0.0, 0
        if self.timings is None:
            self.current = self.best
        elif self.left == 0:  # a new run: the count with fewer timings, every core on a tie
            self.current = min(self.options[::-1], key=lambda n: len(self.timings[n]))
            self.left = self.run
        return self.current

    def record(self, seconds):
        """How long the step just run (on ``threads_for()``'s count) took."""
        self.steps += 1
        if self.timings is None:
            self.since += seconds
            return
        if self.run == 1 or self.left < self.run:  # not the first of a longer run
            self.timings[self.current].append(seconds)
        self.left -= 1
        self.spent += seconds
        if self.left == 0 and self.spent >= self.probe_s and \
                min(len(t) for t in self.timings.values()) >= self.probe:
            # The mean, not the median: what counts is the time all steps take, and on a
            # busy machine the cost of threads that wait is a few very slow steps.
            means = {n: sum(t) / len(t) for n, t in self.timings.items()}
            self.best = min(means, key=means.get)  # options are in order: 1 on a tie
            self.probes += 1
            self.timings, self.since = None, 0.0
            self.gap = (self.recheck if self.probes == 1 else self.spacing) * self.spent


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers


def reuse_freed_memory(enabled=None):
    """Let the C allocator hand freed large buffers back out instead of returning them.

    An LSTM step over a batch allocates a few buffers of ``T * N * 4H`` floats (33 MB
    at N = T = 64, H = 512) per call. glibc serves blocks over 32 MB with fresh
    ``mmap`` pages, and the kernel zero-fills every page on first touch: about a
    fifth of an LSTM forward+backward goes to these page faults. Raising the mmap
    threshold (to 1 GiB) and the trim threshold (to 256 MiB) lets the next call reuse
    the same memory. The cost: up to 256 MiB of freed memory stays with the process.

    It changes the allocator of the whole process, so it is never done on import: the
    jobs that gain from it (the trainer, the CLI's commands, the benchmarks) ask for it.
    glibc only; a no-op elsewhere. ``enabled=None`` means on unless the environment
    says ``MINIRNN_REUSE_MEMORY=0``; False restores glibc's defaults. Returns True if
    the setting took.
    """
    import ctypes
    import ctypes.util

    if enabled is None:
        enabled = os.environ.get("MINIRNN_REUSE_MEMORY", "1") != "0"
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    if enabled:
        return bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30) and mallopt(_M_TRIM_THRESHOLD, 1 << 28))
    # glibc's defaults (the dynamic threshold is not restored, only its start value)
    return bool(mallopt(_M_MMAP_THRESHOLD, 128 * 1024) and mallopt(_M_TRIM_THRESHOLD, 128 * 1024))


_env = os.environ.get("MINIRNN_BACKEND")
if _env:
    use(_env)
