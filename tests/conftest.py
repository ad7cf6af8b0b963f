"""Shared test set-up: corpora through MINIRNN_DATA, and the backends to run under."""

import os
from pathlib import Path

import numpy as np
import pytest

from minirnn import backend

# Corpora are never in the repository: tests find them beside the checkout.
os.environ.setdefault("MINIRNN_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))



def corpus_present(name):
    """Is the named corpus in a folder of MINIRNN_DATA? (Tests never download.)"""
    folders = os.environ.get("MINIRNN_DATA", "").split(os.pathsep)
    return any(f and (Path(f) / name).is_dir() for f in folders)


def needs_corpus(name):
    """Skip, saying why, on a machine without the shared corpora (CI always has them)."""
    return pytest.mark.skipif(
        not corpus_present(name),
        reason=f"corpus {name!r} is not under MINIRNN_DATA={os.environ.get('MINIRNN_DATA')!r}")


# Every functional test runs on plain NumPy and on the strict stand-in for a GPU array
# module, which refuses np.* calls on its arrays and any mixing with host arrays.
BACKENDS = ["numpy", "strict"]


@pytest.fixture(autouse=True)
def _restore_backend():
    """A test that switches backends never leaks the switch into the next test."""
    before = backend.name
    yield
    backend.use(before)


def on(xp_name, *arrays):
    """Host arrays -> arrays of the named backend."""
    xp = backend.strict if xp_name == "strict" else np
    out = tuple(xp.asarray(a) for a in arrays)
    return out if len(out) > 1 else out[0]


def host(*arrays):
    out = tuple(backend.to_numpy(a) for a in arrays)
    return out if len(out) > 1 else out[0]
