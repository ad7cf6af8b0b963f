"""Conv-LSTM and same-padding convolution: gradients, agreement with the LSTM, errors.

Every backward pass equals centred differences in float64 (relative error <= 1e-7 for
every input and parameter) for k = 1 and k = 3, on shapes drawn by hypothesis
(N <= 2, T <= 3, C, F <= 3, H, W <= 4; explicit examples pin C != F and H != W), on
NumPy and on the strict backend. The sizes are tiny on purpose: a convolution's check
perturbs every weight of every kernel offset, and runs the whole sequence twice for each.
"""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from minirnn import backend, gradcheck
from minirnn.functional import lstm_backward, lstm_forward
from minirnn.functional.conv import (col2im, conv2d_same_backward, conv2d_same_forward,
                                     im2col)
from minirnn.functional.convlstm import (convlstm_backward, convlstm_forward,
                                         convlstm_step_backward, convlstm_step_forward)

from .conftest import BACKENDS, host, on

TOL = 1e-7
XP = {"numpy": np, "strict": backend.strict}
batch, steps = st.integers(1, 2), st.integers(1, 3)
channels, side = st.integers(1, 3), st.integers(1, 4)


def make(rng, N, T, C, F, H, W, k, dtype=np.float64):
    """Inputs of ``convlstm_forward`` as float64 host arrays (gate inputs of order one)."""
    a = dict(x=rng.standard_normal((N, T, C, H, W)),
             h0=rng.standard_normal((N, F, H, W)),
             c0=rng.standard_normal((N, F, H, W)),
             Wx=rng.standard_normal((4 * F, C, k, k)) / np.sqrt(C * k * k),
             Wh=rng.standard_normal((4 * F, F, k, k)) / np.sqrt(F * k * k),
             b=0.5 * rng.standard_normal(4 * F))
    return {name: v.astype(dtype) for name, v in a.items()}


def as_step(a):
    """The first step of ``make``'s sequence, named as ``convlstm_step_forward`` wants."""
    return dict(x=a["x"][:, 0], h_prev=a["h0"], c_prev=a["c0"], Wx=a["Wx"], Wh=a["Wh"], b=a["b"])


def seq_forward(**a):
    hs, c_last, cache = convlstm_forward(**a)
    return (hs, c_last), cache


def seq_backward(d, cache):  # both outputs carry a gradient: dhs and dc_last
    return convlstm_backward(d[0], cache, dc_last=d[1])


def step_forward(**a):
    h, c, cache = convlstm_step_forward(**a)
    return (h, c), cache


def step_backward(d, cache):
    return convlstm_step_backward(d[0], d[1], cache)


def assert_passed(report):
    assert report.results, "the check compared nothing"
    assert report.passed, f"\n{report}"


# --------------------------------------------------------------------------------------
# Gradients against centred differences
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("xp_name", BACKENDS)
@pytest.mark.parametrize("k", [1, 3])
@settings(max_examples=8, deadline=None)
@given(N=batch, T=steps, C=channels, F=channels, H=side, W=side, seed=st.integers(0, 2**16))
@example(N=2, T=3, C=3, F=2, H=4, W=3, seed=0)
@example(N=1, T=2, C=1, F=3, H=2, W=4, seed=1)
def test_convlstm_backward_matches_centered_differences(xp_name, k, N, T, C, F, H, W, seed):
    inputs = make(np.random.default_rng(seed), N, T, C, F, H, W, k)
    report = gradcheck.check_pair(seq_forward, seq_backward, inputs, op=f"convlstm k={k}",
                                  tol=TOL, seed=seed + 1, xp=XP[xp_name])
    assert [r.arg for r in report.results] == ["x", "h0", "c0", "Wx", "Wh", "b"]
    assert_passed(report)


@pytest.mark.parametrize("xp_name", BACKENDS)
@pytest.mark.parametrize("k", [1, 3])
@settings(max_examples=8, deadline=None)
@given(N=batch, C=channels, F=channels, H=side, W=side, seed=st.integers(0, 2**16))
@example(N=2, C=3, F=2, H=4, W=3, seed=0)
@example(N=1, C=1, F=3, H=1, W=4, seed=1)
def test_convlstm_step_backward_matches_centered_differences(xp_name, k, N, C, F, H, W, seed):
    inputs = as_step(make(np.random.default_rng(seed), N, 1, C, F, H, W, k))
    report = gradcheck.check_pair(step_forward, step_backward, inputs,
                                  op=f"convlstm_step k={k}", tol=TOL, seed=seed + 1,
                                  xp=XP[xp_name])
    assert_passed(report)


