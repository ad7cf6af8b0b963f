"""Optimizers, clipping and schedules against their formulas written out independently."""

import json
import math

import numpy as np
import pytest

from minirnn import backend, optim
from minirnn.optim import (SGD, Adagrad, Adam, AdamW, Cosine, LinearWarmup, RMSProp, StepDecay,
                           clip_grad_norm, clip_grad_value)

SHAPES = {"W": (3, 4), "b": (4,)}


def make_problem(seed=0, dtype=np.float64):
    """Parameters, zero grads of the same shapes, a fixed gradient for each of 3 steps, and
    a copy of the starting parameters."""
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(size=s).astype(dtype) for k, s in SHAPES.items()}
    grads = {k: np.zeros_like(p) for k, p in params.items()}
    fixed = [{k: rng.normal(size=s).astype(dtype) for k, s in SHAPES.items()} for _ in range(3)]
    return params, grads, fixed, {k: p.copy() for k, p in params.items()}


def run(opt, grads, fixed):
    for g_t in fixed:
        for k in grads:
            grads[k][...] = g_t[k]
        opt.step()


def reference(rule, p0, fixed):
    """Apply ``rule(p, g, state, t) -> p`` entry by entry, on fresh copies (t from 1)."""
    out = {}
    for k, p in p0.items():
        p, state = p.copy(), {}
        for t, g_t in enumerate(fixed, start=1):
            p = rule(p, g_t[k], state, t)
        out[k] = p
    return out


def assert_params_close(params, expected):
    for k in expected:
        np.testing.assert_allclose(params[k], expected[k], rtol=1e-12, atol=1e-14, err_msg=k)


@pytest.mark.parametrize("mu, nesterov, wd", [(0.0, False, 0.0), (0.9, False, 0.0),
                                              (0.9, True, 0.0), (0.5, True, 0.1)])
def test_sgd_matches_formula(mu, nesterov, wd):
    params, grads, fixed, p0 = make_problem()
    lr = 0.1

    def rule(p, g, s, t):
        g = g + wd * p
        s["b"] = mu * s.get("b", 0.0) + g
        d = (g + mu * s["b"] if nesterov else s["b"]) if mu else g
        return p - lr * d

    run(SGD(params, grads, lr=lr, momentum=mu, nesterov=nesterov, weight_decay=wd), grads, fixed)
    assert_params_close(params, reference(rule, p0, fixed))
    for k in grads:  # weight decay must not leak into the caller's gradients
        np.testing.assert_array_equal(grads[k], fixed[-1][k])


def test_adagrad_matches_formula():
    params, grads, fixed, p0 = make_problem()

    def rule(p, g, s, t):
        s["G"] = s.get("G", 0.0) + g ** 2
        return p - 0.5 * g / (np.sqrt(s["G"]) + 1e-8)

    run(Adagrad(params, grads, lr=0.5), grads, fixed)
    assert_params_close(params, reference(rule, p0, fixed))


def test_rmsprop_matches_formula():
    params, grads, fixed, p0 = make_problem()

    def rule(p, g, s, t):
        s["v"] = 0.9 * s.get("v", 0.0) + 0.1 * g ** 2
        return p - 0.01 * g / (np.sqrt(s["v"]) + 1e-6)

    run(RMSProp(params, grads, lr=0.01, alpha=0.9, eps=1e-6), grads, fixed)
    assert_params_close(params, reference(rule, p0, fixed))


def adam_rule(lr, b1, b2, eps, l2=0.0, decoupled=0.0):
    def rule(p, g, s, t):
        p = p - lr * decoupled * p
        g = g + l2 * p
        s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g ** 2
        m_hat, v_hat = s["m"] / (1 - b1 ** t), s["v"] / (1 - b2 ** t)
        return p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return rule


@pytest.mark.parametrize("wd", [0.0, 0.2])
def test_adam_matches_formula_with_l2_weight_decay(wd):
    params, grads, fixed, p0 = make_problem()
    run(Adam(params, grads, lr=0.01, betas=(0.8, 0.95), eps=1e-7, weight_decay=wd), grads, fixed)
    assert_params_close(params, reference(adam_rule(0.01, 0.8, 0.95, 1e-7, l2=wd), p0, fixed))


