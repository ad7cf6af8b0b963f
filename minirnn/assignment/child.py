"""The student's side of grading: the program that runs the student's code, and its wire format.

The teacher's process (``sandbox.py``) starts a fresh Python for each graded function
(``python -I -S -B``: no environment variables, no site-packages, no bytecode written)
and sends it the text of this file on its standard input, so the child never needs a
path to a teacher file or an importable ``minirnn``. The child then

* keeps its standard input and output as the channel to the teacher and points file
  descriptors 0 and 1 elsewhere, so nothing the student's code prints reaches the channel;
* puts on ``sys.path`` only a folder holding the few files of the student's workspace that
  the graded module needs (the "view") and a folder of links to NumPy;
* installs an import guard: graded code may import the standard library, NumPy and those
  few ``minirnn`` modules, nothing else (no ``minirnn.functional.convlstm``, no torch);
* answers requests: import these modules; call this function with these arguments.

It never compares anything. Every value the student's code returns goes back to the
teacher, who judges it; an object that is not an array (a cache) stays here and the
teacher gets a handle to pass back to the backward pass.

Wire format, both ways: 16 bytes (header length, payload length, little-endian uint64),
a JSON header, then the raw bytes of the arrays the header lists by dtype and shape.
``receive`` checks every length, dtype and shape, so the teacher can read whatever a
child sends without executing any of it (no pickle).

Only the standard library and NumPy are used here: this file runs on its own.
"""

import json
import os
import struct
import sys

np = None  # the child imports NumPy once its sys.path is set (see _serve)
if __name__ != "__minirnn_grader__":
    import numpy as np

MAX_HEADER = 1 << 20        # bytes of JSON in one message
MAX_PAYLOAD = 256 << 20     # bytes of array data in one message
MAX_MESSAGE_TEXT = 2000     # characters kept of an exception's message
MAX_ITEMS, MAX_DEPTH = 64, 8  # a longer or deeper tuple or list stays where it was made
_PREFIX = struct.Struct("<QQ")
_ARRAY_KINDS = "biufc"      # bool, integers, floats, complex: nothing that holds objects

# The first thing the child runs (``python -c BOOTSTRAP``): read this file's text from
# standard input, unbuffered so that no byte meant for the channel is swallowed, and run it.
BOOTSTRAP = (
    "import os\n"
    "def _read(n):\n"
    "    b = b''\n"
    "    while len(b) < n:\n"
    "        c = os.read(0, n - len(b))\n"
    "        if not c:\n"
    "            raise SystemExit(70)\n"
    "        b += c\n"
    "    return b\n"
    "exec(compile(_read(int.from_bytes(_read(8), 'little')), '<minirnn grader>', 'exec'),\n"
    "     {'__name__': '__minirnn_grader__'})\n"
)


class ProtocolError(Exception):
    """A message that breaks the wire format (too long, a bad dtype, truncated...)."""


# --------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------

def pack(header, arrays=()):
    """One message as bytes: ``header`` (a JSON-able dict) and the arrays it refers to."""
    metas, chunks = [], []
    for a in arrays:
        a = np.ascontiguousarray(a)
        metas.append([a.dtype.str, list(a.shape)])
        chunks.append(a.tobytes())
    head = json.dumps(dict(header, arrays=metas)).encode("utf-8")
    return _PREFIX.pack(len(head), sum(len(c) for c in chunks)) + head + b"".join(chunks)


def receive(read_exact):
    """Read one message with ``read_exact(n) -> n bytes``: ``(header dict, [arrays])``.

    Raises ProtocolError for anything malformed, EOFError when the stream ends first.
    """
    head_len, payload_len = _PREFIX.unpack(read_exact(_PREFIX.size))
    if head_len > MAX_HEADER or payload_len > MAX_PAYLOAD:
        raise ProtocolError(f"a message of {head_len} + {payload_len} bytes is over the limit "
                            f"({MAX_HEADER} + {MAX_PAYLOAD})")
    try:
        header = json.loads(read_exact(head_len).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ProtocolError(f"the header is not JSON: {e}") from None
    if not isinstance(header, dict) or not isinstance(header.get("arrays"), list):
        raise ProtocolError("the header is not a JSON object with a list of arrays")
    payload = read_exact(payload_len)
    arrays, pos = [], 0
    for meta in header.pop("arrays"):
        dtype, shape = _array_meta(meta)
        size = dtype.itemsize
        for n in shape:
            size *= n
        if pos + size > len(payload):
            raise ProtocolError("the arrays are longer than the payload")
        arrays.append(np.frombuffer(payload[pos:pos + size], dtype=dtype).reshape(shape).copy())
        pos += size
    if pos != len(payload):
        raise ProtocolError("the payload is longer than its arrays")
    return header, arrays


def _array_meta(meta):
    if not (isinstance(meta, list) and len(meta) == 2 and isinstance(meta[0], str)
            and isinstance(meta[1], list) and len(meta[1]) <= 32
            and all(type(n) is int and 0 <= n < 2 ** 40 for n in meta[1])):
        raise ProtocolError(f"an array is described as {str(meta)[:80]}")
    try:
        dtype = np.dtype(meta[0])
    except (TypeError, ValueError):
        raise ProtocolError(f"unknown dtype {meta[0][:40]!r}") from None
    if dtype.kind not in _ARRAY_KINDS or dtype.hasobject or dtype.itemsize > 16:
        raise ProtocolError(f"dtype {dtype} is not a plain number type")
    return dtype, tuple(meta[1])


def fd_reader(fd):
    """``read_exact`` for a file descriptor: EOFError when it closes first."""
    def read_exact(n):
        parts, left = [], n
        while left:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                raise EOFError("the stream ended")
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)
    return read_exact


