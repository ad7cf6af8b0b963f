"""Safe checkpoints: one ``.npz`` file of host arrays plus JSON metadata.

A checkpoint holds named arrays (``"model/Wx"``, ``"optim/m/Wx"``...) and a
JSON-serialisable ``metadata`` dict (config, vocabulary, optimizer settings,
RNG state, step...)::

    from minirnn.checkpoint import save_checkpoint, load_checkpoint

    save_checkpoint("runs/shakespeare/last.npz",
                    {"model/Wx": Wx, "model/Wh": Wh}, {"step": 1200, "vocab": chars})
    arrays, metadata = load_checkpoint("runs/shakespeare/last.npz")

The guarantees:

* **Portable.** Every array is copied to the host with ``backend.to_numpy``, so a
  checkpoint written from a CuPy (GPU) run loads on a CPU-only machine. Arrays come
  back as ``numpy.ndarray`` with their dtype intact (float32 stays float32).
* **Atomic.** The file is written to a temporary file in the same directory, flushed
  and ``fsync``-ed, then moved over the target with ``os.replace``. A crash, an
  exception or Ctrl-C half way leaves the previous checkpoint byte-for-byte as it was
  and no temporary file behind.
* **No silent NaN.** Arrays holding NaN or Inf are refused unless
  ``allow_nonfinite=True``, so a diverged run never overwrites the last good
  checkpoint.
* **No pickles.** Files are read with ``allow_pickle=False`` and object arrays are
  refused before anything is unpickled, so loading a checkpoint from someone else
  cannot run code.

File layout (format version 1): an uncompressed zip of ``.npy`` members, as written
by ``numpy.savez``, one per array (member name ``key + ".npy"``, so ``np.load`` can
read the file too), plus the member ``__meta__``: a uint8 array holding UTF-8 JSON::

    {"format": "minirnn-checkpoint", "version": 1,
     "arrays": {"model/Wx": {"dtype": "<f4", "shape": [65, 512]}, ...},
     "metadata": {...the caller's metadata...}}

JSON has no tuples and no non-string keys: tuples come back as lists, NumPy scalars
(``np.float32(0.5)``) are stored as Python numbers, and a dict with a non-``str`` key
(e.g. ``{0: "a"}``) is refused rather than silently turned into ``{"0": "a"}``.

This module handles files on the host, so it uses NumPy directly for I/O; it never
does array math on device arrays except the finiteness check, which runs on the
arrays' own module.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
import zipfile
import zlib
from collections.abc import Mapping

import numpy as _np

from . import backend

__all__ = [
    "save_checkpoint", "load_checkpoint", "is_finite_checkpoint", "CheckpointError",
    "remove_stale_temporaries",
    "FORMAT", "VERSION", "META_KEY",
]

FORMAT = "minirnn-checkpoint"
VERSION = 1
META_KEY = "__meta__"

# What a damaged or foreign file can raise from np.load / zipfile / the .npy reader.
_CORRUPT = (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error,
            NotImplementedError, RuntimeError, SyntaxError, KeyError, OverflowError)


class CheckpointError(ValueError):
    """A file could not be loaded as a minirnn checkpoint (missing, damaged or foreign)."""


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------

def _check_key(key):
    if not isinstance(key, str):
        raise TypeError(f"save_checkpoint: array names must be str, got {type(key).__name__} "
                        f"{key!r}")
    if not key:
        raise ValueError("save_checkpoint: array names must be non-empty strings, got ''")
    if key == META_KEY:
        raise ValueError(f"save_checkpoint: the array name {META_KEY!r} is reserved for the "
                         "checkpoint's metadata; choose another name")
    if "\x00" in key:
        raise ValueError(f"save_checkpoint: array name {key!r} contains a NUL character")


def _jsonable(obj, where, _stack=()):
    """A JSON-ready copy of ``obj``, or a TypeError naming where the offending value is."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, _np.generic) and not isinstance(obj, (_np.void, _np.object_)):
        return _jsonable(obj.item(), where, _stack)
    if isinstance(obj, (dict, list, tuple)):
        if id(obj) in _stack:
            raise ValueError(f"save_checkpoint: {where} refers to itself (a circular reference)")
        stack = _stack + (id(obj),)
        if isinstance(obj, dict):
            out = {}
            for k, v in obj.items():
                if not isinstance(k, str):
                    raise TypeError(
                        f"save_checkpoint: {where} has the key {k!r} of type "
                        f"{type(k).__name__}; JSON keys must be str (it would come back as "
                        f"{json.dumps(str(k))}); convert the keys to str yourself")
                out[k] = _jsonable(v, f"{where}[{k!r}]", stack)
            return out
        return [_jsonable(v, f"{where}[{i}]", stack) for i, v in enumerate(obj)]
    hint = ""
    if isinstance(obj, _np.ndarray) or hasattr(obj, "__array__") \
            or isinstance(obj, backend.StrictArray):
        hint = "; put arrays in `arrays`, or use .tolist() for a small one"
    elif isinstance(obj, os.PathLike):
        hint = "; use str(path)"
    raise TypeError(f"save_checkpoint: metadata must be JSON-serialisable, but {where} is a "
                    f"{type(obj).__name__}{hint}")


