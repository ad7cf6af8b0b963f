"""Properties of the functional ops beyond their gradients.

- the step functions in a loop reproduce the sequence functions (outputs and grads);
- float32 stays float32 and float64 stays float64, for every output and gradient;
- no NaN, Inf or overflow warning on long sequences and extreme inputs;
- the gate order is PyTorch's (checked against hand-written formulas).
"""

import warnings

import numpy as np
import pytest

from minirnn import functional as F

from .conftest import BACKENDS, host, on

N, T, D, H = 3, 5, 4, 6


def make(cell, dtype=np.float64, seed=0, x_scale=1.0, T=T):
    rng = np.random.default_rng(seed)
    k = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    a = dict(x=x_scale * rng.standard_normal((N, T, D)), h0=rng.standard_normal((N, H)),
             Wx=rng.standard_normal((D, k * H)) / np.sqrt(D),
             Wh=rng.standard_normal((H, k * H)) / np.sqrt(H))
    if cell == "lstm":
        a["c0"] = rng.standard_normal((N, H))
    if cell == "gru":
        a["bx"], a["bh"] = rng.standard_normal(3 * H), rng.standard_normal(3 * H)
    else:
        a["b"] = rng.standard_normal(k * H)
    return {key: v.astype(dtype) for key, v in a.items()}


def seq_forward(cell, a):
    """(hs, extra outputs..., cache) for the sequence function, args in DESIGN order."""
    if cell == "rnn":
        return F.rnn_forward(a["x"], a["h0"], a["Wx"], a["Wh"], a["b"])
    if cell == "lstm":
        return F.lstm_forward(a["x"], a["h0"], a["c0"], a["Wx"], a["Wh"], a["b"])
    return F.gru_forward(a["x"], a["h0"], a["Wx"], a["Wh"], a["bx"], a["bh"])


