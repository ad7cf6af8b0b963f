"""Pure forward/backward function pairs: the heart of minirnn.

Every op is ``*_forward(...) -> (out..., cache)`` and ``*_backward(dout..., cache) ->
grads``; names, argument order and shapes are fixed by DESIGN.md. Nothing here keeps
state. Use as ``from minirnn import functional as F``.
"""

from .activations import sigmoid, tanh
from .attention import (
    additive_attention_backward, additive_attention_forward, additive_attention_project_keys,
)
from .conv import col2im, conv2d_same_backward, conv2d_same_forward, im2col
from .convlstm import (
    convlstm_backward, convlstm_forward, convlstm_step_backward, convlstm_step_forward,
)
from .gelu import gelu_backward, gelu_forward
from .gru import gru_backward, gru_forward, gru_step_backward, gru_step_forward
from .layers import affine_backward, affine_forward, embedding_backward, embedding_forward
from .layernorm import layer_norm_backward, layer_norm_forward
from .loss import sigmoid_binary_cross_entropy, softmax_cross_entropy
from .lstm import lstm_backward, lstm_forward, lstm_step_backward, lstm_step_forward
from .rnn import rnn_backward, rnn_forward, rnn_step_backward, rnn_step_forward
from .self_attention import (
    causal_self_attention_backward, causal_self_attention_forward,
    causal_self_attention_kv_cache, causal_self_attention_step,
)

__all__ = [
    "sigmoid", "tanh",
    "rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward",
    "lstm_step_forward", "lstm_step_backward", "lstm_forward", "lstm_backward",
    "gru_step_forward", "gru_step_backward", "gru_forward", "gru_backward",
    "embedding_forward", "embedding_backward", "affine_forward", "affine_backward",
    "softmax_cross_entropy", "sigmoid_binary_cross_entropy",
    "additive_attention_forward", "additive_attention_backward",
    "additive_attention_project_keys",
    "convlstm_step_forward", "convlstm_step_backward", "convlstm_forward", "convlstm_backward",
    "im2col", "col2im", "conv2d_same_forward", "conv2d_same_backward",
    "layer_norm_forward", "layer_norm_backward", "gelu_forward", "gelu_backward",
    "causal_self_attention_forward", "causal_self_attention_backward",
    "causal_self_attention_kv_cache", "causal_self_attention_step",
]