def is_finite_checkpoint(arrays):
    """The names of the arrays in ``arrays`` that hold a NaN or an Inf (``[]`` if none).

    ``arrays`` is a dict of NumPy, CuPy or StrictArray arrays; the check runs on each
    array's own module (no copy to the host). Integer and bool arrays are always finite.
    """
    if not isinstance(arrays, Mapping):
        raise TypeError(f"is_finite_checkpoint: arrays must be a dict of arrays, got "
                        f"{type(arrays).__name__}")
    bad = []
    for key, a in arrays.items():
        mod = backend.get_array_module(a)
        if not hasattr(a, "dtype"):
            a = _np.asarray(a)
            mod = _np
        if a.dtype.kind in "fc" and not bool(mod.isfinite(a).all()):
            bad.append(key)
    return bad


# --------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------

def _write_npz(fileobj, arrays):
    """Write ``arrays`` (name -> host ndarray) to ``fileobj`` as an uncompressed npz.

    The same layout as ``numpy.savez``, without its keyword clashes (an array may be
    called ``file`` or ``allow_pickle``) and never pickling.
    """
    with zipfile.ZipFile(fileobj, mode="w", compression=zipfile.ZIP_STORED,
                         allowZip64=True) as zf:
        for key, arr in arrays.items():
            with zf.open(key + ".npy", mode="w", force_zip64=True) as member:
                _np.lib.format.write_array(member, arr, allow_pickle=False)


