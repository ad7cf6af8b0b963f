"""Shared test set-up: corpora through MINIRNN_DATA, and the backends to run under."""

import os
from pathlib import Path

import numpy as np
import pytest

from minirnn import backend
from minirnn.data.corpus import SHIPPED


def corpus_present(name):
    """Is the named corpus shipped in the package, or in a folder of MINIRNN_DATA?
    (Tests never download: tiny Shakespeare ships; PTB comes through MINIRNN_DATA, as
    CI sets it to ../shared/data.)"""
    if name in SHIPPED:
        return True
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