def test_adamw_matches_decoupled_formula():
    params, grads, fixed, p0 = make_problem()
    run(AdamW(params, grads, lr=0.01, betas=(0.8, 0.95), weight_decay=0.3), grads, fixed)
    expected = reference(adam_rule(0.01, 0.8, 0.95, 1e-8, decoupled=0.3), p0, fixed)
    assert_params_close(params, expected)


@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_adam_first_step_moves_each_entry_by_lr_times_sign_of_grad(cls):
    params, grads, fixed, p0 = make_problem(seed=1)
    run(cls(params, grads, lr=0.003, eps=1e-14, weight_decay=0.0), grads, fixed[:1])
    for k in params:
        np.testing.assert_allclose(params[k] - p0[k], -0.003 * np.sign(fixed[0][k]), rtol=1e-9)


def test_adamw_decay_is_decoupled_while_adam_decay_enters_the_moments():
    lr, wd = 0.01, 0.5
    p0 = {"w": np.array([2.0, -2.0, 1.0])}
    g = {"w": np.array([0.1, -0.1, -0.2])}  # 0.1 < wd * 2: L2 flips the first two signs
    results = {}
    for name, cls, decay in [("adamw", AdamW, wd), ("adam_l2", Adam, wd), ("plain", Adam, 0.0)]:
        params, grads = {"w": p0["w"].copy()}, {"w": g["w"].copy()}
        cls(params, grads, lr=lr, eps=1e-14, weight_decay=decay).step()
        results[name] = params["w"]
    # AdamW = the plain Adam step plus a shrink of lr * wd * p.
    np.testing.assert_allclose(results["adamw"], results["plain"] - lr * wd * p0["w"], rtol=1e-12)
    # Adam's L2 lives in the gradient, so the first step is lr * sign(g + wd * p).
    np.testing.assert_allclose(results["adam_l2"], p0["w"] - lr * np.sign(g["w"] + wd * p0["w"]),
                               rtol=1e-12)
    assert not np.allclose(results["adamw"], results["adam_l2"])


ALL = [(SGD, dict(momentum=0.9, nesterov=True, weight_decay=0.01)), (Adagrad, {}),
       (RMSProp, dict(alpha=0.9)), (Adam, dict(weight_decay=0.01)), (AdamW, {})]


@pytest.mark.parametrize("cls, kw", ALL)
def test_step_updates_the_parameter_arrays_in_place(cls, kw):
    params, grads, fixed, _ = make_problem()
    before = {k: (id(p), p.copy()) for k, p in params.items()}
    view = params["W"][0]  # a Module may hold a view; it must see the update
    run(cls(params, grads, lr=0.05, **kw), grads, fixed)
    for k, (ident, old) in before.items():
        assert id(params[k]) == ident, f"params[{k!r}] was rebound"
        assert not np.allclose(params[k], old), f"params[{k!r}] did not change"
    np.testing.assert_array_equal(view, params["W"][0])


@pytest.mark.parametrize("cls, kw", ALL)
def test_float32_parameters_and_state_stay_float32(cls, kw):
    params, grads, fixed, _ = make_problem(dtype=np.float32)
    opt = cls(params, grads, lr=0.05, **kw)
    run(opt, grads, fixed)
    assert all(p.dtype == np.float32 for p in params.values())
    assert all(a.dtype == np.float32 for a in opt.state_dict()["arrays"].values())


def quadratic_grads(params, grads):
    """g = A * (p - target): the gradient of a separable quadratic, so steps depend on p."""
    for k, p in params.items():
        grads[k][...] = (1.0 + np.arange(p.size).reshape(p.shape)) * (p - 0.5)