@pytest.mark.parametrize("xp_name", BACKENDS)
@pytest.mark.parametrize("k", [1, 3])
@settings(max_examples=10, deadline=None)
@given(N=batch, C=channels, F=channels, H=side, W=side, seed=st.integers(0, 2**16))
@example(N=2, C=3, F=2, H=4, W=3, seed=0)
@example(N=1, C=2, F=1, H=1, W=2, seed=1)
def test_conv2d_same_and_im2col_backward_match_centered_differences(xp_name, k, N, C, F, H,
                                                                     W, seed):
    rng = np.random.default_rng(seed)
    x, Wk = rng.standard_normal((N, C, H, W)), rng.standard_normal((F, C, k, k))
    conv = gradcheck.check_pair(
        lambda **a: (lambda out, cache: ((out,), cache))(*conv2d_same_forward(**a)),
        lambda d, cache: conv2d_same_backward(d[0], cache),
        {"x": x, "W": Wk}, op=f"conv2d_same k={k}", tol=TOL, seed=seed + 1, xp=XP[xp_name])
    cols = gradcheck.check_pair(
        lambda x: ((im2col(x, k),), x.shape),
        lambda d, x_shape: (col2im(d[0], x_shape, k),),
        {"x": x}, op=f"im2col k={k}", tol=TOL, seed=seed + 2, xp=XP[xp_name])
    assert_passed(conv + cols)


# --------------------------------------------------------------------------------------
# What the forward pass computes
# --------------------------------------------------------------------------------------

def reference_conv(x, Wk):
    """Same-padding convolution written as the definition: a sum over kernel offsets."""
    F, C, k, _ = Wk.shape
    N, _, H, W = x.shape
    p = k // 2
    xpad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    out = np.zeros((N, F, H, W))
    for u in range(k):
        for v in range(k):
            out += np.einsum("fc,nchw->nfhw", Wk[:, :, u, v], xpad[:, :, u:u + H, v:v + W])
    return out


@pytest.mark.parametrize("xp_name", BACKENDS)
@pytest.mark.parametrize("k", [1, 3, 5])
def test_conv2d_same_forward_is_the_definition(xp_name, k):
    rng = np.random.default_rng(k)
    x, Wk = rng.standard_normal((2, 3, 4, 6)), rng.standard_normal((5, 3, k, k))
    out, _ = conv2d_same_forward(*on(xp_name, x, Wk))
    assert out.shape == (2, 5, 4, 6)
    np.testing.assert_allclose(host(out), reference_conv(x, Wk), rtol=1e-12, atol=1e-12)
    cols = host(im2col(on(xp_name, x), k))
    np.testing.assert_allclose(cols @ Wk.reshape(5, -1).T,
                               reference_conv(x, Wk).transpose(0, 2, 3, 1).reshape(-1, 5),
                               rtol=1e-12, atol=1e-12)


def lstm_weights(a):
    """The LSTM weights that a 1 x 1 Conv-LSTM kernel stands for."""
    return a["Wx"][:, :, 0, 0].T, a["Wh"][:, :, 0, 0].T, a["b"]


@pytest.mark.parametrize("xp_name", BACKENDS)
def test_convlstm_with_1x1_kernel_on_1x1_images_is_the_lstm(xp_name):
    N, T, C, F = 3, 4, 2, 5
    rng = np.random.default_rng(0)
    a = make(rng, N, T, C, F, 1, 1, 1)
    dhs, dc_last = rng.standard_normal((N, T, F)), rng.standard_normal((N, F))

    hs, c_last, cache = convlstm_forward(**{n: on(xp_name, v) for n, v in a.items()})
    grads = convlstm_backward(on(xp_name, dhs[..., None, None]), cache,
                              dc_last=on(xp_name, dc_last[..., None, None]))
    args = (a["x"][..., 0, 0], a["h0"][..., 0, 0], a["c0"][..., 0, 0], *lstm_weights(a))
    hs_l, c_last_l, cache_l = lstm_forward(*on(xp_name, *args))
    dx, dh0, dc0, dWx, dWh, db = lstm_backward(on(xp_name, dhs), cache_l,
                                               dc_last=on(xp_name, dc_last))

    close = dict(rtol=1e-13, atol=1e-14)  # equal up to rounding (other product order)
    np.testing.assert_allclose(host(hs)[..., 0, 0], host(hs_l), **close)
    np.testing.assert_allclose(host(c_last)[..., 0, 0], host(c_last_l), **close)
    conv_as_lstm = (host(grads[0])[..., 0, 0], host(grads[1])[..., 0, 0],
                    host(grads[2])[..., 0, 0], host(grads[3])[:, :, 0, 0].T,
                    host(grads[4])[:, :, 0, 0].T, host(grads[5]))
    for name, got, want in zip(["dx", "dh0", "dc0", "dWx", "dWh", "db"], conv_as_lstm,
                               host(dx, dh0, dc0, dWx, dWh, db)):
        np.testing.assert_allclose(got, want, err_msg=name, **close)


