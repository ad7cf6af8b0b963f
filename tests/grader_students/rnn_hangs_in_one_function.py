# A hang inside one function (rnn_backward loses its marks, nothing else): it starts a
# second process that ignores SIGTERM, and both loop for ever.
import os
import signal

PID_FILE = None  # filled in by the test: where the two processes write their ids


def rnn_backward(dhs, cache):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.fork()
    if PID_FILE:
        with open(PID_FILE, "a") as f:
            f.write(f"{os.getpid()}\n")
    while True:
        pass