def _new_file_mode(path):
    """The permission bits the checkpoint gets: the old file's, else 0o666 less the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_dir(directory):
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path, arrays, metadata, *, allow_nonfinite=False):
    """Write ``arrays`` and ``metadata`` atomically to the ``.npz`` file ``path``.

    Args:
        path: the file to write (str or path-like); its parent directory is created
            if needed. The name is used as given (no ``.npz`` is appended).
        arrays: dict ``name -> array``; names are non-empty str, may contain ``/``
            (``"model/Wx"``, ``"optim/m/Wx"``) and may not be ``"__meta__"``. Values
            may be NumPy, CuPy or StrictArray arrays (or anything ``numpy.asarray``
            accepts); they are stored as host NumPy arrays with their dtype.
            Object arrays are refused.
        metadata: a JSON-serialisable dict (str keys; values None, bool, int, float,
            str, list, tuple, dict or NumPy scalars).
        allow_nonfinite: store arrays holding NaN/Inf. Off by default: a ValueError
            naming the arrays is raised instead and nothing is written.

    Returns:
        ``pathlib.Path(path)``.

    The file appears complete or not at all: it is written to a temporary file in the
    same directory, flushed and fsync-ed, then renamed over ``path``. On any error the
    temporary file is removed and an existing file at ``path`` is left untouched.
    """
    path = pathlib.Path(path)
    if not isinstance(arrays, Mapping):
        raise TypeError(f"save_checkpoint: arrays must be a dict name -> array, got "
                        f"{type(arrays).__name__}")
    if not isinstance(metadata, Mapping):
        raise TypeError(f"save_checkpoint: metadata must be a dict, got "
                        f"{type(metadata).__name__}")
    host = _host_arrays(arrays)
    if not allow_nonfinite:
        bad = is_finite_checkpoint(host)
        if bad:
            raise ValueError(
                f"save_checkpoint: arrays {', '.join(repr(k) for k in bad)} hold NaN or Inf; "
                f"refusing to write {path} (pass allow_nonfinite=True to save them anyway)")
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "arrays": {k: {"dtype": a.dtype.str, "shape": list(a.shape)} for k, a in host.items()},
        "metadata": _jsonable(dict(metadata), "metadata"),
    }
    meta_bytes = json.dumps(meta).encode("ascii")  # non-ASCII text as \u escapes
    host[META_KEY] = _np.frombuffer(meta_bytes, dtype=_np.uint8)
    if path.is_dir():
        raise IsADirectoryError(f"save_checkpoint: {path} is a directory, not a file name")
    _write_atomically(path, host)
    return path


def _host_arrays(arrays):
    """``arrays`` as host NumPy arrays, keys checked, object arrays refused."""
    host = {}
    for key, value in arrays.items():
        _check_key(key)
        try:
            a = backend.to_numpy(value)
        except Exception as e:
            raise TypeError(f"save_checkpoint: arrays[{key!r}] could not be converted to a "
                            f"NumPy array ({type(value).__name__}): {e}") from e
        if a.dtype.hasobject:
            raise TypeError(f"save_checkpoint: arrays[{key!r}] has dtype {a.dtype}, which "
                            "would need pickling; checkpoints hold numeric, bool and string "
                            "arrays only")
        host[key] = a
    return host


def _temporary_prefix(path):
    return f".{path.name}."


def _write_atomically(path, members):
    """Write the npz of ``members`` to a temporary file beside ``path``, fsync it and
    rename it over ``path``; on any error remove the temporary file."""
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    mode = _new_file_mode(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=_temporary_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            _write_npz(f, members)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def remove_stale_temporaries(path):
    """Delete the temporary files a killed save of ``path`` left beside it (a save that
    was stopped with ``kill -9`` cannot clean up after itself); returns their names."""
    path = pathlib.Path(path)
    removed = []
    for tmp in path.parent.glob(_temporary_prefix(path) + "*.tmp"):
        try:
            tmp.unlink()
            removed.append(tmp.name)
        except OSError:
            pass
    return removed


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------

def _member_header(zf, member):
    """(shape, dtype) from a ``.npy`` member's header, read without loading the data."""
    with zf.open(member) as fp:
        version = _np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, _fortran, dtype = _np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, _fortran, dtype = _np.lib.format.read_array_header_2_0(fp)
        else:
            raise ValueError(f".npy format version {version} is not supported")
    return shape, dtype


def _read_member(zf, member):
    """The array in one ``.npy`` member; never unpickles."""
    with zf.open(member) as fp:
        return _np.lib.format.read_array(fp, allow_pickle=False)


def _corrupt(path, detail):
    return CheckpointError(
        f"checkpoint {path} is truncated or not a minirnn checkpoint ({detail})")


def _foreign(path, detail):
    return CheckpointError(f"{path} was not written by minirnn: {detail}")


def _failure(e):
    """A reader's exception in words, without NumPy's advice to load pickles "unsafely"
    (minirnn never does, and never tells a user to)."""
    text = f"{type(e).__name__}: {e}"
    if "pickle" in text.lower():
        return "it holds pickled Python objects, which minirnn never loads"
    return text


