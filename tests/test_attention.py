"""Additive attention: gradients equal centred differences, masking is exact, errors name
the argument.

Shapes are drawn by hypothesis over N, S, Hq, Hk, A in 1..4 (explicit examples pin the
all-ones case and non-square Hq != Hk != A), on NumPy and on the strict backend, with
and without a mask, with and without an upstream gradient on the weights. The
tolerance is the project's: relative error <= 1e-7 for every input and parameter.

The gradient checks run on a fixed set of drawn examples (``derandomize=True``). On the
smallest shapes (two positions, or one feature) a gradient of the score path is a single
product of random numbers, and now and then a draw makes it so small that the centred
differences' own rounding exceeds the tolerance although the backward pass is right
(docs/derivations/attention.md#checking-the-gradients). A fixed set keeps the suite
deterministic without loosening the tolerance or leaving those shapes out.
"""

import warnings

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from minirnn import backend, gradcheck
from minirnn.functional.attention import (additive_attention_backward,
                                          additive_attention_forward,
                                          additive_attention_project_keys)

from .conftest import BACKENDS, host, on

TOL = 1e-7
dim = st.integers(min_value=1, max_value=4)
NAMES = ("query", "keys", "Wq", "Wk", "v")  # the order of the backward's gradients


def module(xp_name):
    return backend.strict if xp_name == "strict" else np


def signed(rng, shape, scale):
    """Entries of magnitude in [0.5, 1.5] * scale with random signs: none near zero."""
    return scale * rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 1.5, size=shape)


def make_inputs(rng, N, S, Hq, Hk, A, v_scale=1.0):
    """Random inputs that keep the score path measurable by centred differences.

    The keys of a row are spread apart along every feature, no weight entry is near
    zero and the pre-activations stay mostly in tanh's curved range. A gradient of the
    score path that vanishes by chance is swamped by the ~1e-11 rounding of the
    centred differences (docs/derivations/attention.md#checking-the-gradients).
    """
    grid = np.linspace(-1.5, 1.5, S)
    keys = rng.permuted(np.broadcast_to(grid[None, :, None], (N, S, Hk)), axis=1)
    return {"query": rng.standard_normal((N, Hq)),
            "keys": keys + rng.uniform(-0.1, 0.1, size=(N, S, Hk)),
            "Wq": signed(rng, (Hq, A), 0.5 / np.sqrt(Hq)),
            "Wk": signed(rng, (Hk, A), 1 / np.sqrt(Hk)),
            "v": signed(rng, A, v_scale * 1.5 / np.sqrt(A))}


def make_mask(rng, N, S):
    """About half the positions masked, but one random position per row always allowed."""
    return (np.arange(S) == rng.integers(0, S, size=(N, 1))) | (rng.random((N, S)) < 0.5)


def forward_fn(mask, precompute, with_dweights=True):
    """``check_pair``'s forward, optionally via keys_proj: its outputs are (context,
    weights), or (context,) alone when the loss reaches only the context."""
    def forward(query, keys, Wq, Wk, v):
        xp = backend.get_array_module(query)
        kp = additive_attention_project_keys(keys, Wk) if precompute else None
        context, weights, cache = additive_attention_forward(
            query, keys, Wq, Wk, v, None if mask is None else xp.asarray(mask), keys_proj=kp)
        return ((context, weights) if with_dweights else (context,)), cache
    return forward


def backward_fn(with_dweights):
    def backward(d, cache):
        return additive_attention_backward(d[0], cache, dweights=d[1] if with_dweights else None)
    return backward


def assert_passed(report):
    assert [r.arg for r in report.results] == list(NAMES), f"\n{report}"
    assert report.passed, f"\n{report}"