@pytest.mark.parametrize("cls, kw", ALL)
def test_state_dict_round_trip_resumes_bit_for_bit(cls, kw):
    params, grads, _, _ = make_problem()
    opt = cls(params, grads, lr=0.05, **kw)
    for _ in range(3):
        quadratic_grads(params, grads)
        opt.step()
    saved, saved_params = opt.state_dict(), {k: p.copy() for k, p in params.items()}
    json.dumps(saved["hyper"])
    for _ in range(2):  # keeps going: the saved state must be a snapshot
        quadratic_grads(params, grads)
        opt.step()

    fresh_params = {k: p.copy() for k, p in saved_params.items()}
    fresh_grads = {k: np.zeros_like(p) for k, p in fresh_params.items()}
    fresh = cls(fresh_params, fresh_grads, lr=1.0, **kw)  # a different lr that load must undo
    fresh.load_state_dict({"hyper": json.loads(json.dumps(saved["hyper"])),  # JSON-able
                           "arrays": saved["arrays"]})
    assert fresh.lr == opt.lr and fresh.t == 3
    for _ in range(2):
        quadratic_grads(fresh_params, fresh_grads)
        fresh.step()
    for k in params:
        np.testing.assert_array_equal(fresh_params[k], params[k], err_msg=k)


def test_load_state_dict_names_the_bad_key():
    params, grads, _, _ = make_problem()
    saved = Adam(params, grads, lr=0.1).state_dict()
    opt = Adam(params, grads, lr=0.1)

    def broken(change):
        d = {"hyper": dict(saved["hyper"]), "arrays": dict(saved["arrays"])}
        change(d)
        return d

    with pytest.raises(ValueError, match="'v/W' is missing"):
        opt.load_state_dict(broken(lambda d: d["arrays"].pop("v/W")))
    with pytest.raises(ValueError, match=r"'m/b' must have shape \(4,\), got \(5,\)"):
        opt.load_state_dict(broken(lambda d: d["arrays"].update({"m/b": np.zeros(5)})))
    with pytest.raises(ValueError, match="'m/extra' is unexpected"):
        opt.load_state_dict(broken(lambda d: d["arrays"].update({"m/extra": np.zeros(1)})))
    with pytest.raises(ValueError, match="'betas' is missing"):
        opt.load_state_dict(broken(lambda d: d["hyper"].pop("betas")))
    with pytest.raises(ValueError, match="'type' must be 'Adam', got 'SGD'"):
        opt.load_state_dict(broken(lambda d: d["hyper"].update(type="SGD")))
    with pytest.raises(ValueError, match="lr must be >= 0, got -1.0"):
        opt.load_state_dict(broken(lambda d: d["hyper"].update(lr=-1.0, t=7)))
    assert opt.lr == 0.1 and opt.t == 0  # nothing was changed by the failed loads
    with pytest.raises(ValueError, match=r"betas\[1\] must be in \[0, 1\), got 1.0"):
        opt.load_state_dict(broken(lambda d: d["hyper"].update(betas=[0.9, 1.0])))
    opt.load_state_dict(broken(lambda d: d["hyper"].update(lr=0.0, t=7, betas=[0.5, 0.6])))
    assert (opt.lr, opt.t, opt.betas) == (0.0, 7, (0.5, 0.6))  # lr 0: where a cosine ends


def test_clip_grad_norm_returns_the_pre_clip_norm_and_scales_to_max_norm():
    grads = {k: 10.0 * g for k, g in make_problem()[2][0].items()}
    expected = math.sqrt(sum(float(np.sum(g ** 2)) for g in grads.values()))
    direction = {k: g / expected for k, g in grads.items()}
    total = clip_grad_norm(grads, max_norm=2.0)
    assert isinstance(total, float) and total == pytest.approx(expected, rel=1e-12)
    after = math.sqrt(sum(float(np.sum(g ** 2)) for g in grads.values()))
    assert abs(after - 2.0) < 1e-6
    for k in grads:  # the direction is kept
        np.testing.assert_allclose(grads[k] / after, direction[k], rtol=1e-9)


def test_clip_grad_norm_leaves_small_gradients_untouched():
    fixed = make_problem()[2]
    grads = {k: g.copy() for k, g in fixed[0].items()}
    total = clip_grad_norm(grads, max_norm=1e6)
    assert total == pytest.approx(math.sqrt(sum(np.sum(g ** 2) for g in fixed[0].values())))
    for k in grads:
        np.testing.assert_array_equal(grads[k], fixed[0][k])