def load_checkpoint(path):
    """Read a checkpoint written by ``save_checkpoint``.

    Returns:
        ``(arrays, metadata)``: ``arrays`` a dict name -> ``numpy.ndarray`` (host arrays,
        dtypes as saved, in the order saved; move them to a device with
        ``backend.asarray``), ``metadata`` the dict that was saved (tuples as lists).

    Raises:
        CheckpointError (a ValueError) with the path in its message when the file does
        not exist, is truncated or corrupt, was not written by minirnn, was written by a
        newer minirnn, or contains an object (pickled) array. Nothing is ever unpickled.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory, not a checkpoint file")
    try:
        npz = _np.load(path, allow_pickle=False)
    except _CORRUPT as e:
        raise _corrupt(path, _failure(e)) from e
    if not isinstance(npz, _np.lib.npyio.NpzFile):
        raise _foreign(path, "it is a single .npy array, not an .npz checkpoint")
    with npz:
        keys = _member_keys(path, npz.zip)
        manifest, metadata = _read_meta(path, npz.zip)
        data_keys = [k for k in keys if k != META_KEY]
        if set(data_keys) != set(manifest):
            missing = sorted(set(manifest) - set(data_keys))
            extra = sorted(set(data_keys) - set(manifest))
            raise _corrupt(path, f"arrays missing: {missing}, unexpected: {extra}")
        arrays = {key: _read_checked(path, npz.zip, key, manifest[key]) for key in manifest}
    return arrays, metadata


def _member_keys(path, zf):
    """The array names of the archive, each a ``.npy`` member without object dtype."""
    try:
        names = zf.namelist()
        if len(set(names)) != len(names):
            raise _corrupt(path, "the archive has duplicate members")
        keys = []
        for member in names:
            if not member.endswith(".npy"):
                raise _foreign(path, f"the archive member {member!r} is not a .npy array")
            key = member[:-len(".npy")]
            _shape, dtype = _member_header(zf, member)
            if dtype.hasobject:
                raise CheckpointError(
                    f"checkpoint {path}: the array {key!r} has dtype {dtype}, which "
                    "needs unpickling; minirnn never loads pickled data (it can run "
                    "arbitrary code), so this file is refused")
            keys.append(key)
    except CheckpointError:
        raise
    except _CORRUPT as e:
        raise _corrupt(path, _failure(e)) from e
    if META_KEY not in keys:
        raise _foreign(path, f"it has no {META_KEY!r} entry (it holds {keys[:5]}"
                             f"{'...' if len(keys) > 5 else ''})")
    return keys


def _read_meta(path, zf):
    """The manifest (array name -> dtype and shape) and the caller's metadata."""
    try:
        raw = _read_member(zf, META_KEY + ".npy")
    except _CORRUPT as e:
        raise _corrupt(path, _failure(e)) from e
    if raw.dtype != _np.uint8 or raw.ndim != 1:
        raise _foreign(path, f"its {META_KEY!r} entry is not JSON bytes")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise _foreign(path, f"its {META_KEY!r} entry is not valid UTF-8 JSON ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        marker = meta.get("format") if isinstance(meta, dict) else None
        raise _foreign(path, f"its format marker is {marker!r}, expected {FORMAT!r}")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _corrupt(path, f"invalid format version {version!r}")
    if version > VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version}, but this minirnn reads "
            f"versions up to {VERSION}; upgrade minirnn to load it")
    manifest, metadata = meta.get("arrays"), meta.get("metadata")
    if not isinstance(manifest, dict) or not isinstance(metadata, dict):
        raise _corrupt(path, f"its {META_KEY!r} entry lacks the 'arrays' or 'metadata' field")
    return manifest, metadata


def _read_checked(path, zf, key, spec):
    """The array ``key``, which must have the dtype and shape its manifest ``spec`` says."""
    try:
        a = _read_member(zf, key + ".npy")
    except _CORRUPT as e:
        raise _corrupt(path, f"array {key!r}: {_failure(e)}") from e
    try:
        ok = (isinstance(spec, dict) and isinstance(spec.get("dtype"), str)
              and a.dtype == _np.dtype(spec["dtype"]) and list(a.shape) == spec.get("shape"))
    except TypeError:
        ok = False
    if not ok:
        raise _corrupt(path, f"array {key!r} is {a.dtype} {a.shape}, its manifest says {spec}")
    return a


def load_module(path, models):
    """Rebuild a model saved as ``{"kind": kind, "model": <constructor kwargs>}`` metadata
    plus ``"model/<param>"`` arrays; ``models`` maps the kinds the caller accepts to their
    classes. Returns (model, arrays, metadata); a checkpoint of another kind is refused
    with a message naming both kinds.
    """
    arrays, meta = load_checkpoint(path)
    kind = meta.get("kind")
    if kind not in models:
        wanted = " or ".join(repr(k) for k in models)
        raise CheckpointError(f"{path} holds a {kind!r} checkpoint, not a {wanted} one")
    model = models[kind](**meta["model"])
    model.load_state_dict({k[len("model/"):]: v for k, v in arrays.items()
                           if k.startswith("model/")})
    return model, arrays, meta
