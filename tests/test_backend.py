"""The backend: NumPy by default, and a strict stand-in that behaves like a GPU array module."""

import subprocess
import sys

import numpy as np
import pytest

from minirnn import backend
from minirnn.backend import StrictArray, strict


def test_numpy_is_the_default_and_cupy_is_not_imported():
    code = ("import sys, minirnn, minirnn.functional, minirnn.gradcheck; "
            "print(minirnn.backend.name, 'cupy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PATH": "", "MINIRNN_BACKEND": ""}, check=True).stdout.split()
    assert out == ["numpy", "False"]


def test_environment_variable_selects_the_backend():
    code = "import minirnn; print(minirnn.backend.name, minirnn.backend.xp.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"MINIRNN_BACKEND": "strict"}, check=True).stdout.split()
    assert out == ["strict", "minirnn.backend.strict"]


def test_use_switches_and_rejects_unknown_names():
    assert backend.use("strict") is strict
    assert isinstance(backend.asarray([1.0, 2.0]), StrictArray)
    assert backend.use("numpy") is np
    with pytest.raises(ValueError, match=r"backend must be one of .*got 'torch'"):
        backend.use("torch")


def test_strict_arrays_refuse_implicit_conversion_and_numpy_functions():
    a = strict.asarray(np.arange(3.0))
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError):
        np.exp(a)
    with pytest.raises(TypeError, match="numpy.concatenate was called on a strict device array"):
        np.concatenate([a, a])
    with pytest.raises(TypeError, match="mixed with strict device arrays"):
        a + np.ones(3)
    with pytest.raises(TypeError, match="mixed with strict device arrays"):
        strict.matmul(np.ones((3, 3)), a)


def test_strict_arrays_compute_like_numpy_through_their_own_module():
    x = np.arange(6.0).reshape(2, 3)
    a = strict.asarray(x)
    out = strict.tanh(a @ a.T + 1.0)
    assert isinstance(out, StrictArray)
    np.testing.assert_array_equal(backend.to_numpy(out), np.tanh(x @ x.T + 1.0))
    b = strict.zeros((2, 3))
    b[:, 1:] += a[:, :2]
    strict.add.at(b, strict.asarray(np.array([0, 0])), strict.asarray(np.ones((2, 3))))
    want = np.zeros((2, 3))
    want[:, 1:] += x[:, :2]
    want[0] += 2
    np.testing.assert_array_equal(b.get(), want)


def test_get_array_module_and_to_numpy():
    a = strict.asarray(np.ones(2))
    assert backend.get_array_module(np.ones(2), None, 3.0) is np
    assert backend.get_array_module(np.ones(2), a) is strict
    host = backend.to_numpy(a)
    assert type(host) is np.ndarray
    host[0] = 5.0  # a copy: the device array is untouched
    assert backend.to_numpy(a)[0] == 1.0


def test_default_dtype_is_float32_and_settable():
    assert backend.default_dtype() == np.float32
    backend.set_default_dtype("float64")
    try:
        assert backend.default_dtype() == np.float64
    finally:
        backend.set_default_dtype("float32")
    with pytest.raises(TypeError, match="float32 or float64, got int32"):
        backend.set_default_dtype("int32")


@pytest.mark.parametrize("xp_name", ["numpy", "strict"])
def test_scatter_add_sums_repeated_rows_like_add_at(xp_name):
    xp = backend.strict if xp_name == "strict" else np
    rng = np.random.default_rng(0)
    for n, V in ((0, 3), (1, 3), (50, 4), (200, 7)):
        ids, rows = rng.integers(0, V, n), rng.standard_normal((n, 5))
        want = np.zeros((V, 5))
        np.add.at(want, ids, rows)
        got = backend.scatter_add(xp.asarray(np.zeros((V, 5))), xp.asarray(ids), xp.asarray(rows))
        np.testing.assert_allclose(backend.to_numpy(got), want, rtol=1e-12, atol=1e-12)
