# A hang inside one function (rnn_backward loses its marks, nothing else): it starts a
# second process that ignores SIGTERM, and both loop for ever.
import os
import signal


def rnn_backward(dhs, cache):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.fork()
    while True:
        pass