@pytest.mark.parametrize("xp_name", BACKENDS)
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("with_dweights", [False, True], ids=["dcontext", "dcontext+dweights"])
@settings(max_examples=20, deadline=None, derandomize=True, database=None)
@given(N=dim, S=dim, Hq=dim, Hk=dim, A=dim, seed=st.integers(0, 2**16))
@example(N=1, S=1, Hq=1, Hk=1, A=1, seed=0)
@example(N=3, S=4, Hq=2, Hk=4, A=3, seed=1)
def test_backward_matches_centered_differences(xp_name, masked, with_dweights,
                                               N, S, Hq, Hk, A, seed):
    rng = np.random.default_rng(seed)
    inputs = make_inputs(rng, N, S, Hq, Hk, A)
    mask = make_mask(rng, N, S) if masked else None
    report = gradcheck.check_pair(forward_fn(mask, False, with_dweights),
                                  backward_fn(with_dweights), inputs,
                                  op="additive_attention", tol=TOL, seed=seed,
                                  xp=module(xp_name))
    assert_passed(report)


@pytest.mark.parametrize("xp_name", BACKENDS)
@settings(max_examples=10, deadline=None, derandomize=True, database=None)
@given(N=dim, S=dim, Hq=dim, Hk=dim, A=dim, seed=st.integers(0, 2**16))
@example(N=1, S=1, Hq=1, Hk=1, A=1, seed=0)
@example(N=2, S=3, Hq=4, Hk=1, A=2, seed=1)
def test_backward_with_precomputed_keys_proj_matches_centered_differences(
        xp_name, N, S, Hq, Hk, A, seed):
    """dkeys and dWk include the path through keys_proj, which the caller computed."""
    rng = np.random.default_rng(seed)
    inputs = make_inputs(rng, N, S, Hq, Hk, A)
    report = gradcheck.check_pair(forward_fn(make_mask(rng, N, S), True), backward_fn(True),
                                  inputs, op="additive_attention", tol=TOL, seed=seed,
                                  xp=module(xp_name))
    assert_passed(report)


@pytest.mark.parametrize("xp_name", BACKENDS)
def test_keys_proj_reused_over_decoder_steps_sums_dkeys_and_dWk(xp_name):
    """A decoder that projects the keys once and attends T times sums the steps' grads."""
    rng = np.random.default_rng(0)
    N, S, T, Hq, Hk, A = 2, 4, 3, 3, 2, 5
    inputs = make_inputs(rng, N, S, Hq, Hk, A)
    inputs["query"] = rng.standard_normal((N, T, Hq))  # one query per decoder step
    mask = make_mask(rng, N, S)

    def forward(query, keys, Wq, Wk, v):
        xp = backend.get_array_module(query)
        kp = additive_attention_project_keys(keys, Wk)  # once for all T steps
        steps = [additive_attention_forward(query[:, t], keys, Wq, Wk, v, xp.asarray(mask),
                                            keys_proj=kp) for t in range(T)]
        return tuple(s[0] for s in steps), [s[2] for s in steps]

    def backward(d, caches):
        grads = [additive_attention_backward(d[t], caches[t]) for t in range(T)]
        dquery = backend.get_array_module(d[0]).stack([g[0] for g in grads], axis=1)
        return (dquery, *(sum(g[k] for g in grads) for k in range(1, 5)))

    report = gradcheck.check_pair(forward, backward, inputs, op="attention over T steps",
                                  tol=TOL, xp=module(xp_name))
    assert_passed(report)


@pytest.mark.parametrize("xp_name", BACKENDS)
def test_precomputed_keys_proj_gives_identical_outputs_and_gradients(xp_name):
    rng = np.random.default_rng(1)
    inputs = make_inputs(rng, 3, 5, 2, 4, 3)
    mask = make_mask(rng, 3, 5)
    q, k, Wq, Wk, v = on(xp_name, *inputs.values())
    m = on(xp_name, mask)
    dcontext, dweights = on(xp_name, rng.standard_normal((3, 4)), rng.standard_normal((3, 5)))
    c1, w1, cache1 = additive_attention_forward(q, k, Wq, Wk, v, m)
    c2, w2, cache2 = additive_attention_forward(
        q, k, Wq, Wk, v, m, keys_proj=additive_attention_project_keys(k, Wk))
    np.testing.assert_array_equal(host(c1), host(c2))
    np.testing.assert_array_equal(host(w1), host(w2))
    for name, a, b in zip(NAMES, additive_attention_backward(dcontext, cache1, dweights),
                          additive_attention_backward(dcontext, cache2, dweights)):
        np.testing.assert_array_equal(host(a), host(b), err_msg=f"d{name}")


