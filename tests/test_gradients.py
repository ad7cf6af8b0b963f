"""Every backward pass equals centred differences in float64, on drawn shapes.

Shapes are drawn by hypothesis over N, T, D, H in 1..4 (explicit examples pin the
degenerate N = T = H = 1 cases and non-square D != H), on NumPy and on the strict
backend. The tolerance is the project's: relative error <= 1e-7 for every input
and parameter.
"""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from minirnn import backend, gradcheck
from minirnn import functional as F

from .conftest import BACKENDS, host, on

TOL = 1e-7
dim = st.integers(min_value=1, max_value=4)


@pytest.mark.parametrize("xp_name", BACKENDS)
@pytest.mark.parametrize("op", list(gradcheck.OPS))
@settings(max_examples=12, deadline=None)
@given(N=dim, T=dim, D=dim, H=dim, seed=st.integers(0, 2**16))
@example(N=1, T=1, D=1, H=1, seed=0)
@example(N=1, T=1, D=3, H=1, seed=1)
@example(N=3, T=2, D=1, H=4, seed=2)
@example(N=2, T=4, D=5, H=2, seed=3)
def test_backward_matches_centered_differences(op, xp_name, N, T, D, H, seed):
    xp = backend.strict if xp_name == "strict" else np
    report = gradcheck.check_op(op, N=N, T=T, D=D, H=H, seed=seed, tol=TOL, xp=xp)
    assert report.results, "the check compared nothing"
    assert report.passed, f"\n{report}"


@pytest.mark.parametrize("xp_name", BACKENDS)
def test_lstm_backward_without_dc_last_equals_zero_dc_last(xp_name):
    rng = np.random.default_rng(0)
    N, T, D, H = 2, 3, 4, 5
    args = on(xp_name, rng.standard_normal((N, T, D)), rng.standard_normal((N, H)),
              rng.standard_normal((N, H)), rng.standard_normal((D, 4 * H)),
              rng.standard_normal((H, 4 * H)), rng.standard_normal(4 * H))
    _, _, cache = F.lstm_forward(*args)
    dhs = on(xp_name, rng.standard_normal((N, T, H)))
    none = F.lstm_backward(dhs, cache)
    zero = F.lstm_backward(dhs, cache, dc_last=on(xp_name, np.zeros((N, H))))
    for a, b in zip(none, zero):
        np.testing.assert_array_equal(host(a), host(b))


def test_checker_catches_a_wrong_backward():
    """The check can fail: a backward with one flipped sign is reported, by argument."""
    spec = gradcheck.OPS["rnn"]
    rng = np.random.default_rng(0)
    inputs, consts = spec.make(rng, 2, 3, 4, 5)

    def wrong_backward(d, cache):
        dx, dh0, dWx, dWh, db = spec.backward(d, cache)
        return dx, dh0, dWx, -dWh, db

    report = gradcheck.check_pair(lambda **a: spec.forward(consts, **a), wrong_backward,
                                  inputs, op="rnn", tol=TOL)
    failed = {r.arg for r in report.results if not r.passed}
    assert failed == {"Wh"}, f"\n{report}"


def test_numerical_gradient_of_a_known_function():
    x = np.array([[0.3, -1.2], [2.0, 0.5]])
    dout = np.array([[1.0, 2.0], [-1.0, 0.5]])
    num = gradcheck.numerical_gradient(lambda: x ** 3, x, dout)
    np.testing.assert_allclose(num, 3 * x ** 2 * dout, rtol=1e-9)
    assert gradcheck.rel_error(num, 3 * x ** 2 * dout) < 1e-9


def test_rel_error_is_scale_free_and_symmetric():
    a = np.array([1.0, 2.0, 3.0])
    b = a * (1 + 1e-6)
    assert gradcheck.rel_error(a, b) == pytest.approx(gradcheck.rel_error(b, a))
    assert gradcheck.rel_error(1e6 * a, 1e6 * b) == pytest.approx(gradcheck.rel_error(a, b))
    assert gradcheck.rel_error(np.zeros(3), np.zeros(3)) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        gradcheck.rel_error(np.zeros(3), np.zeros(4))


@pytest.mark.parametrize("cell, k", [("rnn", 1), ("lstm", 4), ("gru", 3)])
def test_gradient_norms_through_time_agree_with_the_sequence_backward(cell, k):
    """Entry T-1-t of the norms is ||dL/dh_t|| for the loss sum(h_{T-1} * dh_last): the dh0
    of the sequence backward run over the inputs after t, from the state the inputs up to
    t leave behind."""
    rng = np.random.default_rng(0)
    N, T, D, H = 2, 6, 3, 4
    x = rng.standard_normal((N, T, D))
    weights = (rng.standard_normal((D, k * H)), rng.standard_normal((H, k * H)),
               *(rng.standard_normal(k * H) for _ in range(2 if cell == "gru" else 1)))
    dh_last = rng.standard_normal((N, H))
    norms, caches = gradcheck.gradient_norms_through_time(cell, x, weights, dh_last)
    assert norms.shape == (T + 1,) and len(caches) == T
    assert norms[0] == pytest.approx(np.linalg.norm(dh_last), rel=1e-12)
    forward, backward = getattr(F, f"{cell}_forward"), getattr(F, f"{cell}_backward")
    zeros = [np.zeros((N, H))] * (2 if cell == "lstm" else 1)
    for t in range(-1, T - 1):  # t = -1: the initial state
        state = zeros
        if t >= 0:
            out = forward(x[:, :t + 1], *zeros, *weights)
            state = [out[0][:, -1]] + ([out[1]] if cell == "lstm" else [])
        out = forward(x[:, t + 1:], *state, *weights)
        dhs = np.zeros((N, T - 1 - t, H))
        dhs[:, -1] = dh_last
        dh_t = backward(dhs, out[-1])[1]
        assert norms[T - 1 - t] == pytest.approx(np.linalg.norm(dh_t), rel=1e-10)
    with pytest.raises(ValueError, match="cell must be one of rnn, lstm, gru, got 'tanh'"):
        gradcheck.gradient_norms_through_time("tanh", x, weights, dh_last)
