"""The transformer's functional ops: layer norm, GELU and causal multi-head self-attention.

- every backward pass equals centred differences in float64 (relative error <= 1e-7 for
  every input and parameter), on hypothesis-drawn shapes that include T = 1, one head,
  head size 1, E not a power of two and N = 1, on NumPy and on the strict backend;
- the forward passes and all gradients equal PyTorch's in float64 (``F.layer_norm`` and
  ``nn.LayerNorm``, ``F.gelu(approximate="tanh")``, ``F.scaled_dot_product_attention``
  with ``is_causal=True`` and the same projections);
- the key/value-cache step, position by position, gives the full forward's outputs;
- float32 stays float32; extreme scores stay finite; bad input names the argument.

The gradient checks run on a fixed set of drawn examples (``derandomize=True``), as
tests/test_attention.py does, so the suite is deterministic.
"""

import warnings

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from minirnn import backend, gradcheck
from minirnn import functional as F
from minirnn.functional.self_attention import KVCache

from .conftest import BACKENDS, host, on

TOL = 1e-7
ATTENTION_ARGS = ("x", "Wqkv", "bqkv", "Wo", "bo")  # the order of the backward's gradients


def module(xp_name):
    return backend.strict if xp_name == "strict" else np


def layer_norm_inputs(rng, shape):
    """Rows with their own offset and spread, so the mean and the variance both matter."""
    E = shape[-1]
    x = rng.standard_normal(shape) * rng.uniform(0.5, 2.0, shape[:-1] + (1,))
    x += rng.uniform(-2.0, 2.0, shape[:-1] + (1,))
    return {"x": x, "gamma": rng.uniform(0.5, 1.5, E) * rng.choice([-1.0, 1.0], E),
            "beta": rng.standard_normal(E)}


def signed(rng, shape, scale):
    """Entries of magnitude in [0.5, 1.5] * scale with random signs: none near zero."""
    return scale * rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 1.5, size=shape)


def attention_inputs(rng, N, T, n_heads, hs):
    """Weights that give scores of order one: softmaxes neither uniform nor one-hot.

    No weight entry is near zero: with E = 1 a single small entry of Wqkv or Wo would
    make a whole gradient small enough for the ~1e-11 rounding of the centred differences
    to show (docs/derivations/self-attention.md#checking-the-gradients).
    """
    E = n_heads * hs
    return {"x": rng.standard_normal((N, T, E)),
            "Wqkv": signed(rng, (E, 3 * E), 1.5 / np.sqrt(E)),
            "bqkv": 0.5 * rng.standard_normal(3 * E),
            "Wo": signed(rng, (E, E), 1 / np.sqrt(E)),
            "bo": 0.5 * rng.standard_normal(E)}


def attention_pair(n_heads):
    """``check_pair``'s forward and backward for causal self-attention."""
    def forward(x, Wqkv, bqkv, Wo, bo):
        y, cache = F.causal_self_attention_forward(x, Wqkv, bqkv, Wo, bo, n_heads)
        return (y,), cache

    def backward(d, cache):
        return F.causal_self_attention_backward(d[0], cache)
    return forward, backward


def assert_report(report, names):
    assert [r.arg for r in report.results] == list(names), f"\n{report}"
    assert report.passed, f"\n{report}"


# --------------------------------------------------------------------------------------
# Gradients against centred differences
# --------------------------------------------------------------------------------------

def layer_norm_pair(eps):
    def forward(x, gamma, beta):
        y, cache = F.layer_norm_forward(x, gamma, beta, eps=eps)
        return (y,), cache

    def backward(d, cache):
        return F.layer_norm_backward(d[0], cache)
    return forward, backward


@pytest.mark.parametrize("xp_name", BACKENDS)
@settings(max_examples=15, deadline=None, derandomize=True, database=None)
@given(N=st.integers(1, 3), T=st.integers(1, 3), E=st.integers(1, 7),
       eps=st.sampled_from([1e-5, 1e-2, 1.0]), seed=st.integers(0, 2**16))
@example(N=1, T=1, E=1, eps=1e-5, seed=0)
@example(N=1, T=2, E=2, eps=1e-5, seed=1)
@example(N=2, T=3, E=3, eps=1e-5, seed=2)
@example(N=2, T=3, E=6, eps=1.0, seed=3)
def test_layer_norm_backward_matches_centered_differences(xp_name, N, T, E, eps, seed):
    """With E = 2, xhat is +-1 up to eps / var, so dx is of order eps: measurable by
    centred differences only with eps of the order of the variance
    (docs/derivations/layer-norm.md#checking-the-gradients)."""
    rng = np.random.default_rng(seed)
    eps = 1.0 if E == 2 else eps
    report = gradcheck.check_pair(*layer_norm_pair(eps), layer_norm_inputs(rng, (N, T, E)),
                                  op="layer_norm", tol=TOL, seed=seed, xp=module(xp_name))
    assert_report(report, ("x", "gamma", "beta"))


