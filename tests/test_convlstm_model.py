"""The Conv-LSTM layer and next-frame model, its loss, the moving-squares task, trainer, CLI."""

import json
import math

import numpy as np
import pytest

from minirnn import backend, gradcheck, nn
from minirnn.data.moving import (EPS, clipped_bce, copy_last_frame_bce, held_out_set,
                                 moving_squares)
from minirnn.functional import sigmoid_binary_cross_entropy


@pytest.fixture
def float64():
    backend.set_default_dtype("float64")
    yield
    backend.set_default_dtype("float32")


@pytest.mark.parametrize("num_layers", [1, 2])
def test_next_frame_loss_gradient_matches_centered_differences(float64, num_layers):
    rng = np.random.default_rng(3)
    inputs = (rng.random((2, 3, 1, 4, 5)) > 0.6).astype(np.float64)
    targets = (rng.random((2, 2, 1, 4, 5)) > 0.6).astype(np.float64)
    model = nn.NextFrameModel(hidden_channels=2, kernel_size=3, num_layers=num_layers,
                              seed=1, n_out=2)
    model.params["head.b"][...] = 0.3  # a non-zero bias, so its role is checked too

    def loss(backward):
        value, dlogits = model.loss({"inputs": inputs, "targets": targets})
        if backward:
            model.backward(dlogits)
        return value

    report = gradcheck.check_params(model.params, model.grads, loss, tol=1e-6)
    assert report.passed, str(report)
    assert len(report.results) == 3 * num_layers + 2


def test_convlstm_layer_shapes_state_and_input_gradient(float64):
    layer = nn.ConvLSTM(2, 3, kernel_size=3, num_layers=2, seed=0)
    assert set(layer.params) == {f"{l}.{n}" for l in (0, 1) for n in ("Wx", "Wh", "b")}
    assert layer.params["0.Wx"].shape == (12, 2, 3, 3)
    assert layer.params["1.Wx"].shape == (12, 3, 3, 3)
    bound = 1 / math.sqrt(3 * 9)
    assert all(np.abs(p).max() <= bound for p in layer.params.values())
    x = np.random.default_rng(0).standard_normal((2, 4, 2, 3, 5))
    hs, (h, c) = layer.forward(x)
    assert hs.shape == (2, 4, 3, 3, 5) and h.shape == c.shape == (2, 2, 3, 3, 5)
    np.testing.assert_array_equal(h[1], hs[:, -1])
    dhs = np.random.default_rng(1).standard_normal(hs.shape)
    dx = layer.backward(dhs)

    def f():
        return np.sum(layer.forward(x)[0] * dhs)
    num = gradcheck.numerical_gradient(lambda: np.asarray(f()), x, np.ones(()))
    assert gradcheck.rel_error(dx, num) < 1e-7


def test_convlstm_refuses_an_even_kernel_and_wrong_channels():
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        nn.ConvLSTM(1, 4, kernel_size=2)
    with pytest.raises(ValueError, match="C = 1"):
        nn.ConvLSTM(1, 4).forward(np.zeros((1, 2, 3, 4, 4), np.float32))


def test_bce_matches_the_direct_formula_and_its_gradient(float64):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((3, 4, 5)) * 3
    t = (rng.random(z.shape) > 0.5).astype(np.float64)
    loss, dz = sigmoid_binary_cross_entropy(z, t)
    s = 1 / (1 + np.exp(-z))
    direct = -(t * np.log(s) + (1 - t) * np.log(1 - s)).mean()
    assert abs(loss - direct) < 1e-12
    np.testing.assert_allclose(dz, (s - t) / z.size, rtol=1e-10, atol=0)


