# sys.exit inside one function (rnn_step_backward loses its marks, nothing else).
import sys


def rnn_step_backward(dh, cache):
    sys.exit(3)
