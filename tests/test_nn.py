"""Modules: whole-model gradient checks, state dicts, dropout, stacked state handling."""

import numpy as np
import pytest

from minirnn import backend, gradcheck, nn


@pytest.fixture
def float64():
    backend.set_default_dtype("float64")
    yield
    backend.set_default_dtype("float32")


@pytest.mark.parametrize("embedding_dim", [None, 3])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_charrnn_loss_gradient_matches_centered_differences(float64, cell, embedding_dim):
    V, N, T = 5, 2, 4
    model = nn.CharRNN(V, hidden_size=4, num_layers=2, cell=cell,
                       embedding_dim=embedding_dim, dropout=0.0, seed=3)
    rng = np.random.default_rng(0)
    ids, targets = rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))
    state = tuple(rng.standard_normal(s.shape) for s in model.initial_state(N))

    def loss(backward):
        value, dlogits = model.loss({"ids": ids, "targets": targets, "state": state})
        if backward:
            model.backward(dlogits)
        return float(value)

    report = gradcheck.check_params(model.params, model.grads, loss, op=f"CharRNN/{cell}")
    assert len(report.results) == len(model.params) >= 8
    assert report.passed, f"\n{report}"


def test_stacked_layer_backward_through_the_final_state(float64):
    """dstate (gradient on the returned final state) flows into the weights correctly."""
    layer = nn.LSTM(3, 4, num_layers=2, seed=1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 3))
    dhs, dh, dc = (rng.standard_normal(s) for s in ((2, 3, 4), (2, 2, 4), (2, 2, 4)))

    def loss(backward):
        hs, (h, c) = layer.forward(x)
        if backward:
            layer.backward(dhs, (dh, dc))
        return float((hs * dhs).sum() + (h * dh).sum() + (c * dc).sum())

    report = gradcheck.check_params(layer.params, layer.grads, loss, op="LSTM(2)")
    assert report.passed, f"\n{report}"


def test_grads_share_keys_and_arrays_with_children():
    model = nn.CharRNN(7, 6, num_layers=2, cell="gru", embedding_dim=4)
    assert model.params.keys() == model.grads.keys()
    assert model.params["rnn.1.Wh"] is model.rnn.params["1.Wh"]
    assert model.grads["head.W"] is model.head.grads["W"]
    assert all(p.dtype == np.float32 for p in model.parameters())


def test_state_dict_round_trip_and_shape_checks():
    a = nn.CharRNN(7, 6, num_layers=2, seed=1)
    b = nn.CharRNN(7, 6, num_layers=2, seed=2)
    ids = np.arange(14).reshape(2, 7) % 7
    assert not np.allclose(a.forward(ids)[0], b.forward(ids)[0])
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.forward(ids)[0], b.forward(ids)[0])
    sd = a.state_dict()
    sd["head.W"] = np.zeros((6, 8))
    with pytest.raises(ValueError, match=r"head.W must have shape \(6, 7\), got \(6, 8\)"):
        b.load_state_dict(sd)
    del sd["head.W"]
    with pytest.raises(ValueError, match=r"missing \['head.W'\]"):
        b.load_state_dict(sd)


def test_dropout_is_inverted_seeded_and_off_in_eval():
    d = nn.Dropout(0.25, seed=0)
    x = np.ones((200, 300), np.float32)
    y = d.forward(x)
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.01
    np.testing.assert_array_equal(d.backward(x), y)  # same mask scales the gradient
    assert not np.array_equal(d.forward(x), y)       # a fresh mask each call
    d2 = nn.Dropout(0.25, seed=0)
    np.testing.assert_array_equal(d2.forward(x), y)  # seeded
    d.eval()
    assert d.forward(x) is x
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\), got 1.0"):
        nn.Dropout(1.0)


def test_eval_mode_reaches_every_dropout_and_makes_forward_deterministic():
    model = nn.CharRNN(5, 8, num_layers=2, dropout=0.5, seed=0)
    ids = np.zeros((2, 3), int)
    model.eval()
    assert not model.rnn.dropout.training and not model.drop.training
    np.testing.assert_array_equal(model.forward(ids)[0], model.forward(ids)[0])
    model.train()
    assert not np.array_equal(model.forward(ids)[0], model.forward(ids)[0])


def test_carried_state_equals_one_long_sequence():
    """Truncated BPTT's forward: two halves with the state carried = the whole sequence."""
    model = nn.CharRNN(6, 5, num_layers=2, cell="lstm", seed=0)
    ids = np.random.default_rng(0).integers(0, 6, (3, 8))
    whole, _ = model.forward(ids)
    first, state = model.forward(ids[:, :5])
    second, _ = model.forward(ids[:, 5:], state)
    np.testing.assert_allclose(np.concatenate([first, second], 1), whole, atol=1e-6)


def test_step_matches_forward():
    model = nn.CharRNN(6, 5, num_layers=2, cell="gru", embedding_dim=3, seed=0).eval()
    ids = np.random.default_rng(1).integers(0, 6, (2, 4))
    whole, _ = model.forward(ids)
    state = model.initial_state(2)
    for t in range(4):
        logits, state = model.step(ids[:, t], state)
        np.testing.assert_allclose(logits, whole[:, t], atol=1e-6)


def test_bad_settings_are_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="cell must be one of"):
        nn.CharRNN(5, 4, cell="transformer")
    with pytest.raises(ValueError, match="hidden_size must be a positive int, got 0"):
        nn.LSTM(3, 0)
    with pytest.raises(ValueError, match=r"state arrays must have shape \(L, N, H\) = \(1, 2, 4\)"):
        nn.GRU(3, 4).forward(np.zeros((2, 5, 3), np.float32), (np.zeros((1, 3, 4), np.float32),))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_float64_model_gets_float64_states_whatever_the_default_dtype(cell):
    from minirnn.nn import ConvLSTM, Recurrent
    backend.set_default_dtype("float64")
    try:
        rnn = Recurrent(cell, 3, 4, num_layers=2)
        conv = ConvLSTM(1, 2, kernel_size=3)
    finally:
        backend.set_default_dtype("float32")
    hs, state = rnn.forward(np.ones((2, 5, 3)))
    assert hs.dtype == np.float64 and all(s.dtype == np.float64 for s in state)
    assert all(s.dtype == np.float64 for s in conv.initial_state(2, 4, 4))
    hs, _ = conv.forward(np.ones((2, 3, 1, 4, 4)))
    assert hs.dtype == np.float64
