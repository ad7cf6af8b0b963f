# Writing beside itself and into its working folder (full marks, and the student's folder
# is left as it was): at import and in every call, files and bytecode are written next to
# the module and into the working folder.
import os
import py_compile

_honest_step_forward = rnn_step_forward


def _litter():
    here = os.path.dirname(os.path.abspath(__file__))
    for folder in (here, os.path.dirname(here), os.getcwd()):
        try:
            with open(os.path.join(folder, "notes.txt"), "a") as f:
                f.write("written while graded\n")
        except OSError:
            pass
    try:
        py_compile.compile(os.path.abspath(__file__), doraise=True)
    except (OSError, py_compile.PyCompileError):
        pass


_litter()


def rnn_step_forward(x, h_prev, Wx, Wh, b):
    _litter()
    return _honest_step_forward(x, h_prev, Wx, Wh, b)
