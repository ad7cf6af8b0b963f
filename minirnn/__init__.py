"""minirnn: recurrent text generation in NumPy, every gradient written out by hand."""

from . import backend, functional

__version__ = "0.1.0"
__all__ = ["backend", "functional", "__version__"]