def test_convlstm_with_1x1_kernel_is_an_lstm_over_every_pixel():
    """k = 1 mixes no pixels: each pixel of each image is one LSTM sequence of the batch."""
    N, T, C, F, H, W = 2, 3, 3, 2, 3, 4
    a = make(np.random.default_rng(1), N, T, C, F, H, W, 1)
    hs, c_last, _ = convlstm_forward(**a)
    seq_rows = lambda s: s.transpose(0, 3, 4, 1, 2).reshape(N * H * W, T, -1)  # (NHW, T, .)
    img_rows = lambda s: s.transpose(0, 2, 3, 1).reshape(N * H * W, -1)        # (NHW, .)
    hs_l, c_last_l, _ = lstm_forward(seq_rows(a["x"]), img_rows(a["h0"]), img_rows(a["c0"]),
                                     *lstm_weights(a))
    np.testing.assert_allclose(seq_rows(hs), hs_l, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(img_rows(c_last), c_last_l, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("xp_name", BACKENDS)
@pytest.mark.parametrize("k", [1, 3])
def test_step_loop_equals_sequence(xp_name, k):
    N, T, C, F, H, W = 2, 4, 3, 2, 4, 3
    rng = np.random.default_rng(k)
    a = make(rng, N, T, C, F, H, W, k)
    dhs, dc_last = rng.standard_normal((N, T, F, H, W)), rng.standard_normal((N, F, H, W))
    x, h, c, Wx, Wh, b = on(xp_name, a["x"], a["h0"], a["c0"], a["Wx"], a["Wh"], a["b"])

    hs, c_last, cache = convlstm_forward(x, h, c, Wx, Wh, b)
    seq_grads = convlstm_backward(on(xp_name, dhs), cache, dc_last=on(xp_name, dc_last))

    caches, step_hs = [], []
    for t in range(T):
        h, c, step_cache = convlstm_step_forward(x[:, t], h, c, Wx, Wh, b)
        caches.append(step_cache)
        step_hs.append(host(h))
    np.testing.assert_allclose(np.stack(step_hs, axis=1), host(hs), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(c), host(c_last), rtol=1e-12, atol=1e-12)

    dh, dc = np.zeros((N, F, H, W)), dc_last
    dx, dWx, dWh, db = np.zeros_like(a["x"]), 0, 0, 0
    for t in range(T - 1, -1, -1):
        g = host(*convlstm_step_backward(*on(xp_name, dh + dhs[:, t], dc), caches[t]))
        dx[:, t], dh, dc = g[0], g[1], g[2]
        dWx, dWh, db = dWx + g[3], dWh + g[4], db + g[5]
    for name, got, want in zip(["dx", "dh0", "dc0", "dWx", "dWh", "db"],
                               (dx, dh, dc, dWx, dWh, db), host(*seq_grads)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("xp_name", BACKENDS)
def test_convlstm_backward_without_dc_last_equals_zero_dc_last(xp_name):
    a = make(np.random.default_rng(2), 2, 3, 2, 3, 3, 4, 3)
    _, _, cache = convlstm_forward(**{n: on(xp_name, v) for n, v in a.items()})
    dhs = on(xp_name, np.random.default_rng(3).standard_normal((2, 3, 3, 3, 4)))
    none = convlstm_backward(dhs, cache)
    zero = convlstm_backward(dhs, cache, dc_last=on(xp_name, np.zeros((2, 3, 3, 4))))
    for got, want in zip(none, zero):
        np.testing.assert_array_equal(host(got), host(want))


@pytest.mark.parametrize("xp_name", BACKENDS)
@pytest.mark.parametrize("H, W", [(1, 1), (3, 2)])
def test_backward_leaves_the_upstream_gradients_unchanged(xp_name, H, W):
    """The cell updates dc in place; on 1 x 1 images a channels-last view would alias it."""
    N, T, C, F = 1, 2, 2, 3
    rng = np.random.default_rng(5)
    a = {n: on(xp_name, v) for n, v in make(rng, N, T, C, F, H, W, 3).items()}
    dhs, dc, dh = (rng.standard_normal(s) for s in [(N, T, F, H, W), (N, F, H, W), (N, F, H, W)])
    _, _, cache = convlstm_forward(**a)
    args = on(xp_name, dhs, dc)
    convlstm_backward(args[0], cache, dc_last=args[1])
    _, _, step_cache = convlstm_step_forward(**as_step(a))
    step_args = on(xp_name, dh, dc)
    convlstm_step_backward(*step_args, step_cache)
    for got, want in zip(host(*args, *step_args), (dhs, dc, dh, dc)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("xp_name", BACKENDS)
def test_float32_stays_float32(xp_name):
    N, T, C, F, H, W, k = 2, 3, 1, 2, 4, 5, 3
    rng = np.random.default_rng(4)
    a = {n: on(xp_name, v) for n, v in make(rng, N, T, C, F, H, W, k, np.float32).items()}
    f32 = lambda d: on(xp_name, rng.standard_normal(d).astype(np.float32))

    hs, c_last, cache = convlstm_forward(**a)
    outs = [hs, c_last, *convlstm_backward(f32((N, T, F, H, W)), cache, f32((N, F, H, W)))]
    h, c, cache = convlstm_step_forward(**as_step(a))
    outs += [h, c, *convlstm_step_backward(f32((N, F, H, W)), f32((N, F, H, W)), cache)]
    out, cache = conv2d_same_forward(a["x"][:, 0], a["Wx"])
    outs += [out, *conv2d_same_backward(f32((N, 4 * F, H, W)), cache)]
    cols = im2col(a["x"][:, 0], k)
    outs += [cols, col2im(cols, (N, C, H, W), k)]
    assert [o.dtype for o in outs] == [np.float32] * len(outs)


# --------------------------------------------------------------------------------------
# Bad input names the argument, what was expected and what came
# --------------------------------------------------------------------------------------

N, T, C, F, H, W, k = 2, 3, 2, 3, 4, 5, 3


def convlstm_args(**over):
    a = make(np.random.default_rng(0), N, T, C, F, H, W, k)
    a.update(over)
    return a


@pytest.mark.parametrize("over, exc, pattern", [
    (dict(x=np.zeros((N, T, C + 1, H, W))), ValueError,
     r"convlstm_forward: x must have C = 2 channels to match Wx \(12, 2, 3, 3\), "
     r"got x of shape \(2, 3, 3, 4, 5\)"),
    (dict(Wx=np.zeros((4 * F + 1, C, k, k))), ValueError,
     r"convlstm_forward: Wx must have 4F = 12 output channels to match Wh "
     r"\(12, 3, 3, 3\), got \(13, 2, 3, 3\)"),
    (dict(Wh=np.zeros((4 * F, F + 1, k, k))), ValueError,
     r"convlstm_forward: Wh must have shape \(4F, F, k, k\) = \(16, 4, 3, 3\), "
     r"got \(12, 4, 3, 3\)"),
    (dict(Wh=np.zeros((4 * F, F, 2, 2))), ValueError,
     r"convlstm_forward: Wh must have an odd kernel size k .*got k = 2"),
    (dict(Wx=np.zeros((4 * F, C, 4, 4))), ValueError,
     r"convlstm_forward: Wx must have an odd kernel size k .*got k = 4"),
    (dict(Wx=np.zeros((4 * F, C, 3, 1))), ValueError,
     r"convlstm_forward: Wx must have a square k x k kernel, got shape \(12, 2, 3, 1\)"),
    (dict(Wx=np.zeros((4 * F, C, 1, 1))), ValueError,
     r"convlstm_forward: Wx must have the kernel size of Wh, k = 3, got k = 1 "
     r"in shape \(12, 2, 1, 1\)"),
    (dict(h0=np.zeros((N, F, H, W + 1))), ValueError,
     r"convlstm_forward: h0 must have shape \(N=2, F=3, H=4, W=5\), got \(2, 3, 4, 6\)"),
    (dict(h0=np.zeros((N, F, H))), ValueError,
     r"convlstm_forward: h0 must be 4-D with shape \(N, F, H, W\), got 3-D"),
    (dict(c0=np.zeros((N + 1, F, H, W))), ValueError,
     r"convlstm_forward: c0 must have shape \(N=2, F=3, H=4, W=5\), got \(3, 3, 4, 5\)"),
    (dict(x=np.zeros((N, T, C, H, W), dtype=np.int64)), TypeError,
     r"convlstm_forward: x must have a float dtype \(float32 or float64\), got int64"),
    (dict(x=np.zeros((N, C, H, W))), ValueError,
     r"convlstm_forward: x must be 5-D \(N, T, C, H, W\) for a sequence, got 4-D"),
    (dict(x=np.zeros((N, 0, C, H, W))), ValueError, r"at least one sequence, one time step"),
    (dict(b=np.zeros(4 * F - 1)), ValueError,
     r"convlstm_forward: b must have shape \(4F=12,\), got \(11,\)"),
    (dict(h0=np.zeros((N, F, H, W), np.float32)), TypeError,
     r"convlstm_forward: h0 has dtype float32 but x has float64"),
])
def test_convlstm_forward_rejects_bad_input(over, exc, pattern):
    with pytest.raises(exc, match=pattern):
        convlstm_forward(**convlstm_args(**over))


def test_step_and_backward_functions_name_their_own_arguments():
    a = convlstm_args()
    step = as_step(a)
    with pytest.raises(ValueError, match=r"convlstm_step_forward: h_prev must have shape "
                                         r"\(N=2, F=3, H=4, W=5\), got \(2, 3, 5, 4\)"):
        convlstm_step_forward(**{**step, "h_prev": np.zeros((N, F, W, H))})
    with pytest.raises(ValueError, match=r"convlstm_step_forward: x must have C = 2 channels"):
        convlstm_step_forward(**{**step, "x": np.zeros((N, C + 1, H, W))})
    with pytest.raises(TypeError, match=r"convlstm_step_forward: x must have a float dtype"):
        convlstm_step_forward(**{**step, "x": np.zeros((N, C, H, W), dtype=np.int32)})
    _, _, cache = convlstm_step_forward(**step)
    with pytest.raises(ValueError, match=r"convlstm_step_backward: dc must have shape "
                                         r"\(N=2, F=3, H=4, W=5\), got \(2, 3, 5, 4\)"):
        convlstm_step_backward(np.zeros((N, F, H, W)), np.zeros((N, F, W, H)), cache)
    _, _, cache = convlstm_forward(**a)
    with pytest.raises(ValueError, match=r"convlstm_backward: dhs must have shape "
                                         r"\(N=2, T=3, F=3, H=4, W=5\), got \(2, 3, 3, 5, 4\)"):
        convlstm_backward(np.zeros((N, T, F, W, H)), cache)
    with pytest.raises(TypeError, match=r"convlstm_backward: dc_last has dtype float32"):
        convlstm_backward(np.zeros((N, T, F, H, W)), cache,
                          dc_last=np.zeros((N, F, H, W), np.float32))


def test_convolution_rejects_even_kernels_and_mismatched_channels():
    x = np.zeros((N, C, H, W))
    with pytest.raises(ValueError, match=r"im2col: k must be odd and positive .*got k = 2"):
        im2col(x, 2)
    with pytest.raises(TypeError, match=r"im2col: x must have a float dtype"):
        im2col(x.astype(np.int64), 3)
    with pytest.raises(ValueError, match=r"col2im: k must be odd and positive .*got k = 0"):
        col2im(np.zeros((N * H * W, C)), x.shape, 0)
    with pytest.raises(ValueError, match=r"col2im: dcols must have shape "
                                         r"\(N\*H\*W=40, C\*k\*k=18\), got \(40, 2\)"):
        col2im(np.zeros((N * H * W, C)), x.shape, 3)
    with pytest.raises(ValueError, match=r"conv2d_same_forward: W must have an odd kernel "
                                         r"size k .*got k = 2 in shape \(4, 2, 2, 2\)"):
        conv2d_same_forward(x, np.zeros((4, C, 2, 2)))
    with pytest.raises(ValueError, match=r"conv2d_same_forward: x must have C = 3 channels "
                                         r"to match W \(4, 3, 1, 1\), got x of shape"):
        conv2d_same_forward(x, np.zeros((4, C + 1, 1, 1)))
    _, cache = conv2d_same_forward(x, np.zeros((4, C, 3, 3)))
    with pytest.raises(ValueError, match=r"conv2d_same_backward: dout must have shape "
                                         r"\(N=2, F=4, H=4, W=5\)"):
        conv2d_same_backward(np.zeros((N, 4, H, W + 1)), cache)
