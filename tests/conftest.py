"""Shared test set-up: corpora through MINIRNN_DATA, and the backends to run under."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

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


# --------------------------------------------------------------------------------------
# The documentation site, built once per test session (it runs the notebooks: a minute)
# --------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]

# Run argv in a new user and network namespace with only the loopback, brought up first
# by the same helper CI's offline test run uses.
LOOPBACK = ROOT / ".ci" / "loopback.py"


def offline(argv):
    return ["unshare", "-rn", sys.executable, str(LOOPBACK), *argv]


def _cannot_cut_the_network():
    """None when ``unshare -rn`` gives a namespace with only a loopback, else why not."""
    if not shutil.which("unshare"):
        return "needs unshare (util-linux) to cut the network"
    interfaces = subprocess.run(
        offline([sys.executable, "-c", "import socket; print(socket.if_nameindex())"]),
        capture_output=True, text=True)
    if interfaces.returncode != 0:
        return f"cannot make a network namespace (unshare -rn): {interfaces.stderr[-300:]}"
    if interfaces.stdout.strip() != "[(1, 'lo')]":
        return f"the namespace has more than a loopback: {interfaces.stdout.strip()}"
    return None


@pytest.fixture(scope="session")
def docs_site(tmp_path_factory):
    """The site, built once: with the network cut where the machine allows it (the
    reader offline), else as usual. ``offline`` says which; ``returncode`` and ``log``
    are mkdocs'; the tests that need the offline build skip without it."""
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python",
                   "mkdocs_jupyter", "pymdownx"):
        pytest.importorskip(module, reason="needs the docs extra: pip install -e '.[docs]'")
    spec = importlib.util.spec_from_file_location(
        "docs_hook_typeset_math", ROOT / "docs" / "hooks" / "typeset_math.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    try:
        hook.ensure_katex()  # `npm ci` once, with the network
    except Exception as err:  # mkdocs' PluginError: no Node.js, or no way to install KaTeX
        pytest.skip(f"KaTeX is not installed and cannot be: {err}")
    why_not = _cannot_cut_the_network()
    root = tmp_path_factory.mktemp("docs_site")
    out = root / "site"
    argv = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
            "-d", str(out)]
    start = time.perf_counter()
    run = subprocess.run(argv if why_not else offline(argv), cwd=ROOT,
                         env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
                         capture_output=True, text=True, timeout=900)
    log = run.stdout + run.stderr
    return SimpleNamespace(root=root, out=out, log=log, warnings=build_warnings(log),
                           returncode=run.returncode, seconds=time.perf_counter() - start,
                           offline=why_not is None, why_not=why_not)


# A notebook kernel's I/O thread that flushes after the kernel's sockets closed at shutdown
# logs this through tornado (an ipykernel teardown race, not the notebook's doing: the
# notebook has run and been rendered by then). It comes and goes from run to run.
KERNEL_TEARDOWN = re.compile(
    r"^ERROR:tornado\.general:Uncaught exception in ZMQStream callback\n"
    r"Traceback \(most recent call last\):\n(?:[ \t].*\n)*"
    r"zmq\.error\.ZMQError: Socket operation on non-socket$", re.M)


def build_warnings(log):
    """The WARNING and ERROR lines of a docs build's log, less the kernel teardown race."""
    log = KERNEL_TEARDOWN.sub("", log)
    return [line for line in log.splitlines() if line.startswith(("WARNING", "ERROR"))]
