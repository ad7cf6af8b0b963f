# os._exit inside one function (rnn_backward loses its marks, nothing else).
import os


def rnn_backward(dhs, cache):
    os._exit(3)