@pytest.mark.parametrize("xp_name", BACKENDS)
def test_layer_norm_backward_on_2d_input(xp_name):
    """Any leading shape works: (R, E) rows here."""
    rng = np.random.default_rng(3)
    report = gradcheck.check_pair(*layer_norm_pair(0.5), layer_norm_inputs(rng, (4, 5)),
                                  op="layer_norm", tol=TOL, xp=module(xp_name))
    assert_report(report, ("x", "gamma", "beta"))


@pytest.mark.parametrize("xp_name", BACKENDS)
@settings(max_examples=10, deadline=None, derandomize=True, database=None)
@given(N=st.integers(1, 3), T=st.integers(1, 4), E=st.integers(1, 6),
       seed=st.integers(0, 2**16))
@example(N=1, T=1, E=1, seed=0)
def test_gelu_backward_matches_centered_differences(xp_name, N, T, E, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-4.0, 4.0, (N, T, E))  # the curved part and both tails
    report = gradcheck.check_pair(
        lambda x: ((lambda y, c: ((y,), c))(*F.gelu_forward(x))),
        lambda d, cache: (F.gelu_backward(d[0], cache),),
        {"x": x}, op="gelu", tol=TOL, seed=seed, xp=module(xp_name))
    assert_report(report, ("x",))


@pytest.mark.parametrize("xp_name", BACKENDS)
@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(N=st.integers(1, 3), T=st.integers(1, 5), n_heads=st.integers(1, 3),
       hs=st.integers(1, 3), seed=st.integers(0, 2**16))
@example(N=1, T=1, n_heads=1, hs=1, seed=0)   # one position: the softmax is constant 1
@example(N=1, T=4, n_heads=1, hs=3, seed=1)   # one head
@example(N=2, T=3, n_heads=3, hs=1, seed=2)   # head size 1
@example(N=2, T=5, n_heads=2, hs=3, seed=3)   # E = 6, not a power of two
def test_causal_self_attention_backward_matches_centered_differences(xp_name, N, T, n_heads,
                                                                      hs, seed):
    rng = np.random.default_rng(seed)
    forward, backward = attention_pair(n_heads)
    report = gradcheck.check_pair(forward, backward, attention_inputs(rng, N, T, n_heads, hs),
                                  op="causal_self_attention", tol=TOL, seed=seed,
                                  xp=module(xp_name))
    assert_report(report, ATTENTION_ARGS)


def split_qkv_pair(n_heads, bk):
    """Attention with the q, k and v blocks of Wqkv and bqkv as separate inputs, so a wrong
    dq or dk cannot hide inside the larger gradient of the v block.

    The key bias ``bk`` is held fixed: its gradient is exactly 0 (it adds ``q . bk`` to
    every score of a row, which the softmax ignores), so there is no relative error to
    measure; ``test_the_key_bias_gets_no_gradient`` checks that instead.
    """
    def forward(x, Wq, Wk, Wv, bq, bv, Wo, bo):
        xp = backend.get_array_module(x)
        y, cache = F.causal_self_attention_forward(
            x, xp.concatenate([Wq, Wk, Wv], axis=1), xp.concatenate([bq, xp.asarray(bk), bv]),
            Wo, bo, n_heads)
        return (y,), cache

    def backward(d, cache):
        dx, dWqkv, dbqkv, dWo, dbo = F.causal_self_attention_backward(d[0], cache)
        E = dx.shape[-1]
        q, k, v = slice(0, E), slice(E, 2 * E), slice(2 * E, 3 * E)
        return dx, dWqkv[:, q], dWqkv[:, k], dWqkv[:, v], dbqkv[q], dbqkv[v], dWo, dbo
    return forward, backward


def split_inputs(a):
    """(inputs without bk, bk) from ``attention_inputs``."""
    E = a["x"].shape[-1]
    Wq, Wk, Wv = (np.ascontiguousarray(a["Wqkv"][:, i * E:(i + 1) * E]) for i in range(3))
    bq, bk, bv = (a["bqkv"][i * E:(i + 1) * E].copy() for i in range(3))
    return {"x": a["x"], "Wq": Wq, "Wk": Wk, "Wv": Wv, "bq": bq, "bv": bv,
            "Wo": a["Wo"], "bo": a["bo"]}, bk


SPLIT_ARGS = ("x", "Wq", "Wk", "Wv", "bq", "bv", "Wo", "bo")


@pytest.mark.parametrize("xp_name", BACKENDS)
@settings(max_examples=10, deadline=None, derandomize=True, database=None)
@given(N=st.integers(2, 3), T=st.integers(3, 5), n_heads=st.integers(1, 3),
       hs=st.integers(1, 3), seed=st.integers(0, 2**16))