def test_clip_grad_value_clips_each_entry_in_place():
    g = np.array([-3.0, -0.2, 0.0, 0.7, 5.0])
    grads = {"g": g}
    clip_grad_value(grads, 0.5)
    assert grads["g"] is g
    np.testing.assert_array_equal(g, [-0.5, -0.2, 0.0, 0.5, 0.5])


def test_schedules_give_their_formula_at_chosen_steps():
    step = StepDecay(0.1, step_size=10, gamma=0.5)
    assert [step(s) for s in (0, 9, 10, 25)] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    cos = Cosine(1.0, total_steps=100, min_lr=0.1)
    assert [cos(s) for s in (0, 50, 100, 150)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
    assert cos(25) == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2)
    warm = LinearWarmup(0.2, warmup_steps=4)
    assert [warm(s) for s in (0, 1, 3, 4, 1000)] == pytest.approx([0.05, 0.1, 0.2, 0.2, 0.2])
    chained = LinearWarmup(1.0, warmup_steps=10, after=Cosine(1.0, total_steps=90))
    assert [chained(s) for s in (4, 10, 55, 100)] == pytest.approx([0.5, 1.0, 0.5, 0.0])
    # Pure: resuming at step k gives the same lr, whatever was asked before.
    assert chained(37) == LinearWarmup(1.0, 10, Cosine(1.0, 90))(37)


@pytest.mark.parametrize("make, match", [
    (lambda p, g: SGD(p, g, lr=0.0), "lr must be > 0, got 0.0"),
    (lambda p, g: Adam(p, g, lr=-1e-3), "lr must be > 0, got -0.001"),
    (lambda p, g: SGD(p, g, lr=0.1, momentum=-0.5), "momentum must be >= 0, got -0.5"),
    (lambda p, g: SGD(p, g, lr=0.1, nesterov=True), "nesterov=True needs momentum > 0"),
    (lambda p, g: Adam(p, g, lr=0.1, betas=(0.9, 1.0)), r"betas\[1\] must be in \[0, 1\), got 1.0"),
    (lambda p, g: AdamW(p, g, lr=0.1, betas=(-0.1, 0.9)), r"betas\[0\] must be in \[0, 1\)"),
    (lambda p, g: RMSProp(p, g, lr=0.1, alpha=1.5), r"alpha must be in \[0, 1\), got 1.5"),
    (lambda p, g: Adagrad(p, {"W": g["W"]}, lr=0.1), r"same keys; only in params: \['b'\]"),
    (lambda p, g: Adam(p, {**g, "b": np.zeros(5)}, lr=0.1),
     r"grads\['b'\] must have the shape of params\['b'\] \(4,\), got \(5,\)"),
    (lambda p, g: clip_grad_norm(g, 0.0), "max_norm must be > 0"),
    (lambda p, g: StepDecay(0.1, step_size=0), "step_size must be an int >= 1, got 0"),
    (lambda p, g: Cosine(0.1, 100, min_lr=0.5), "min_lr must be in"),
    (lambda p, g: LinearWarmup(0.1, 5)(-1), "step must be an int >= 0, got -1"),
])
def test_bad_settings_raise_naming_the_argument(make, match):
    params, grads, _, _ = make_problem()
    with pytest.raises(ValueError, match=match):
        make(params, grads)