# --------------------------------------------------------------------------------------
# Values: arrays travel, scalars travel, anything else stays where it was made
# --------------------------------------------------------------------------------------

def encode(value, arrays, keep, depth=0):
    """``value`` as JSON, its arrays appended to ``arrays``. ``keep(obj) -> (id, type name)``
    is called for an object that cannot travel (it stays on this side as a handle): not a
    number array, a number, a string, None, or a short tuple or list of those."""
    if isinstance(value, np.ndarray) and value.dtype.kind in _ARRAY_KINDS \
            and not value.dtype.hasobject and value.dtype.itemsize <= 16:
        arrays.append(value)
        return {"a": len(arrays) - 1}
    if isinstance(value, np.generic) and value.dtype.kind in _ARRAY_KINDS:
        arrays.append(np.asarray(value))
        return {"a": len(arrays) - 1, "scalar": True}
    if value is None or isinstance(value, (bool, int, float, str)) and type(value) in (
            bool, int, float, str):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2 ** 53:
            return _kept(value, keep)
        return {"v": value}
    if type(value) in (tuple, list) and len(value) <= MAX_ITEMS and depth < MAX_DEPTH:
        return {"t" if type(value) is tuple else "l": [encode(v, arrays, keep, depth + 1)
                                                        for v in value]}
    return _kept(value, keep)


def _kept(value, keep):
    ident, name = keep(value)
    return {"h": ident, "type": name}


def decode(spec, arrays, handle, depth=0):
    """The value that ``encode`` described; ``handle(id, type name)`` makes a kept object's
    stand-in. Raises ProtocolError for anything ``encode`` cannot have written."""
    if depth > MAX_DEPTH or not isinstance(spec, dict):
        raise ProtocolError("a value is nested too deep or is not described by an object")
    if "a" in spec:
        i = spec["a"]
        if type(i) is not int or not 0 <= i < len(arrays):
            raise ProtocolError("a value refers to an array that is not there")
        return arrays[i][()] if spec.get("scalar") else arrays[i]
    if "v" in spec:
        v = spec["v"]
        if v is not None and type(v) not in (bool, int, float, str):
            raise ProtocolError("a plain value is not a number, a string or null")
        return v
    for kind, make in (("t", tuple), ("l", list)):
        if kind in spec:
            if not isinstance(spec[kind], list) or len(spec[kind]) > MAX_ITEMS:
                raise ProtocolError(f"a tuple is not a list of at most {MAX_ITEMS} values")
            return make(decode(s, arrays, handle, depth + 1) for s in spec[kind])
    if "h" in spec and type(spec["h"]) is int and isinstance(spec.get("type"), str):
        return handle(spec["h"], spec["type"][:80])
    raise ProtocolError(f"a value is described as {str(spec)[:80]}")


# --------------------------------------------------------------------------------------
# The child: run the student's code on request
# --------------------------------------------------------------------------------------

class _ImportGuard:
    """A meta path finder placed first: the graded code may import the standard library,
    NumPy and the listed minirnn modules; anything else raises ImportError saying so."""

    def __init__(self, allowed):
        self.allowed = frozenset(allowed)
        self.shown = ", ".join(sorted(n for n in self.allowed  # modules, not their packages
                                      if not any(m.startswith(n + ".") for m in self.allowed)))

    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if name in self.allowed or top == "numpy" or (
                top != "minirnn" and top in sys.stdlib_module_names):
            return None  # the ordinary finders load it
        raise ImportError(
            f"the grader does not let graded code import {name}: it may use the standard "
            f"library, numpy and {self.shown}", name=name)

    def invalidate_caches(self):
        pass