@example(N=2, T=3, n_heads=1, hs=1, seed=0)
@example(N=2, T=4, n_heads=3, hs=2, seed=1)
def test_each_of_the_q_k_v_blocks_gets_its_own_right_gradient(xp_name, N, T, n_heads, hs,
                                                               seed):
    """At least two sequences of three positions: dq and dk come only from the rows that
    attend to two or more positions, and with fewer of them a block's gradient is now and
    then small enough by chance for the centred differences' rounding to show
    (docs/derivations/self-attention.md#checking-the-gradients). The check on the whole
    arrays above covers N = 1 and T = 1 and 2."""
    rng = np.random.default_rng(seed)
    inputs, bk = split_inputs(attention_inputs(rng, N, T, n_heads, hs))
    report = gradcheck.check_pair(*split_qkv_pair(n_heads, bk), inputs,
                                  op="causal_self_attention", tol=TOL, seed=seed,
                                  xp=module(xp_name))
    assert_report(report, SPLIT_ARGS)


@pytest.mark.parametrize("xp_name", BACKENDS)
def test_the_key_bias_gets_no_gradient(xp_name):
    """bk adds q . bk to every score of a row: the outputs ignore it, and dbk is 0."""
    rng = np.random.default_rng(4)
    N, T, n_heads, hs = 2, 5, 2, 3
    E = n_heads * hs
    a = attention_inputs(rng, N, T, n_heads, hs)
    y, cache = F.causal_self_attention_forward(*on(xp_name, *a.values()), n_heads)
    dbqkv = host(F.causal_self_attention_backward(
        on(xp_name, rng.standard_normal((N, T, E))), cache)[2])
    assert np.abs(dbqkv[E:2 * E]).max() < 1e-14 * np.abs(dbqkv).max(), dbqkv
    assert np.abs(dbqkv[:E]).min() > 1e-6 and np.abs(dbqkv[2 * E:]).min() > 1e-6
    a["bqkv"][E:2 * E] += 10 * rng.standard_normal(E)
    y2, _ = F.causal_self_attention_forward(*on(xp_name, *a.values()), n_heads)
    np.testing.assert_allclose(host(y2), host(y), rtol=0, atol=1e-13)


# --------------------------------------------------------------------------------------
# The checks can fail
# --------------------------------------------------------------------------------------

def failed_args(report):
    return {r.arg for r in report.results if not r.passed}


def test_check_catches_attention_without_the_scale_on_dq():
    rng = np.random.default_rng(10)
    inputs, bk = split_inputs(attention_inputs(rng, 2, 4, 2, 3))
    forward, backward = split_qkv_pair(2, bk)

    def wrong_backward(d, cache):
        grads = list(backward(d, cache))
        hs = cache.qkv.shape[-1]
        grads[1] = grads[1] * np.sqrt(hs)  # dWq as if dq forgot its 1 / sqrt(hs)
        grads[4] = grads[4] * np.sqrt(hs)
        return tuple(grads)

    report = gradcheck.check_pair(forward, wrong_backward, inputs,
                                  op="causal_self_attention", tol=TOL)
    assert failed_args(report) == {"Wq", "bq"}, f"\n{report}"


def test_check_catches_attention_that_ignores_the_causal_mask_in_the_backward():
    """A backward that lets the masked (future) positions pass gradient is reported."""
    rng = np.random.default_rng(11)
    forward, backward = attention_pair(2)

    def wrong_backward(d, cache):
        uniform = np.full_like(cache.att, 1.0 / cache.att.shape[-1])
        return backward(d, cache._replace(att=uniform))

    report = gradcheck.check_pair(forward, wrong_backward, attention_inputs(rng, 2, 4, 2, 3),
                                  op="causal_self_attention", tol=TOL)
    assert {"x", "Wqkv", "bqkv"} <= failed_args(report), f"\n{report}"


def test_check_catches_layer_norm_without_the_variance_term():
    rng = np.random.default_rng(12)

    def wrong_backward(d, cache):
        dx, dgamma, dbeta = F.layer_norm_backward(d[0], cache)
        xhat, rstd, gamma = cache
        dxhat = d[0] * gamma
        return dx + rstd * xhat * (dxhat * xhat).mean(axis=-1, keepdims=True), dgamma, dbeta

    report = gradcheck.check_pair(layer_norm_pair(1e-5)[0], wrong_backward,
                                  layer_norm_inputs(rng, (2, 3, 5)), op="layer_norm", tol=TOL)
    assert failed_args(report) == {"x"}, f"\n{report}"