def test_bce_is_finite_and_right_for_huge_logits():
    z = np.array([1e4, -1e4, 1e4, -1e4], np.float32)
    t = np.array([1, 0, 0, 1], np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow, no NaN
        loss, dz = sigmoid_binary_cross_entropy(z, t)
    assert math.isfinite(loss) and np.isfinite(dz).all()
    assert loss == pytest.approx(2e4 / 4)  # two right (0) and two wrong by 1e4 each
    np.testing.assert_allclose(dz, [0, 0, 0.25, -0.25], atol=1e-7)
    assert dz.dtype == np.float32


def test_moving_squares_is_deterministic_and_seed_dependent():
    a = moving_squares(20, seed=5)
    b = moving_squares(20, seed=5)
    c = moving_squares(20, seed=6)
    assert a[0].shape == (20, 10, 1, 16, 16) and a[1].shape == (20, 5, 1, 16, 16)
    assert a[0].dtype == np.float32 and set(np.unique(a[0])) <= {0.0, 1.0}
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_a_single_square_stays_whole_inside_the_frame_and_moves_one_pixel():
    x, y = moving_squares(200, seed=1, max_squares=1)
    frames = np.concatenate([x, y], axis=1)[:, :, 0]  # (n, 15, 16, 16)
    moved = False
    for seq in frames:
        tops = []
        for f in seq:
            rows, cols = np.nonzero(f)
            side = rows.max() - rows.min() + 1
            # a full side x side square: never cut off by a wall
            assert side in (3, 4) and cols.max() - cols.min() + 1 == side
            assert f.sum() == side * side
            tops.append((rows.min(), cols.min()))
        steps = np.abs(np.diff(np.array(tops), axis=0))
        assert steps.max() <= 1
        moved |= steps.sum() > 0
        assert steps.sum(axis=1).min() > 0  # always moving: velocity never (0, 0)
    assert moved


def test_the_held_out_set_is_fixed():
    x, y = held_out_set()
    assert x.shape == (1000, 10, 1, 16, 16) and y.shape == (1000, 5, 1, 16, 16)
    np.testing.assert_array_equal(x, moving_squares(1000, seed=12345)[0])
    # pinned: a change to the generator changes the benchmark's numbers
    assert (float(x.sum()), float(y.sum())) == (182225.0, 91163.0)
    np.testing.assert_array_equal(held_out_set(7)[1], y[:7])


def test_copy_last_frame_baseline_on_a_constructed_case():
    inputs = np.zeros((1, 2, 1, 2, 2), np.float32)
    inputs[0, 0, 0] = [[0, 1], [1, 1]]  # an earlier frame must not matter
    inputs[0, 1, 0] = [[1, 0], [0, 0]]
    targets = np.array([[[[[1, 0], [0, 1]]]]], np.float32)  # (1, 1, 1, 2, 2)
    want = (3 * -math.log(1 - EPS) - math.log(EPS)) / 4
    assert copy_last_frame_bce(inputs, targets) == pytest.approx(want, rel=1e-12)
    assert clipped_bce(np.broadcast_to(inputs[:, -1:], targets.shape), targets) == \
        pytest.approx(want, rel=1e-12)
    assert copy_last_frame_bce(inputs, inputs[:, -1:]) == pytest.approx(-math.log(1 - EPS))


def test_a_short_training_run_lowers_the_held_out_loss(tmp_path):
    from minirnn.training import ConvLSTMConfig, train
    from minirnn.training.convlstm import evaluate

    test_in, test_out = held_out_set(100)
    cfg = ConvLSTMConfig(hidden_channels=4, steps=30, eval_every=30, n_test=100,
                         batch_size=8, out=str(tmp_path), progress=False)
    before, baseline = evaluate(nn.NextFrameModel(4, seed=0), test_in, test_out)
    result = train(cfg, log=lambda s: None)
    assert result.step == 30 and result.val["baseline_bce"] == pytest.approx(baseline)
    assert result.val["val_bce"] < 0.8 * before, (before, result.val["val_bce"])
    losses = [json.loads(l)["loss"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines()
              if '"loss"' in l]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_cli_trains_two_steps_and_writes_checkpoint_and_figure(tmp_path, capsys):
    from minirnn import cli
    from minirnn.training import load_convlstm

    out = tmp_path / "run"
    assert cli.main(["convlstm", "train", "--task", "moving-squares", "--hidden-channels", "2",
                     "--kernel-size", "3", "--num-layers", "1", "--batch-size", "4",
                     "--lr", "0.01", "--steps", "2", "--eval-every", "1", "--seed", "0",
                     "--out", str(out), "--no-progress"]) == 0
    assert (out / "prediction.png").read_bytes()[:4] == b"\x89PNG"
    model, meta = load_convlstm(out / "checkpoint.npz")
    assert meta["kind"] == "convlstm" and meta["step"] == 2
    assert model.config["hidden_channels"] == 2
    evals = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()
             if "val_bce" in l]
    assert [r["step"] for r in evals] == [1, 2]
    assert all(r["val_bce"] > 0 and r["baseline_bce"] > 0 for r in evals)
    capsys.readouterr()
    assert cli.main(["convlstm", "train", "--kernel-size", "2", "--steps", "1",
                     "--out", str(out), "--no-progress"]) == 2  # a usage error
    assert "--kernel-size must be odd" in capsys.readouterr().err
