"""minirnn: recurrent text generation in NumPy, every gradient written out by hand.

``from minirnn import functional as F`` (and every other submodule) imports on first use:
``import minirnn`` alone loads nothing heavy, so the command line answers Ctrl-C at once.
"""

import importlib

__version__ = "0.1.0"
__all__ = ["backend", "functional", "__version__"]


def __getattr__(name):
    if name in ("backend", "functional"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