def _where(exc, view):
    """``path:line`` of the innermost place in the student's files that ``exc`` passed."""
    found, inside = "", view.rstrip(os.sep) + os.sep
    if isinstance(exc, SyntaxError) and isinstance(exc.filename, str) \
            and exc.filename.startswith(inside):
        found = f"{_relative(exc.filename, view)}:{exc.lineno}"
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.startswith(inside):
            found = f"{_relative(filename, view)}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


def _relative(filename, view):
    return os.path.relpath(filename, view).replace(os.sep, "/")


def _error(exc, view):
    if isinstance(exc, SystemExit):
        message = f"the code called sys.exit({exc.code!r})"
    else:
        try:
            message = str(exc)
        except BaseException:  # noqa: BLE001 - a student's exception whose str() fails
            message = "(the exception's message could not be read)"
    return {"type": type(exc).__name__[:80], "message": message[:MAX_MESSAGE_TEXT],
            "where": _where(exc, view)}


class _Server:
    def __init__(self, read_exact, write_fd, view):
        self.read_exact, self.write_fd, self.view = read_exact, write_fd, view
        self.modules, self.kept, self.next_id = {}, {}, 0

    def send(self, header, arrays=()):
        data = memoryview(pack(header, arrays))
        while data:
            data = data[os.write(self.write_fd, data):]

    def keep(self, obj):
        self.next_id += 1
        self.kept[self.next_id] = obj
        return self.next_id, type(obj).__name__

    def handle(self, ident, name):
        if ident not in self.kept:
            raise ProtocolError(f"no object {ident} ({name}) is kept here")
        return self.kept[ident]

    def run(self):
        while True:
            try:
                request, arrays = receive(self.read_exact)
            except EOFError:
                return
            for ident in request.get("release", ()):
                self.kept.pop(ident, None)
            try:
                reply, out = getattr(self, "do_" + request["cmd"])(request, arrays)
            except BaseException as e:  # noqa: BLE001 - the student's code may raise anything
                reply, out = {"ok": False, "error": _error(e, self.view)}, []
            self.send(reply, out)

    def do_import(self, request, arrays):
        import importlib
        for name in request["modules"]:
            self.modules[name] = importlib.import_module(name)
        return {"ok": True}, []

    def do_call(self, request, arrays):
        fn = getattr(self.modules[request["module"]], request["function"])
        args = decode({"l": request["args"]}, arrays, self.handle)
        kwargs = {k: decode(v, arrays, self.handle) for k, v in request["kwargs"].items()}
        result = fn(*args, **kwargs)
        out = []
        reply = {"ok": True, "result": encode(result, out, self.keep),
                 # The arguments as the call left them: the teacher sees in-place writes.
                 "args": [encode(a, out, self.keep) if isinstance(a, np.ndarray) else None
                          for a in args],
                 "kwargs": {k: encode(v, out, self.keep) for k, v in kwargs.items()
                            if isinstance(v, np.ndarray)}}
        return reply, out


def _limit_resources(limits):
    try:
        import resource
    except ImportError:  # not on POSIX: the teacher's time limit still applies
        return
    for name, value in limits.items():
        which = getattr(resource, name, None)
        if which is None:
            continue
        soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        try:
            resource.setrlimit(which, (value, hard))
        except (ValueError, OSError):
            pass


def _serve():
    global np
    # The channel keeps its own descriptors; 0 reads nothing and 1 goes where 2 goes, so
    # print() or os.write(1, ...) in the student's code never reaches the teacher.
    read_fd, write_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    read_exact = fd_reader(read_fd)
    header, _ = receive(read_exact)  # no arrays: NumPy is not imported yet
    server = _Server(read_exact, write_fd, header["view"])
    try:
        _limit_resources(header["limits"])
        sys.path[:] = [header["view"], *header["lib"]] + [
            p for p in sys.path if p and os.path.isabs(p)]
        import numpy
        np = numpy
        sys.meta_path.insert(0, _ImportGuard(header["allowed"]))
    except BaseException as e:  # noqa: BLE001 - the grader's own set-up failed: say why
        server.send({"ok": False, "error": {"type": type(e).__name__, "message": str(e),
                                            "where": ""}})
        raise SystemExit(71) from None
    server.send({"ok": True, "numpy": np.__version__})
    server.run()


if __name__ == "__minirnn_grader__":
    _serve()
