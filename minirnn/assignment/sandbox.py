"""The teacher's side of running a student's code: one child process at a time, judged here.

``Child`` starts ``python -I -S -B`` (the interpreter without its virtual environment:
no environment variables, no site-packages, no bytecode) in a fresh temporary folder
holding what it may see (``view.py``: the few files of the student's workspace that the
graded module needs, links to NumPy, an empty working folder) and sends it the program
in ``child.py``. No path to the teacher's files, the teacher's ``minirnn`` or the
student's own folder is handed over, and the import guard refuses every other
``minirnn`` module and every third-party package. This keeps a student's code from *finding* the answers or the
library's own solutions; it is not an operating-system sandbox (the child runs as the
teacher's user), so hostile code belongs in a container or under another account.

``Remote`` stands in for the student's module in the teacher's process: each call is
sent to the child and its return values come back as arrays (or as a ``Handle`` for a
cache that stays in the child). Every comparison happens in the caller, ``checks.py``.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np  # host arrays received from the child; never the student's

from . import child as wire
from .view import STAND_INS, build_view, environment, module_path, numpy_path, \
    python_executable

LIMITS = {"RLIMIT_AS": 4 << 30, "RLIMIT_FSIZE": 64 << 20, "RLIMIT_CORE": 0}
_START_TEXT = wire.BOOTSTRAP


class StudentError(Exception):
    """The student's code raised: its exception's type name, message and place."""

    def __init__(self, error, message, where=""):
        super().__init__(message)
        self.error, self.message, self.where = error, message, where


class ChildLost(Exception):
    """The child ended (an exit, a crash, a kill: ``error`` "Exited") or wrote into the
    channel what is not an answer (``error`` "BrokenChannel")."""

    def __init__(self, message, where="", error="Exited"):
        super().__init__(message)
        self.message, self.where, self.error = message, where, error


class TimedOut(Exception):
    """The time allowed ran out while the child was busy."""
    error = "Timeout"

    def __init__(self, message, where=""):
        super().__init__(message)
        self.message, self.where = message, where


class GraderError(Exception):
    """The grader itself could not run the child (not the student's doing)."""


# --------------------------------------------------------------------------------------
# The child process
# --------------------------------------------------------------------------------------

class Handle:
    """An object the student's code returned that stays in the child (a cache)."""
    __slots__ = ("ident", "type_name", "owner", "__weakref__")

    def __init__(self, ident, type_name, owner):
        self.ident, self.type_name, self.owner = ident, type_name, owner

    def __del__(self):
        try:
            self.owner.release.append(self.ident)
        except Exception:  # noqa: BLE001 - during shutdown
            pass

    def __repr__(self):
        return f"<a {self.type_name} kept in the student's process>"


class Child:
    """One child process running the student's code from ``workspace``.

    modules: the graded modules (dotted names), imported by ``start``;
    allowed: every minirnn module the child may load (``needed_modules``);
    timeout: seconds for the CPU-time backstop (the caller's deadlines do the timing).
    """

    def __init__(self, workspace, modules, allowed, timeout):
        self.workspace, self.modules, self.allowed = Path(workspace), modules, allowed
        self.timeout = timeout
        self.proc = None
        self.tmp = None
        self.release = []        # handles the teacher dropped, freed with the next request
        self.replies = queue.Queue()
        self.requests = queue.Queue()
        self.stderr_tail = b""
        self.lost = self.timed_out = False
        self.where = ""          # the student's file that the call in flight runs

    # -- life ------------------------------------------------------------------------

    def start(self, deadline):
        """Start the child and import the graded modules. Raises StudentError (the
        import raised), ChildLost, TimedOut, or GraderError (the grader's own set-up)."""
        self.tmp = Path(tempfile.mkdtemp(prefix="minirnn-grade-"))
        view, lib, work = (self.tmp / d for d in ("view", "lib", "work"))
        for d in (view, lib, work):
            d.mkdir()
        build_view(self.workspace, self.allowed, view)
        limits = dict(LIMITS, RLIMIT_CPU=int(2 * self.timeout + 30))
        self.proc = subprocess.Popen(
            [python_executable(), "-I", "-S", "-B", "-c", _START_TEXT],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=work,
            env=environment(work), start_new_session=(os.name == "posix"))
        for target in (self._read_replies, self._write_requests, self._read_stderr):
            threading.Thread(target=target, daemon=True).start()
        source = Path(wire.__file__).read_bytes()
        self.requests.put(len(source).to_bytes(8, "little") + source)
        self.requests.put(wire.pack({"view": str(view), "lib": numpy_path(lib),
                                     "allowed": [*STAND_INS, *self.allowed],
                                     "limits": limits}))
        try:
            hello, _ = self._reply(deadline, "starting")
        except (ChildLost, TimedOut) as e:
            raise GraderError(f"the grading process did not start: {e.message}; its last "
                              f"output: {self._stderr_text() or '(none)'}") from None
        if not hello.get("ok"):
            raise GraderError(f"the grading process could not set up: {hello.get('error')}")
        files = ", ".join(module_path(m) for m in self.modules)
        self._request({"cmd": "import", "modules": list(self.modules)}, [], deadline,
                      f"the import of {files}", files)

    def close(self):
        """Stop the child and everything it started; remove its folder."""
        if self.proc is not None:
            self.requests.put(None)
            if self.proc.poll() is None or os.name == "posix":
                try:
                    if os.name == "posix":
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    else:
                        self.proc.kill()
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a process that cannot die
                pass
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                try:
                    stream.close()
                except OSError:
                    pass
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def alive(self):
        return self.proc is not None and not (self.lost or self.timed_out)

    # -- calls -----------------------------------------------------------------------

    def call(self, module, function, args, kwargs, deadline):
        """``module.function(*args, **kwargs)`` in the child: its return value, arrays as
        arrays and anything else as a Handle. Array arguments get back what the call left
        in them, so an in-place write shows here as it would in one process."""
        out = []
        request = {"cmd": "call", "module": module, "function": function,
                   "args": [wire.encode(a, out, self._handle_id) for a in args],
                   "kwargs": {k: wire.encode(v, out, self._handle_id) for k, v in kwargs.items()}}
        reply, arrays = self._request(request, out, deadline, function, module_path(module))
        try:
            result = wire.decode(reply["result"], arrays, self._handle)
            after = [(a, reply["args"][i]) for i, a in enumerate(args)]
            after += [(v, reply["kwargs"].get(k)) for k, v in kwargs.items()]
            for original, spec in after:
                if isinstance(original, np.ndarray) and spec is not None:
                    _copy_back(original, wire.decode(spec, arrays, self._handle))
        except (KeyError, IndexError, TypeError, AttributeError, wire.ProtocolError) as e:
            self._lose(f"its answer to {function} broke the grader's format ({e})",
                       "BrokenChannel")
        return result

    def _handle_id(self, value):
        if isinstance(value, Handle) and value.owner is self:
            return value.ident, value.type_name
        raise GraderError(f"cannot send a {type(value).__name__} to the student's process")

    def _handle(self, ident, type_name):
        return Handle(ident, type_name, self)

    def _request(self, request, arrays, deadline, what, where):
        if not self.alive:
            raise ChildLost("the student's process is no longer running")
        request["release"], self.release = self.release, []
        self.where = where
        self.requests.put(wire.pack(request, arrays))
        reply, out = self._reply(deadline, what)
        if not isinstance(reply, dict) or "ok" not in reply:
            self._lose(f"its answer to {what} is not the grader's format", "BrokenChannel")
        if not reply["ok"]:
            error = reply.get("error")
            if not isinstance(error, dict):
                self._lose(f"its answer to {what} is not the grader's format", "BrokenChannel")
            raise StudentError(str(error.get("type", "Error"))[:80],
                               str(error.get("message", ""))[:wire.MAX_MESSAGE_TEXT],
                               str(error.get("where", ""))[:300])
        return reply, out

    def _reply(self, deadline, what):
        try:
            item = self.replies.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            self.timed_out = True
            self._kill()
            raise TimedOut(f"{what} was still running when the time allowed ran out",
                           self.where) from None
        if isinstance(item, BaseException):
            if isinstance(item, wire.ProtocolError):
                self._lose(f"it wrote something that is not the grader's format while {what} "
                           f"ran ({item})", "BrokenChannel")
            self._lose(f"the process ended while {what} ran ({self._status()}): "
                       "os._exit, sys.exit outside a function, a crash or a kill")
        return item

    def _lose(self, message, error="Exited"):
        self.lost = True
        self._kill()
        raise ChildLost(message, self.where, error)

    def _kill(self):
        try:
            if os.name == "posix":
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:
                self.proc.kill()
        except (ProcessLookupError, PermissionError, OSError):
            pass

    def _status(self):
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "it closed the grader's channel"
        if code < 0:
            try:
                return f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit status {code}"

    def _stderr_text(self):
        return self.stderr_tail.decode("utf-8", "replace").strip()[-1000:]

    # -- the three threads that talk to the process ------------------------------------

    def _read_replies(self):
        read_exact = wire.fd_reader(self.proc.stdout.fileno())
        while True:
            try:
                self.replies.put(wire.receive(read_exact))
            except BaseException as e:  # noqa: BLE001 - EOF, a bad message: the caller decides
                self.replies.put(e if isinstance(e, (EOFError, wire.ProtocolError))
                                 else wire.ProtocolError(str(e)))
                return

    def _write_requests(self):
        fd = self.proc.stdin.fileno()
        while True:
            data = self.requests.get()
            if data is None:
                return
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            except OSError:  # the child is gone; its reader reports that
                return

    def _read_stderr(self):
        fd = self.proc.stderr.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.stderr_tail = (self.stderr_tail + chunk)[-4096:]


def _copy_back(original, after):
    """Write into ``original`` what the student's call left in its copy."""
    if not original.flags.writeable:
        return
    if isinstance(after, np.ndarray) and after.shape == original.shape:
        np.copyto(original, after, casting="unsafe")
    elif original.dtype.kind in "fc":
        original[...] = np.nan  # its shape was changed in place: it no longer holds its values


class Remote:
    """The student's functions as ``checks.py`` calls them: every call runs in ``child``.

    module_of: function name -> dotted module name; deadline: ``time.monotonic()`` value
    by which every call must have returned.
    """

    def __init__(self, child, module_of, deadline):
        self._child, self._module_of, self._deadline = child, module_of, deadline

    def __getattr__(self, name):
        if name.startswith("_") or name not in self._module_of:
            raise AttributeError(name)
        child, module, deadline = self._child, self._module_of[name], self._deadline

        def call(*args, **kwargs):
            return child.call(module, name, args, kwargs, deadline)
        call.__name__ = name
        return call