@pytest.mark.parametrize("xp_name", BACKENDS)
def test_forward_matches_the_definition_position_by_position(xp_name):
    rng = np.random.default_rng(2)
    N, S, Hq, Hk, A = 3, 4, 2, 3, 5
    i = make_inputs(rng, N, S, Hq, Hk, A)
    mask = make_mask(rng, N, S)
    context, weights, _ = additive_attention_forward(*on(xp_name, *i.values()),
                                                     on(xp_name, mask))
    for n in range(N):
        e = np.array([np.tanh(i["query"][n] @ i["Wq"] + i["keys"][n, j] @ i["Wk"]) @ i["v"]
                      for j in range(S)])
        w = np.where(mask[n], np.exp(e), 0.0)
        w /= w.sum()
        np.testing.assert_allclose(host(weights)[n], w, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(host(context)[n], w @ i["keys"][n], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("xp_name", BACKENDS)
@settings(max_examples=10, deadline=None)
@given(N=dim, S=dim, Hq=dim, Hk=dim, A=dim, seed=st.integers(0, 2**16))
def test_masked_weights_are_exactly_zero_and_rows_sum_to_one(xp_name, N, S, Hq, Hk, A, seed):
    rng = np.random.default_rng(seed)
    i = make_inputs(rng, N, S, Hq, Hk, A, v_scale=10.0)
    mask = make_mask(rng, N, S)
    args = on(xp_name, *i.values())
    _, weights, cache = additive_attention_forward(*args, on(xp_name, mask))
    w = host(weights)
    assert np.all(w[~mask] == 0.0), f"masked weights {w[~mask]} are not exactly 0"
    assert np.all(w[mask] >= 0.0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-12)
    # No gradient reaches a key that cannot be attended to.
    dkeys = additive_attention_backward(on(xp_name, rng.standard_normal((N, Hk))), cache,
                                        on(xp_name, rng.standard_normal((N, S))))[1]
    assert np.all(host(dkeys)[~mask] == 0.0)


@pytest.mark.parametrize("xp_name", BACKENDS)
def test_no_dweights_equals_zero_dweights(xp_name):
    rng = np.random.default_rng(3)
    i = make_inputs(rng, 2, 3, 4, 5, 2)
    _, _, cache = additive_attention_forward(*on(xp_name, *i.values()))
    dcontext = on(xp_name, rng.standard_normal((2, 5)))
    none = additive_attention_backward(dcontext, cache)
    zero = additive_attention_backward(dcontext, cache, on(xp_name, np.zeros((2, 3))))
    for a, b in zip(none, zero):
        np.testing.assert_array_equal(host(a), host(b))


@pytest.mark.parametrize("xp_name", BACKENDS)
def test_fully_masked_row_raises_naming_mask_and_row(xp_name):
    rng = np.random.default_rng(4)
    i = make_inputs(rng, 3, 4, 2, 2, 2)
    mask = np.ones((3, 4), bool)
    mask[2] = False
    with pytest.raises(ValueError, match=r"additive_attention_forward: mask must allow at "
                                         r"least one source position in every row, got row 2"):
        additive_attention_forward(*on(xp_name, *i.values()), on(xp_name, mask))


@pytest.mark.parametrize("xp_name", BACKENDS)
@pytest.mark.parametrize("precompute", [False, True], ids=["", "keys_proj"])
def test_float32_stays_float32(xp_name, precompute):
    rng = np.random.default_rng(5)
    i = {k: a.astype(np.float32) for k, a in make_inputs(rng, 2, 3, 4, 5, 6).items()}
    q, k, Wq, Wk, v = on(xp_name, *i.values())
    kp = additive_attention_project_keys(k, Wk) if precompute else None
    context, weights, cache = additive_attention_forward(
        q, k, Wq, Wk, v, on(xp_name, make_mask(rng, 2, 3)), keys_proj=kp)
    grads = additive_attention_backward(
        on(xp_name, rng.standard_normal((2, 5)).astype(np.float32)), cache,
        on(xp_name, rng.standard_normal((2, 3)).astype(np.float32)))
    outs = {"context": context, "weights": weights, **dict(zip(["d" + n for n in NAMES], grads))}
    if kp is not None:
        outs["keys_proj"] = kp
    for name, a in outs.items():
        assert a.dtype == np.float32, f"{name} came back as {a.dtype}"


def extreme_inputs(rng, N, S, masked, dtype):
    """Scores of order 1e6 whose largest, in every row, sits at a masked position.

    With ``Wk = I`` and a key of ``+-50 sign(v)``, ``u_j = tanh(q Wq + k_j)`` is ``+-sign(v)``
    to within rounding, so that key scores ``e_j = +-sum |v|``: the largest and the
    smallest score there is. Masked positions get the largest; unmasked ones spread
    between the two by a random sign per feature.
    """
    A = 3
    v = 1e6 * rng.choice([-1.0, 1.0], size=A)
    sign = rng.choice([-1.0, 1.0], size=(N, S, A))
    mask = make_mask(rng, N, S) if masked else np.ones((N, S), bool)
    sign[~mask] = 1.0
    i = {"query": rng.standard_normal((N, 2)), "keys": 50 * sign * np.sign(v),
         "Wq": 0.1 * rng.standard_normal((2, A)), "Wk": np.eye(A), "v": v}
    return {k: a.astype(dtype) for k, a in i.items()}, (mask if masked else None)


@pytest.mark.parametrize("xp_name", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_extreme_scores_stay_finite_without_overflow_warnings(xp_name, dtype, masked):
    """Scores of order 1e6, the largest of them at masked positions, neither overflow exp
    nor give NaN: the softmax subtracts the max over the unmasked positions only."""
    rng = np.random.default_rng(6)
    N, S = 4, 6
    i, mask = extreme_inputs(rng, N, S, masked, dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        context, weights, cache = additive_attention_forward(
            *on(xp_name, *i.values()), None if mask is None else on(xp_name, mask))
        grads = additive_attention_backward(
            on(xp_name, rng.standard_normal((N, 3)).astype(dtype)), cache,
            on(xp_name, rng.standard_normal((N, S)).astype(dtype)))
    scores = host(cache.u) @ i["v"]
    assert np.abs(scores).max() > 1e6, "the scores are not extreme"
    for name, a in {"context": context, "weights": weights,
                    **dict(zip(["d" + n for n in NAMES], grads))}.items():
        assert np.all(np.isfinite(host(a))), f"{name} is not finite"
    w = host(weights)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-6)
    if mask is not None:
        assert np.all(w[~mask] == 0.0)


def bad_args(**over):
    rng = np.random.default_rng(7)
    a = {**make_inputs(rng, 2, 3, 4, 5, 6), "mask": np.ones((2, 3), bool)}
    a.update(over)
    return a


@pytest.mark.parametrize("over, exc, pattern", [
    (dict(query=np.zeros((2, 3))), ValueError,
     r"additive_attention_forward: query must have Hq = 4 features to match Wq \(4, 6\), "
     r"got query of shape \(2, 3\)"),
    (dict(query=np.zeros((3, 4))), ValueError,
     r"additive_attention_forward: query must have shape \(N=2, Hq=4\), got \(3, 4\)"),
    (dict(query=np.zeros(4)), ValueError,
     r"additive_attention_forward: query must be 2-D with shape \(N, Hq\), got 1-D"),
    (dict(keys=np.zeros((2, 3, 4))), ValueError,
     r"additive_attention_forward: keys must have Hk = 5 features to match Wk \(5, 6\), "
     r"got keys of shape \(2, 3, 4\)"),
    (dict(keys=np.zeros((2, 5))), ValueError,
     r"additive_attention_forward: keys must be 3-D with shape \(N, S, Hk\), got 2-D"),
    (dict(keys=np.zeros((2, 0, 5))), ValueError,
     r"additive_attention_forward: keys must hold at least one source position"),
    (dict(Wq=np.zeros((4, 7))), ValueError,
     r"additive_attention_forward: Wq must have shape \(Hq=4, A=6\), got \(4, 7\)"),
    (dict(Wk=np.zeros((5,))), ValueError,
     r"additive_attention_forward: Wk must be 2-D with shape \(Hk, A\), got 1-D"),
    (dict(v=np.zeros(5)), ValueError,
     r"additive_attention_forward: v must have shape \(A=6,\), got \(5,\)"),
    (dict(mask=np.ones((2, 4), bool)), ValueError,
     r"additive_attention_forward: mask must have shape \(N=2, S=3\), got \(2, 4\)"),
    (dict(mask=np.ones((2, 3))), TypeError,
     r"additive_attention_forward: mask must be a bool array of shape \(N, S\), got float64"),
    (dict(keys_proj=np.zeros((2, 3, 5))), ValueError,
     r"additive_attention_forward: keys_proj must have shape \(N=2, S=3, A=6\), got \(2, 3, 5\)"),
    (dict(v=np.zeros(6, np.float32)), TypeError,
     r"additive_attention_forward: v has dtype float32 but query has float64"),
    (dict(Wq=np.zeros((4, 6), np.int64)), TypeError,
     r"additive_attention_forward: Wq must have a float dtype \(float32 or float64\), got int64"),
])
def test_forward_rejects_bad_input_naming_the_argument(over, exc, pattern):
    with pytest.raises(exc, match=pattern):
        additive_attention_forward(**bad_args(**over))


def test_project_keys_and_backward_name_their_arguments():
    a = bad_args()
    with pytest.raises(ValueError, match=r"additive_attention_project_keys: keys must have "
                                         r"Hk = 5 features to match Wk \(5, 6\)"):
        additive_attention_project_keys(np.zeros((2, 3, 4)), a["Wk"])
    _, _, cache = additive_attention_forward(**a)
    with pytest.raises(ValueError, match=r"additive_attention_backward: dcontext must have "
                                         r"shape \(N=2, Hk=5\), got \(2, 4\)"):
        additive_attention_backward(np.zeros((2, 4)), cache)
    with pytest.raises(ValueError, match=r"additive_attention_backward: dweights must have "
                                         r"shape \(N=2, S=3\), got \(2, 5\)"):
        additive_attention_backward(np.zeros((2, 5)), cache, np.zeros((2, 5)))
    with pytest.raises(TypeError, match=r"additive_attention_backward: dcontext has dtype "
                                        r"float32 but the forward pass ran in float64"):
        additive_attention_backward(np.zeros((2, 5), np.float32), cache)


def test_check_fails_when_the_direct_context_path_to_keys_is_dropped():
    """The check can fail: without ``w_j dcontext`` in dkeys, keys alone is reported."""
    rng = np.random.default_rng(8)
    inputs = make_inputs(rng, 2, 3, 2, 3, 4)

    def wrong_backward(d, cache):
        dquery, dkeys, dWq, dWk, dv = additive_attention_backward(d[0], cache, d[1])
        return dquery, dkeys - cache.weights[:, :, None] * d[0][:, None, :], dWq, dWk, dv

    report = gradcheck.check_pair(forward_fn(make_mask(rng, 2, 3), False), wrong_backward,
                                  inputs, op="additive_attention", tol=TOL)
    failed = {r.arg for r in report.results if not r.passed}
    assert failed == {"keys"}, f"\n{report}"