@pytest.mark.parametrize("xp_name", BACKENDS)
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_step_loop_equals_sequence_function(cell, xp_name):
    a = make(cell)
    rng = np.random.default_rng(1)
    dhs = rng.standard_normal((N, T, H))
    dc_last = rng.standard_normal((N, H))
    dev = {k: on(xp_name, v) for k, v in a.items()}

    # Sequence function.
    out = seq_forward(cell, dev)
    hs, cache = out[0], out[-1]
    if cell == "lstm":
        seq_grads = F.lstm_backward(on(xp_name, dhs), cache, dc_last=on(xp_name, dc_last))
    else:
        seq_grads = {"rnn": F.rnn_backward, "gru": F.gru_backward}[cell](on(xp_name, dhs), cache)

    # The same computation as a loop of step functions.
    h, c, caches, step_hs = dev["h0"], dev.get("c0"), [], []
    for t in range(T):
        xt = dev["x"][:, t]
        if cell == "rnn":
            h, ch = F.rnn_step_forward(xt, h, dev["Wx"], dev["Wh"], dev["b"])
        elif cell == "lstm":
            h, c, ch = F.lstm_step_forward(xt, h, c, dev["Wx"], dev["Wh"], dev["b"])
        else:
            h, ch = F.gru_step_forward(xt, h, dev["Wx"], dev["Wh"], dev["bx"], dev["bh"])
        caches.append(ch)
        step_hs.append(host(h))
    np.testing.assert_allclose(host(hs), np.stack(step_hs, axis=1), rtol=0, atol=1e-12)
    if cell == "lstm":
        np.testing.assert_allclose(host(out[1]), host(c), rtol=0, atol=1e-12)

    dh = np.zeros((N, H))
    dc = dc_last
    dxs = []
    sums = None
    for t in reversed(range(T)):
        d_in = on(xp_name, dhs[:, t] + dh)
        if cell == "lstm":
            dx, dh, dc, *dW = F.lstm_step_backward(d_in, on(xp_name, dc), caches[t])
            dc = host(dc)
        else:
            step_bwd = F.rnn_step_backward if cell == "rnn" else F.gru_step_backward
            dx, dh, *dW = step_bwd(d_in, caches[t])
        dh = host(dh)
        dxs.append(host(dx))
        dW = [host(g) for g in dW]
        sums = dW if sums is None else [s + g for s, g in zip(sums, dW)]
    loop = [np.stack(dxs[::-1], axis=1), dh] + ([dc] if cell == "lstm" else []) + sums
    assert len(loop) == len(seq_grads)
    for name, got, want in zip(("dx", "dh0", "dc0/dWx", "...", "...", "..."), seq_grads, loop):
        np.testing.assert_allclose(host(got), want, rtol=0, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xp_name", BACKENDS)
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_dtype_is_preserved_through_forward_and_backward(cell, xp_name, dtype):
    dev = {k: on(xp_name, v) for k, v in make(cell, dtype).items()}
    out = seq_forward(cell, dev)
    outputs = list(out[:-1])
    dhs = on(xp_name, np.ones((N, T, H), dtype))
    bwd = {"rnn": F.rnn_backward, "lstm": F.lstm_backward, "gru": F.gru_backward}[cell]
    grads = bwd(dhs, out[-1])
    # One step too.
    x0 = dev["x"][:, 0]
    if cell == "rnn":
        h, sc = F.rnn_step_forward(x0, dev["h0"], dev["Wx"], dev["Wh"], dev["b"])
        step = [h, *F.rnn_step_backward(h, sc)]
    elif cell == "lstm":
        h, c, sc = F.lstm_step_forward(x0, dev["h0"], dev["c0"], dev["Wx"], dev["Wh"], dev["b"])
        step = [h, c, *F.lstm_step_backward(h, c, sc)]
    else:
        h, sc = F.gru_step_forward(x0, dev["h0"], dev["Wx"], dev["Wh"], dev["bx"], dev["bh"])
        step = [h, *F.gru_step_backward(h, sc)]
    for arr in outputs + list(grads) + step:
        assert arr.dtype == dtype, f"{cell}: got {arr.dtype} from {dtype} inputs"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xp_name", BACKENDS)
def test_dtype_is_preserved_by_embedding_affine_and_loss(xp_name, dtype):
    rng = np.random.default_rng(0)
    W = on(xp_name, rng.standard_normal((7, 3)).astype(dtype))
    ids = on(xp_name, rng.integers(0, 7, size=(2, 4)))
    emb, ecache = F.embedding_forward(ids, W)
    Wa = on(xp_name, rng.standard_normal((3, 7)).astype(dtype))
    ba = on(xp_name, rng.standard_normal(7).astype(dtype))
    logits, acache = F.affine_forward(emb, Wa, ba)
    loss, dlogits = F.softmax_cross_entropy(logits, ids)
    dx, dWa, dba = F.affine_backward(dlogits, acache)
    dW = F.embedding_backward(dx, ecache)
    for arr in (emb, logits, loss, dlogits, dx, dWa, dba, dW):
        assert arr.dtype == dtype


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_thousand_steps_of_large_inputs_stay_finite_without_warnings(cell):
    a = make(cell, np.float32, x_scale=10.0, T=1000)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        out = seq_forward(cell, a)
        grads = {"lstm": F.lstm_backward, "gru": F.gru_backward}[cell](
            np.ones((N, 1000, H), np.float32), out[-1])
    for arr in list(out[:-1]) + list(grads):
        assert np.isfinite(arr).all()


def test_softmax_cross_entropy_of_huge_logits_is_finite_and_right():
    logits = np.array([[[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]]])  # (1, 2, 3)
    targets = np.array([[0, 1]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, dlogits = F.softmax_cross_entropy(logits, targets)
    # position 0 is certain and right (loss 0); position 1 is wrong by 2e4 nats.
    assert float(loss) == pytest.approx((0.0 + 2e4) / 2)
    assert np.isfinite(dlogits).all()
    np.testing.assert_allclose(dlogits[0, 1], [0.0, -0.5, 0.5])


def test_softmax_cross_entropy_matches_the_definition_and_respects_the_mask():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 3, 5))
    targets = rng.integers(0, 5, size=(2, 3))
    mask = np.array([[True, False, True], [False, False, True]])
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    nll = -np.log(np.take_along_axis(p, targets[..., None], -1))[..., 0]
    loss, dlogits = F.softmax_cross_entropy(logits, targets, mask)
    assert float(loss) == pytest.approx(nll[mask].mean(), rel=1e-12)
    assert np.all(dlogits[~mask] == 0)
    with pytest.raises(ValueError, match="mask selects no positions"):
        F.softmax_cross_entropy(logits, targets, np.zeros((2, 3), bool))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_of_extreme_inputs(dtype):
    x = np.array([-1e3, -50.0, 0.0, 50.0, 1e3], dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = F.sigmoid(x)
    assert s.dtype == dtype
    np.testing.assert_allclose(s, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-20 if dtype == np.float64 else 0)
    # (1 + tanh(x/2)) / 2 is accurate to a rounding error of 1 in absolute terms (what a
    # gate multiplies with); deep in the negative tail it rounds to 0 like float32 would.
    mid = np.linspace(-30, 30, 121).astype(dtype)
    exact = 1 / (1 + np.exp(-mid.astype(np.float64)))
    np.testing.assert_allclose(F.sigmoid(mid), exact, rtol=0, atol=4 * np.finfo(dtype).eps)


def test_lstm_gate_order_is_i_f_g_o():
    """Only the forget gate open, everything else shut: c_t = c_{t-1}, h_t = 0."""
    D, H = 2, 3
    x, h, c = np.zeros((1, D)), np.zeros((1, H)), np.array([[0.5, -1.0, 2.0]])
    Wx, Wh = np.zeros((D, 4 * H)), np.zeros((H, 4 * H))
    b = np.concatenate([-50 * np.ones(H), 50 * np.ones(H), np.zeros(H), -50 * np.ones(H)])
    h1, c1, _ = F.lstm_step_forward(x, h, c, Wx, Wh, b)
    np.testing.assert_allclose(c1, c, atol=1e-12)
    np.testing.assert_allclose(h1, 0, atol=1e-12)


def test_gru_reset_is_applied_after_the_recurrent_product():
    """PyTorch form: n = tanh(x Wx_n + bx_n + r * (h Wh_n + bh_n)); bh_n sits inside r *."""
    rng = np.random.default_rng(0)
    D, H = 2, 3
    x, h = rng.standard_normal((1, D)), rng.standard_normal((1, H))
    Wx, Wh = rng.standard_normal((D, 3 * H)), rng.standard_normal((H, 3 * H))
    bx, bh = rng.standard_normal(3 * H), rng.standard_normal(3 * H)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    ax, ah = x @ Wx + bx, h @ Wh + bh
    r, z = sig(ax[:, :H] + ah[:, :H]), sig(ax[:, H:2 * H] + ah[:, H:2 * H])
    n = np.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:])
    want = (1 - z) * n + z * h
    got, _ = F.gru_step_forward(x, h, Wx, Wh, bx, bh)
    np.testing.assert_allclose(got, want, rtol=1e-13)


def test_embedding_backward_adds_repeated_ids():
    W = np.arange(12, dtype=np.float64).reshape(4, 3)
    ids = np.array([[1, 1, 3]])
    out, cache = F.embedding_forward(ids, W)
    np.testing.assert_array_equal(out[0], W[[1, 1, 3]])
    dW = F.embedding_backward(np.ones((1, 3, 3)), cache)
    np.testing.assert_array_equal(dW, [[0, 0, 0], [2, 2, 2], [0, 0, 0], [1, 1, 1]])