def test_check_catches_gelu_without_the_slope_of_its_gate():
    rng = np.random.default_rng(13)
    report = gradcheck.check_pair(
        lambda x: ((lambda y, c: ((y,), c))(*F.gelu_forward(x))),
        lambda d, cache: (d[0] * cache.phi,),  # y = x phi with phi taken as a constant
        {"x": rng.uniform(-3, 3, (2, 3, 4))}, op="gelu", tol=TOL)
    assert failed_args(report) == {"x"}, f"\n{report}"


# --------------------------------------------------------------------------------------
# PyTorch, float64: forward and every gradient
# --------------------------------------------------------------------------------------

def max_rel(a, b):
    return gradcheck.rel_error(a, b)


@pytest.mark.parametrize("xp_name", BACKENDS)
def test_layer_norm_matches_torch(xp_name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(20)
    a = layer_norm_inputs(rng, (3, 4, 6))
    dy = rng.standard_normal((3, 4, 6))
    y, cache = F.layer_norm_forward(*on(xp_name, a["x"], a["gamma"], a["beta"]), eps=1e-3)
    grads = F.layer_norm_backward(on(xp_name, dy), cache)

    ln = torch.nn.LayerNorm(6, eps=1e-3, dtype=torch.float64)
    with torch.no_grad():
        ln.weight.copy_(torch.from_numpy(a["gamma"]))
        ln.bias.copy_(torch.from_numpy(a["beta"]))
    tx = torch.tensor(a["x"], requires_grad=True)
    ty = ln(tx)
    ty.backward(torch.from_numpy(dy))
    functional = torch.nn.functional.layer_norm(torch.from_numpy(a["x"]), (6,),
                                                ln.weight, ln.bias, 1e-3)
    np.testing.assert_allclose(functional.detach().numpy(), ty.detach().numpy(), rtol=0,
                               atol=1e-15)
    for name, ours, theirs in [("y", y, ty), ("dx", grads[0], tx.grad),
                               ("dgamma", grads[1], ln.weight.grad),
                               ("dbeta", grads[2], ln.bias.grad)]:
        err = max_rel(host(ours), theirs.detach().numpy())
        assert err < 1e-13, f"{name}: relative error {err:.2e} from torch"


@pytest.mark.parametrize("xp_name", BACKENDS)
def test_gelu_matches_torch_tanh_approximation(xp_name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(21)
    x = np.concatenate([rng.uniform(-6, 6, 50), [-30.0, -3.0, 0.0, 0.5, 3.0, 30.0]])
    dy = rng.standard_normal(x.shape)
    y, cache = F.gelu_forward(on(xp_name, x))
    dx = F.gelu_backward(on(xp_name, dy), cache)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.gelu(tx, approximate="tanh")
    ty.backward(torch.from_numpy(dy))
    # In the left tail (1 + tanh u) / 2 cancels, in torch's formula and in ours: both are
    # accurate there to a rounding error in absolute terms, hence the atol.
    np.testing.assert_allclose(host(y), ty.detach().numpy(), rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(host(dx), tx.grad.numpy(), rtol=1e-13, atol=1e-14)
    # and it is the tanh form, not the exact erf GELU (they differ by up to ~5e-4)
    erf = torch.nn.functional.gelu(torch.from_numpy(x)).numpy()
    assert np.abs(host(y) - erf).max() > 1e-5


def torch_causal_attention(torch, a, n_heads, dy):
    """The same layer in PyTorch: one projection, heads as contiguous column slices,
    ``scaled_dot_product_attention(is_causal=True)``, the output projection."""
    t = {k: torch.tensor(v, requires_grad=True) for k, v in a.items()}
    N, T, E = a["x"].shape
    hs = E // n_heads
    q, k, v = (t["x"] @ t["Wqkv"] + t["bqkv"]).split(E, dim=-1)
    heads = [m.reshape(N, T, n_heads, hs).transpose(1, 2) for m in (q, k, v)]
    z = torch.nn.functional.scaled_dot_product_attention(*heads, is_causal=True)
    y = z.transpose(1, 2).reshape(N, T, E) @ t["Wo"] + t["bo"]
    y.backward(torch.from_numpy(dy))
    return y.detach().numpy(), [t[k].grad.numpy() for k in ATTENTION_ARGS]


@pytest.mark.parametrize("xp_name", BACKENDS)
@pytest.mark.parametrize("N, T, n_heads, hs", [(2, 7, 3, 4), (1, 1, 1, 5), (3, 5, 4, 1)])
def test_causal_self_attention_matches_torch_sdpa(xp_name, N, T, n_heads, hs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(22)
    a = attention_inputs(rng, N, T, n_heads, hs)
    dy = rng.standard_normal(a["x"].shape)
    y, cache = F.causal_self_attention_forward(*on(xp_name, *a.values()), n_heads)
    grads = F.causal_self_attention_backward(on(xp_name, dy), cache)
    ty, tgrads = torch_causal_attention(torch, a, n_heads, dy)
    for name, ours, theirs in zip(("y",) + tuple("d" + k for k in ATTENTION_ARGS),
                                  (y, *grads), (ty, *tgrads)):
        err = max_rel(host(ours), theirs)
        assert err < 1e-13, f"{name}: relative error {err:.2e} from torch"


# --------------------------------------------------------------------------------------
# Attention: causality, the softmax, extreme scores
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("xp_name", BACKENDS)
def test_attention_weights_are_causal_and_rows_sum_to_one(xp_name):
    rng = np.random.default_rng(30)
    N, T, n_heads, hs = 2, 6, 2, 3
    a = attention_inputs(rng, N, T, n_heads, hs)
    y, cache = F.causal_self_attention_forward(*on(xp_name, *a.values()), n_heads)
    att = host(cache.att)
    assert att.shape == (N, n_heads, T, T)
    future = np.triu(np.ones((T, T), bool), 1)
    assert np.all(att[..., future] == 0.0), "a position attends to a later one"
    assert np.all(att[..., ~future] > 0.0)
    np.testing.assert_allclose(att.sum(axis=-1), 1.0, rtol=1e-14)
    # Changing the inputs after position t leaves the outputs up to t bit for bit alone.
    x2 = a["x"].copy()
    x2[:, 4:] = rng.standard_normal((N, T - 4, n_heads * hs))
    y2, _ = F.causal_self_attention_forward(*on(xp_name, x2, *list(a.values())[1:]), n_heads)
    np.testing.assert_array_equal(host(y2)[:, :4], host(y)[:, :4])
    assert not np.allclose(host(y2)[:, 4:], host(y)[:, 4:])


@pytest.mark.parametrize("xp_name", BACKENDS)
def test_forward_matches_the_definition_head_by_head(xp_name):
    """Loops over sequences, heads and positions, written from the equations alone."""
    rng = np.random.default_rng(31)
    N, T, n_heads, hs = 2, 4, 3, 2
    E = n_heads * hs
    a = attention_inputs(rng, N, T, n_heads, hs)
    y, _ = F.causal_self_attention_forward(*on(xp_name, *a.values()), n_heads)
    qkv = a["x"] @ a["Wqkv"] + a["bqkv"]
    want = np.zeros((N, T, E))
    for n in range(N):
        for h in range(n_heads):
            cols = slice(h * hs, (h + 1) * hs)
            q, k, v = (qkv[n, :, b * E:(b + 1) * E][:, cols] for b in range(3))
            for t in range(T):
                s = np.array([q[t] @ k[j] / np.sqrt(hs) for j in range(t + 1)])
                w = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
                want[n, t, cols] = w @ v[:t + 1]
    want = want @ a["Wo"] + a["bo"]
    np.testing.assert_allclose(host(y), want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("xp_name", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_scores_stay_finite_without_warnings(xp_name, dtype):
    """Scores of order 1e5 (and a later position with the largest score of all, which the
    mask hides) neither overflow exp nor give NaN, forward or backward."""
    rng = np.random.default_rng(32)
    N, T, n_heads, hs = 2, 5, 2, 2
    a = attention_inputs(rng, N, T, n_heads, hs)
    a["Wqkv"][:, :2 * n_heads * hs] *= 300.0  # q and k: scores ~ 1e5
    a["x"][:, -1] *= 100.0                    # the last key is largest: masked for t < T-1
    a = {k: v.astype(dtype) for k, v in a.items()}
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        y, cache = F.causal_self_attention_forward(*on(xp_name, *a.values()), n_heads)
        grads = F.causal_self_attention_backward(
            on(xp_name, rng.standard_normal((N, T, n_heads * hs)).astype(dtype)), cache)
    scores = host(cache.qkv[0] @ cache.qkv[1].transpose(0, 1, 3, 2))
    assert np.abs(scores).max() > 1e5, "the scores are not extreme"
    for name, arr in zip(("y",) + tuple("d" + k for k in ATTENTION_ARGS), (y, *grads)):
        assert np.all(np.isfinite(host(arr))), f"{name} is not finite"
    np.testing.assert_allclose(host(cache.att).sum(axis=-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_norm_of_constant_and_offset_rows(dtype):
    """A constant row (variance 0) gives beta exactly; rows far from 0 keep their shape."""
    E = 8
    gamma, beta = np.full(E, 2.0, dtype), np.arange(E, dtype=dtype)
    x = np.stack([np.full(E, 3.0), 1e3 + np.linspace(-1, 1, E)]).astype(dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y, cache = F.layer_norm_forward(x, gamma, beta)
        dx, _, _ = F.layer_norm_backward(np.ones_like(x), cache)
    np.testing.assert_array_equal(y[0], beta)
    ref = np.linspace(-1, 1, E)
    ref = (ref - ref.mean()) / np.sqrt(ref.var() + 1e-5)
    np.testing.assert_allclose(y[1], 2 * ref + beta, rtol=0, atol=1e-3 if dtype == np.float32
                               else 1e-10)
    assert np.all(np.isfinite(dx))
    # a constant upstream gradient changes nothing: y moves with the mean-free xhat only
    np.testing.assert_allclose(dx, 0, atol=1e-3 if dtype == np.float32 else 1e-9)


# --------------------------------------------------------------------------------------
# The key/value cache
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("xp_name", BACKENDS)
@pytest.mark.parametrize("N, T, n_heads, hs", [(2, 7, 3, 2), (1, 1, 1, 1), (3, 5, 1, 4)])
def test_stepping_with_the_kv_cache_equals_the_full_forward(xp_name, N, T, n_heads, hs):
    rng = np.random.default_rng(40)
    a = attention_inputs(rng, N, T, n_heads, hs)
    x, *weights = on(xp_name, *a.values())
    y, _ = F.causal_self_attention_forward(x, *weights, n_heads)
    kv = F.causal_self_attention_kv_cache(N, T + 2, weights[0], n_heads)
    assert kv.length == 0
    for t in range(T):
        y_t, kv = F.causal_self_attention_step(x[:, t], kv, *weights, n_heads)
        assert kv.length == t + 1
        np.testing.assert_allclose(host(y_t), host(y)[:, t], rtol=0, atol=1e-13,
                                   err_msg=f"position {t}")


@pytest.mark.parametrize("xp_name", BACKENDS)
def test_kv_cache_prefilled_from_a_forward_pass_continues_like_the_full_forward(xp_name):
    rng = np.random.default_rng(41)
    N, T, P, n_heads, hs = 2, 8, 5, 2, 3
    a = attention_inputs(rng, N, T, n_heads, hs)
    x, *weights = on(xp_name, *a.values())
    y, _ = F.causal_self_attention_forward(x, *weights, n_heads)
    y_prompt, prompt_cache = F.causal_self_attention_forward(x[:, :P], *weights, n_heads)
    kv = F.causal_self_attention_kv_cache(N, T, weights[0], n_heads, cache=prompt_cache)
    assert kv.length == P
    np.testing.assert_allclose(host(y_prompt), host(y)[:, :P], rtol=0, atol=1e-13)
    for t in range(P, T):
        y_t, kv = F.causal_self_attention_step(x[:, t], kv, *weights, n_heads)
        np.testing.assert_allclose(host(y_t), host(y)[:, t], rtol=0, atol=1e-13,
                                   err_msg=f"position {t}")
    with pytest.raises(ValueError, match=r"causal_self_attention_step: kv must have room for "
                                         r"one more position, got a full cache \(length = "
                                         r"max_len = 8\)"):
        F.causal_self_attention_step(x[:, 0], kv, *weights, n_heads)


def test_the_step_reads_only_the_filled_positions():
    """NaN in the unfilled part of the buffers never reaches y_t: each step attends over
    positions 0..t only, O(t) work, not the whole buffer."""
    rng = np.random.default_rng(42)
    N, T, n_heads, hs = 2, 4, 2, 2
    a = attention_inputs(rng, N, T, n_heads, hs)
    y, _ = F.causal_self_attention_forward(*a.values(), n_heads)
    kv = F.causal_self_attention_kv_cache(N, 50, a["Wqkv"], n_heads)
    kv.k[...] = np.nan
    kv.v[...] = np.nan
    for t in range(T):
        y_t, kv = F.causal_self_attention_step(a["x"][:, t], kv, *list(a.values())[1:], n_heads)
        np.testing.assert_allclose(y_t, y[:, t], rtol=0, atol=1e-13)
    assert np.isnan(kv.k[:, :, T:]).all()


# --------------------------------------------------------------------------------------
# Dtypes
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("xp_name", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved_by_every_op(xp_name, dtype):
    rng = np.random.default_rng(50)
    N, T, n_heads, hs = 2, 3, 2, 3
    E = n_heads * hs
    a = {k: v.astype(dtype) for k, v in attention_inputs(rng, N, T, n_heads, hs).items()}
    x, *weights = on(xp_name, *a.values())
    dy = on(xp_name, rng.standard_normal((N, T, E)).astype(dtype))
    out = {}
    out["y"], cache = F.causal_self_attention_forward(x, *weights, n_heads)
    out.update(zip(("d" + k for k in ATTENTION_ARGS),
                   F.causal_self_attention_backward(dy, cache)))
    kv = F.causal_self_attention_kv_cache(N, T, weights[0], n_heads, cache=cache)
    out["kv.k"], out["kv.v"] = kv.k, kv.v
    kv = F.causal_self_attention_kv_cache(N, T, weights[0], n_heads)
    out["y_t"], kv = F.causal_self_attention_step(x[:, 0], kv, *weights, n_heads)
    ln = {k: on(xp_name, v.astype(dtype)) for k, v in layer_norm_inputs(rng, (N, T, E)).items()}
    out["layer_norm y"], cache = F.layer_norm_forward(ln["x"], ln["gamma"], ln["beta"])
    out.update(zip(("layer_norm dx", "dgamma", "dbeta"), F.layer_norm_backward(dy, cache)))
    out["gelu y"], cache = F.gelu_forward(x)
    out["gelu dx"] = F.gelu_backward(dy, cache)
    for name, arr in out.items():
        assert arr.dtype == dtype, f"{name} came back as {arr.dtype} from {np.dtype(dtype)}"
        assert isinstance(arr, backend.StrictArray) == (xp_name == "strict"), name


# --------------------------------------------------------------------------------------
# Bad input names the argument
# --------------------------------------------------------------------------------------

def attention_args(**over):
    rng = np.random.default_rng(60)
    a = {**attention_inputs(rng, 2, 3, 2, 3), "n_heads": 2}  # E = 6
    a.update(over)
    return a


@pytest.mark.parametrize("over, exc, pattern", [
    (dict(n_heads=4), ValueError,
     r"causal_self_attention_forward: n_heads must divide E = 6 \(the width of Wqkv\) into "
     r"equal heads, got n_heads = 4"),
    (dict(n_heads=0), ValueError,
     r"causal_self_attention_forward: n_heads must be a positive int, got 0"),
    (dict(n_heads=2.0), TypeError,
     r"causal_self_attention_forward: n_heads must be a positive int, got 2.0 \(float\)"),
    (dict(Wqkv=np.zeros((6, 12))), ValueError,
     r"causal_self_attention_forward: Wqkv must have shape \(E=6, 3E=18\), got \(6, 12\)"),
    (dict(Wqkv=np.zeros(18)), ValueError,
     r"causal_self_attention_forward: Wqkv must be 2-D with shape \(E, 3E\), got 1-D"),
    (dict(bqkv=np.zeros(12)), ValueError,
     r"causal_self_attention_forward: bqkv must have shape \(3E=18,\), got \(12,\)"),
    (dict(Wo=np.zeros((6, 5))), ValueError,
     r"causal_self_attention_forward: Wo must have shape \(E=6, E=6\), got \(6, 5\)"),
    (dict(bo=np.zeros(5)), ValueError,
     r"causal_self_attention_forward: bo must have shape \(E=6,\), got \(5,\)"),
    (dict(x=np.zeros((2, 3, 5))), ValueError,
     r"causal_self_attention_forward: x must have E = 6 features to match Wqkv \(6, 18\), "
     r"got x of shape \(2, 3, 5\)"),
    (dict(x=np.zeros((3, 6))), ValueError,
     r"causal_self_attention_forward: x must be 3-D with shape \(N, T, E\), got 2-D"),
    (dict(x=np.zeros((2, 0, 6))), ValueError,
     r"causal_self_attention_forward: x must hold at least one sequence and one position"),
    (dict(x=np.zeros((2, 3, 6), np.int64)), TypeError,
     r"causal_self_attention_forward: x must have a float dtype \(float32 or float64\), "
     r"got int64"),
    (dict(bo=np.zeros(6, np.float32)), TypeError,
     r"causal_self_attention_forward: bo has dtype float32 but x has float64"),
])
def test_attention_forward_rejects_bad_input_naming_the_argument(over, exc, pattern):
    with pytest.raises(exc, match=pattern):
        F.causal_self_attention_forward(**attention_args(**over))


def test_attention_backward_step_and_kv_cache_name_their_arguments():
    a = attention_args()
    n_heads = a.pop("n_heads")
    _, cache = F.causal_self_attention_forward(**a, n_heads=n_heads)
    op = "causal_self_attention_backward"
    with pytest.raises(ValueError, match=rf"{op}: dy must have shape \(N=2, T=3, E=6\), "
                                         r"got \(2, 4, 6\)"):
        F.causal_self_attention_backward(np.zeros((2, 4, 6)), cache)
    with pytest.raises(TypeError, match=rf"{op}: dy has dtype float32 but the forward pass "
                                        "ran in float64"):
        F.causal_self_attention_backward(np.zeros((2, 3, 6), np.float32), cache)

    weights = [a[k] for k in ATTENTION_ARGS[1:]]
    kv = F.causal_self_attention_kv_cache(2, 4, a["Wqkv"], n_heads)
    op = "causal_self_attention_step"
    with pytest.raises(ValueError, match=rf"{op}: x_t must have shape \(N=2, E=6\), got \(3, 6\)"):
        F.causal_self_attention_step(np.zeros((3, 6)), kv, *weights, n_heads)
    with pytest.raises(ValueError, match=rf"{op}: x_t must be 2-D with shape \(N, E\), got 3-D"):
        F.causal_self_attention_step(a["x"], kv, *weights, n_heads)
    with pytest.raises(TypeError, match=rf"{op}: kv must be a KVCache"):
        F.causal_self_attention_step(a["x"][:, 0], (kv.k, kv.v), *weights, n_heads)
    with pytest.raises(ValueError, match=rf"{op}: kv must hold 3 heads of size 2 to match Wqkv"):
        F.causal_self_attention_step(a["x"][:, 0], kv, *weights, 3)
    with pytest.raises(TypeError, match=rf"{op}: kv.k has dtype float32 but x_t has float64"):
        F.causal_self_attention_step(a["x"][:, 0], KVCache(kv.k.astype(np.float32),
                                                           kv.v.astype(np.float32), 0),
                                     *weights, n_heads)

    op = "causal_self_attention_kv_cache"
    with pytest.raises(ValueError, match=rf"{op}: max_len must be a positive int, got 0"):
        F.causal_self_attention_kv_cache(2, 0, a["Wqkv"], n_heads)
    with pytest.raises(ValueError, match=rf"{op}: n_heads must divide E = 6"):
        F.causal_self_attention_kv_cache(2, 4, a["Wqkv"], 5)
    with pytest.raises(ValueError, match=rf"{op}: cache must come from a forward pass over "
                                         r"N = 2 sequences of at most max_len = 2 positions .* "
                                         r"got N = 2, T = 3"):
        F.causal_self_attention_kv_cache(2, 2, a["Wqkv"], n_heads, cache=cache)
    with pytest.raises(TypeError, match=rf"{op}: cache must be the SelfAttentionCache"):
        F.causal_self_attention_kv_cache(2, 4, a["Wqkv"], n_heads, cache=(1, 2))
    with pytest.raises(TypeError, match=rf"{op}: cache has dtype float64 but Wqkv has float32"):
        F.causal_self_attention_kv_cache(2, 4, a["Wqkv"].astype(np.float32), n_heads,
                                         cache=cache)
    with pytest.raises(TypeError, match=rf"{op}: N must be a positive int, got 2.0 \(float\)"):
        F.causal_self_attention_kv_cache(2.0, 4, a["Wqkv"], n_heads)


@pytest.mark.parametrize("over, exc, pattern", [
    (dict(gamma=np.ones(5)), ValueError,
     r"layer_norm_forward: gamma must have shape \(E=4,\), got \(5,\)"),
    (dict(beta=np.ones((1, 4))), ValueError,
     r"layer_norm_forward: beta must be 1-D with shape \(E\), got 2-D"),
    (dict(beta=np.ones(4, np.float32)), TypeError,
     r"layer_norm_forward: beta has dtype float32 but x has float64"),
    (dict(x=np.ones((2, 3, 4), np.int32)), TypeError,
     r"layer_norm_forward: x must have a float dtype \(float32 or float64\), got int32"),
    (dict(x=[[1.0, 2.0]]), TypeError,
     r"layer_norm_forward: x must be an array of shape \(\.\.\., E\), got list"),
    (dict(x=np.ones((2, 0))), ValueError,
     r"layer_norm_forward: x must have at least one feature on its last axis"),
    (dict(eps=0.0), ValueError, r"layer_norm_forward: eps must be a positive number, got 0.0"),
    (dict(eps=-1e-5), ValueError, r"layer_norm_forward: eps must be a positive number, "
                                  r"got -1e-05"),
    (dict(eps="1e-5"), TypeError, r"layer_norm_forward: eps must be a positive number, "
                                  r"got '1e-5' \(str\)"),
])
def test_layer_norm_rejects_bad_input_naming_the_argument(over, exc, pattern):
    a = {"x": np.ones((2, 3, 4)), "gamma": np.ones(4), "beta": np.zeros(4)}
    a.update(over)
    with pytest.raises(exc, match=pattern):
        F.layer_norm_forward(**a)


def test_layer_norm_and_gelu_backward_name_their_arguments():
    _, cache = F.layer_norm_forward(np.ones((2, 3, 4)), np.ones(4), np.zeros(4))
    with pytest.raises(ValueError, match=r"layer_norm_backward: dy must have shape "
                                         r"\(2, 3, 4\), got \(2, 3, 5\)"):
        F.layer_norm_backward(np.zeros((2, 3, 5)), cache)
    _, cache = F.gelu_forward(np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match=r"gelu_backward: dy has dtype float64 but the "
                                        r"forward pass ran in float32"):
        F.gelu_backward(np.ones((2, 3)), cache)
    with pytest.raises(TypeError, match=r"gelu_forward: x must have a float dtype"):
        F.gelu_forward(np.ones(3, np.int64))
