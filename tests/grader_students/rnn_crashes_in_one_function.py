# A hard crash inside one function (rnn_backward loses its marks, nothing else): the
# process kills itself with SIGKILL, as a segmentation fault or the OOM killer would.
import os
import signal


def rnn_backward(dhs, cache):
    os.kill(os.getpid(), signal.SIGKILL)