def test_sgd_momentum_runs_on_the_strict_backend_without_numpy_calls():
    params, grads, fixed, _ = make_problem()
    dev_params = {k: backend.strict.asarray(p) for k, p in params.items()}
    dev_grads = {k: backend.strict.asarray(g) for k, g in grads.items()}
    idents = {k: id(p) for k, p in dev_params.items()}
    opt = SGD(dev_params, dev_grads, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    for g_t in fixed:
        for k in dev_grads:
            dev_grads[k][...] = backend.strict.asarray(g_t[k])
        clip_grad_norm(dev_grads, 1.0)
        opt.step()
    state = opt.state_dict()  # as a checkpoint reads it back: host arrays in, device state kept
    opt.load_state_dict({"hyper": state["hyper"],
                         "arrays": {k: backend.to_numpy(a) for k, a in state["arrays"].items()}})
    host_opt = SGD(params, grads, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    for g_t in fixed:
        for k in grads:
            grads[k][...] = g_t[k]
        clip_grad_norm(grads, 1.0)
        host_opt.step()
    for k in params:
        assert id(dev_params[k]) == idents[k]
        assert isinstance(dev_params[k], backend.StrictArray)
        assert isinstance(state["arrays"][f"b/{k}"], backend.StrictArray)
        np.testing.assert_allclose(backend.to_numpy(dev_params[k]), params[k], rtol=1e-12)


# ------------------------------------------------------------------ flat buffers

@pytest.fixture
def float64_default():
    backend.set_default_dtype("float64")
    yield
    backend.set_default_dtype("float32")


@pytest.mark.parametrize("chunk", [None, 7])  # 7: chunks that straddle every parameter
@pytest.mark.parametrize("name, hyper", [
    ("Adam", {}), ("Adam", {"weight_decay": 0.1}), ("AdamW", {}),
    ("SGD", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}), ("SGD", {}),
    ("Adagrad", {}), ("RMSProp", {}),
])
def test_flat_buffers_give_the_per_parameter_updates_bit_for_bit(float64_default, name, hyper,
                                                                 chunk, monkeypatch):
    from minirnn.nn import CharRNN
    if chunk is not None:
        monkeypatch.setattr(optim, "_CHUNK", chunk)
    rng = np.random.default_rng(0)
    a = CharRNN(7, 6, num_layers=2, cell="lstm", embedding_dim=3, seed=1)
    b = CharRNN(7, 6, num_layers=2, cell="lstm", embedding_dim=3, seed=1).flatten()
    opt_a = getattr(optim, name)(a.params, a.grads, lr=1e-2, **hyper)
    opt_b = getattr(optim, name)(b.params, b.grads, lr=1e-2, flat=b.flat, **hyper)
    for _ in range(4):
        for k in a.params:
            g = rng.standard_normal(a.params[k].shape)
            a.grads[k][...] = g
            b.grads[k][...] = g
        opt_a.step()
        opt_b.step()
        for k in a.params:
            assert np.array_equal(a.params[k], b.params[k]), (name, k)
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    assert sa["hyper"] == sb["hyper"] and sa["arrays"].keys() == sb["arrays"].keys()
    assert all(np.array_equal(sa["arrays"][k], sb["arrays"][k]) for k in sa["arrays"])


def test_flatten_keeps_every_value_and_makes_every_dict_a_view_of_one_buffer():
    from minirnn.nn import CharRNN
    model = CharRNN(7, 6, num_layers=2, cell="gru", embedding_dim=3, seed=2)
    before = {k: p.copy() for k, p in model.params.items()}
    model.flatten()
    assert model.flat.params.shape == (model.num_parameters(),)
    for k, p in model.params.items():
        assert np.array_equal(p, before[k]) and np.shares_memory(p, model.flat.params), k
        assert np.shares_memory(model.grads[k], model.flat.grads), k
    # the children's dicts hold the same views, so layers and optimizer see one array
    assert model.params["rnn.1.Wh"] is model.rnn.params["1.Wh"]
    model.flat.grads[...] = 1.0
    assert (model.head.grads["W"] == 1.0).all()
    model.zero_grad()
    assert not model.flat.grads.any()
    assert len(model.gradient_arrays()) == 1
    with pytest.raises(RuntimeError, match="flattened"):
        model.register("extra", np.zeros(3))


def test_optimizer_state_round_trips_between_flat_and_per_parameter(float64_default):
    from minirnn.nn import CharRNN
    a = CharRNN(5, 4, seed=0)
    b = CharRNN(5, 4, seed=0).flatten()
    opt_a = optim.Adam(a.params, a.grads, lr=1e-2)
    for g in a.grads.values():
        g[...] = 0.5
    opt_a.step()
    opt_b = optim.Adam(b.params, b.grads, lr=1e-2, flat=b.flat)
    opt_b.load_state_dict(opt_a.state_dict())
    b.load_state_dict(a.state_dict())
    for m in (a, b):
        for g in m.grads.values():
            g[...] = -0.25
    opt_a.step()
    opt_b.step()
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
