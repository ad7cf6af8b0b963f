"""Bad input raises ValueError/TypeError naming the argument, what was expected and what came."""

import numpy as np
import pytest

from minirnn import functional as F

rng = np.random.default_rng(0)
N, T, D, H = 2, 3, 4, 5


def lstm_args(**over):
    a = dict(x=rng.standard_normal((N, T, D)), h0=np.zeros((N, H)), c0=np.zeros((N, H)),
             Wx=rng.standard_normal((D, 4 * H)), Wh=rng.standard_normal((H, 4 * H)),
             b=np.zeros(4 * H))
    a.update(over)
    return a


@pytest.mark.parametrize("over, exc, pattern", [
    # mismatched Wx / Wh widths
    (dict(Wx=np.zeros((D, 4 * H + 1))), ValueError,
     r"lstm_forward: Wx must have 4H = 20 columns to match Wh \(5, 20\), got \(4, 21\)"),
    (dict(Wh=np.zeros((H, 3 * H))), ValueError,
     r"lstm_forward: Wh must have shape \(H, 4H\) = \(5, 20\), got \(5, 15\)"),
    # h0 of the wrong batch size
    (dict(h0=np.zeros((N + 1, H))), ValueError,
     r"lstm_forward: h0 must have shape \(N=2, H=5\), got \(3, 5\)"),
    (dict(c0=np.zeros((N, H + 1))), ValueError,
     r"lstm_forward: c0 must have shape \(N=2, H=5\), got \(2, 6\)"),
    # a 2-D x to a sequence function
    (dict(x=np.zeros((N, D))), ValueError,
     r"lstm_forward: x must be 3-D \(N, T, D\) for a sequence, got 2-D shape \(2, 4\)"),
    # integer x
    (dict(x=np.zeros((N, T, D), dtype=np.int64)), TypeError,
     r"lstm_forward: x must have a float dtype \(float32 or float64\), got int64"),
    (dict(x=np.zeros((N, T, D + 1))), ValueError,
     r"lstm_forward: x must have D = 4 features to match Wx \(4, 20\), got x of shape \(2, 3, 5\)"),
    (dict(b=np.zeros(4 * H - 1)), ValueError, r"lstm_forward: b must have shape \(4H=20,\)"),
    (dict(h0=np.zeros((N, H), np.float32)), TypeError,
     r"lstm_forward: h0 has dtype float32 but x has float64"),
    (dict(x=[[[0.0] * D] * T] * N), TypeError, r"lstm_forward: x must be an array"),
    (dict(x=np.zeros((N, 0, D))), ValueError, r"at least one sequence and one time step"),
])
def test_lstm_forward_rejects_bad_input(over, exc, pattern):
    with pytest.raises(exc, match=pattern):
        F.lstm_forward(**lstm_args(**over))


def test_each_cell_names_its_own_arguments():
    x, h = np.zeros((N, T, D)), np.zeros((N + 1, H))
    with pytest.raises(ValueError, match=r"rnn_forward: h0 must have shape \(N=2, H=5\)"):
        F.rnn_forward(x, h, np.zeros((D, H)), np.zeros((H, H)), np.zeros(H))
    with pytest.raises(ValueError, match=r"gru_forward: Wx must have 3H = 15 columns"):
        F.gru_forward(x, np.zeros((N, H)), np.zeros((D, 4 * H)), np.zeros((H, 3 * H)),
                      np.zeros(3 * H), np.zeros(3 * H))
    with pytest.raises(ValueError, match=r"gru_step_forward: bh must have shape \(3H=15,\), got \(5,\)"):
        F.gru_step_forward(np.zeros((N, D)), np.zeros((N, H)), np.zeros((D, 3 * H)),
                           np.zeros((H, 3 * H)), np.zeros(3 * H), np.zeros(H))
    with pytest.raises(ValueError, match=r"rnn_step_forward: x must be 2-D with shape \(N, D\)"):
        F.rnn_step_forward(np.zeros((N, T, D)), np.zeros((N, H)), np.zeros((D, H)),
                           np.zeros((H, H)), np.zeros(H))


def test_backward_rejects_an_upstream_gradient_of_the_wrong_shape_or_dtype():
    _, _, cache = F.lstm_forward(**lstm_args())
    with pytest.raises(ValueError, match=r"lstm_backward: dhs must have shape \(N=2, T=3, H=5\), got \(2, 3, 4\)"):
        F.lstm_backward(np.zeros((N, T, H - 1)), cache)
    with pytest.raises(TypeError, match=r"lstm_backward: dhs has dtype float32 but the forward pass ran in float64"):
        F.lstm_backward(np.zeros((N, T, H), np.float32), cache)
    with pytest.raises(ValueError, match=r"lstm_backward: dc_last must have shape \(N=2, H=5\)"):
        F.lstm_backward(np.zeros((N, T, H)), cache, dc_last=np.zeros((N, H + 2)))


def test_loss_rejects_targets_outside_the_vocabulary_and_bad_masks():
    logits = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: targets must lie in \[0, 4\), got a value of 4"):
        F.softmax_cross_entropy(logits, np.full((2, 3), 4))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 4\), got a value of -1"):
        F.softmax_cross_entropy(logits, np.full((2, 3), -1))
    with pytest.raises(ValueError, match=r"targets must have shape \(2, 3\).*got \(3, 2\)"):
        F.softmax_cross_entropy(logits, np.zeros((3, 2), int))
    with pytest.raises(TypeError, match=r"targets must have an integer dtype, got float64"):
        F.softmax_cross_entropy(logits, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 3\) \(like targets\), got \(2, 2\)"):
        F.softmax_cross_entropy(logits, np.zeros((2, 3), int), np.ones((2, 2), bool))
    with pytest.raises(TypeError, match=r"mask must be a bool array"):
        F.softmax_cross_entropy(logits, np.zeros((2, 3), int), np.ones((2, 3)))


def test_embedding_and_affine_reject_bad_input():
    W = np.zeros((5, 3))
    with pytest.raises(ValueError, match=r"embedding_forward: ids must lie in \[0, 5\), got a value of 7"):
        F.embedding_forward(np.array([[1, 7]]), W)
    with pytest.raises(TypeError, match=r"embedding_forward: ids must have an integer dtype, got float64"):
        F.embedding_forward(np.array([[1.0]]), W)
    with pytest.raises(ValueError, match=r"affine_forward: x must have D = 3 features.*got x of shape \(2, 4\)"):
        F.affine_forward(np.zeros((2, 4)), W.T.copy()[:3], np.zeros(5))
    with pytest.raises(ValueError, match=r"affine_forward: b must have shape \(M=3,\), got \(2,\)"):
        F.affine_forward(np.zeros((2, 5)), W, np.zeros(2))
