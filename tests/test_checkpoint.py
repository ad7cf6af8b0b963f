"""minirnn.checkpoint: exact round trips, atomic writes, and refusing bad files.

- arrays come back as host NumPy with dtype and values exact; metadata round-trips;
- arrays from the strict (GPU stand-in) backend are saved as host arrays;
- a failure half way through a save leaves the old checkpoint byte-identical and no
  temporary file behind; NaN/Inf are refused unless allow_nonfinite=True;
- truncated, corrupt, random, foreign, too-new and pickle-carrying files raise
  CheckpointError with a clear message, and a pickle payload is never executed.
"""

import io
import json
import os
import sys
import zipfile

import numpy as np
import pytest

from minirnn import backend
from minirnn import checkpoint as ckpt
from minirnn.checkpoint import (CheckpointError, is_finite_checkpoint, load_checkpoint,
                                save_checkpoint)


def sample_arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "model/Wx": rng.standard_normal((5, 12)).astype(np.float32),
        "model/Wh": rng.standard_normal((3, 12)),  # float64
        "model/b": np.zeros(12, dtype=np.float32),
        "optim/m/Wx": rng.standard_normal((5, 12)).astype(np.float32),
        "optim/step": np.array(17, dtype=np.int64),  # 0-d
        "data/ids": rng.integers(0, 65, size=(2, 7)).astype(np.int32),
        "data/mask": rng.random((2, 7)) > 0.5,
        "data/bytes": np.arange(256, dtype=np.uint8),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "fortran": np.asfortranarray(rng.standard_normal((3, 4)).astype(np.float32)),
        # names that would clash with np.savez's own parameters
        "file": np.array([1.5, 2.5]),
        "allow_pickle": np.array([3], dtype=np.int16),
    }


def sample_metadata():
    return {
        "config": {"cell": "lstm", "hidden": 512, "layers": 2, "dropout": 0.25,
                   "tie_weights": False, "extra": None},
        "vocab": ["\n", " ", "a", "é", "😀", '"', "\\"],
        "optimizer": {"name": "adam", "lr": 2e-3, "betas": [0.9, 0.999], "eps": 1e-8},
        "rng": np.random.default_rng(1).bit_generator.state,  # 128-bit ints inside
        "step": 1200,
        "best_val_loss": float("inf"),
        "history": [[1, 4.17], [2, 3.5]],
    }


def write_raw_npz(path, members, allow_pickle=False):
    """An .npz with exactly these members (name -> array), written by hand."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, arr in members.items():
            buf = io.BytesIO()
            np.save(buf, arr, allow_pickle=allow_pickle)
            zf.writestr(name + ".npy", buf.getvalue())


def meta_array(meta):
    return np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)


def assert_same_arrays(got, want):
    assert list(got) == list(want)
    for k in want:
        w = backend.to_numpy(want[k])
        assert type(got[k]) is np.ndarray, k
        assert got[k].dtype == w.dtype, (k, got[k].dtype, w.dtype)
        assert got[k].shape == w.shape, k
        np.testing.assert_array_equal(got[k], w, err_msg=k)


def dir_listing(d):
    return sorted(p.name for p in d.iterdir())


# --------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------

def test_round_trip_exact_dtypes_values_and_metadata(tmp_path):
    arrays, meta = sample_arrays(), sample_metadata()
    out = save_checkpoint(tmp_path / "ck.npz", arrays, meta)
    assert out == tmp_path / "ck.npz" and out.is_file()
    got, got_meta = load_checkpoint(out)
    assert_same_arrays(got, arrays)
    assert got["model/Wx"].dtype == np.float32 and got["model/Wh"].dtype == np.float64
    assert got_meta == meta
    assert got_meta["rng"]["state"]["state"] == meta["rng"]["state"]["state"]  # big int exact
    # the restored RNG state really restores the stream
    g = np.random.default_rng()
    g.bit_generator.state = got_meta["rng"]
    np.testing.assert_array_equal(g.random(5), np.random.default_rng(1).random(5))
    assert os.listdir(tmp_path) == ["ck.npz"]  # no temp file left


def test_file_is_plain_npz_readable_by_numpy_without_pickle(tmp_path):
    arrays = sample_arrays()
    save_checkpoint(tmp_path / "ck.npz", arrays, {"step": 3})
    with np.load(tmp_path / "ck.npz", allow_pickle=False) as z:
        assert set(z.files) == set(arrays) | {"__meta__"}
        np.testing.assert_array_equal(z["model/Wx"], arrays["model/Wx"])
        meta = json.loads(z["__meta__"].tobytes().decode("utf-8"))
    assert meta["format"] == "minirnn-checkpoint" and meta["version"] == 1
    assert meta["metadata"] == {"step": 3}


def test_metadata_conversions_tuples_and_numpy_scalars(tmp_path):
    meta = {"shape": (2, 3), "loss": np.float32(0.5), "step": np.int64(7), "ok": np.bool_(True),
            "format": "user value", "version": 99}  # user keys never clash with the marker
    save_checkpoint(tmp_path / "ck.npz", {}, meta)
    _, got = load_checkpoint(tmp_path / "ck.npz")
    assert got == {"shape": [2, 3], "loss": 0.5, "step": 7, "ok": True,
                   "format": "user value", "version": 99}
    assert type(got["step"]) is int and type(got["ok"]) is bool


def test_strict_device_arrays_are_saved_as_host_numpy(tmp_path):
    host = sample_arrays()
    dev = {k: backend.strict.asarray(v) for k, v in host.items()}
    assert all(isinstance(v, backend.StrictArray) for v in dev.values())
    backend.use("strict")  # as during a GPU run; the fixture in conftest restores it
    save_checkpoint(tmp_path / "ck.npz", dev, {"backend": "strict"})
    got, meta = load_checkpoint(tmp_path / "ck.npz")
    assert_same_arrays(got, host)
    assert meta == {"backend": "strict"}
    # and they go back onto the device with backend.asarray
    on_dev = backend.asarray(got["model/Wx"])
    assert isinstance(on_dev, backend.StrictArray) and on_dev.dtype == np.float32


def test_overwrite_replaces_and_creates_parent_dirs(tmp_path):
    path = tmp_path / "runs" / "a" / "b" / "last.npz"
    save_checkpoint(path, {"w": np.ones(3, np.float32)}, {"step": 1})
    save_checkpoint(path, {"w": np.full(4, 2.0, np.float32)}, {"step": 2})
    got, meta = load_checkpoint(str(path))
    np.testing.assert_array_equal(got["w"], np.full(4, 2.0, np.float32))
    assert meta == {"step": 2}
    assert dir_listing(path.parent) == ["last.npz"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_new_file_gets_umask_permissions_not_private_tempfile_ones(tmp_path):
    path = save_checkpoint(tmp_path / "ck.npz", {"w": np.ones(2)}, {})
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


# --------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------

class Boom(Exception):
    pass


def _fail_in_write_array(monkeypatch):
    """Raise on the second array, with the first already written into the zip."""
    real = np.lib.format.write_array
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Boom("disk full")
        return real(*args, **kwargs)
    monkeypatch.setattr(np.lib.format, "write_array", flaky)
    return calls


def _fail_after_partial_bytes(monkeypatch):
    def partial(fileobj, arrays):
        fileobj.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # Ctrl-C: a BaseException must clean up too
    monkeypatch.setattr(ckpt, "_write_npz", partial)


def _fail_in_replace(monkeypatch):
    def no_replace(src, dst):
        raise OSError("rename failed")
    monkeypatch.setattr(ckpt.os, "replace", no_replace)


@pytest.mark.parametrize("make_failure, exc", [
    (_fail_in_write_array, Boom),
    (_fail_after_partial_bytes, KeyboardInterrupt),
    (_fail_in_replace, OSError),
])
def test_failed_save_leaves_old_checkpoint_byte_identical(tmp_path, monkeypatch,
                                                          make_failure, exc):
    path = tmp_path / "ck.npz"
    save_checkpoint(path, sample_arrays(0), {"step": 1})
    before = path.read_bytes()
    listing = dir_listing(tmp_path)

    calls = make_failure(monkeypatch)
    with pytest.raises(exc):
        save_checkpoint(path, sample_arrays(1), {"step": 2})
    if calls is not None:
        assert len(calls) == 2  # it really failed midway, after writing one array
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert dir_listing(tmp_path) == listing  # no temp file left behind
    got, meta = load_checkpoint(path)
    assert meta == {"step": 1}
    assert_same_arrays(got, sample_arrays(0))


def test_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    _fail_in_write_array(monkeypatch)
    with pytest.raises(Boom):
        save_checkpoint(tmp_path / "ck.npz", sample_arrays(), {})
    assert dir_listing(tmp_path) == []


# --------------------------------------------------------------------------------------
# NaN / Inf
# --------------------------------------------------------------------------------------

def test_nonfinite_refused_and_old_checkpoint_kept(tmp_path):
    path = tmp_path / "ck.npz"
    save_checkpoint(path, {"w": np.ones(3, np.float32)}, {"step": 1})
    before = path.read_bytes()
    bad = {"w": np.array([1.0, np.nan], np.float32), "ok": np.ones(2),
           "b": np.array([np.inf]), "ids": np.arange(3)}
    with pytest.raises(ValueError, match=r"'w'.*'b'.*NaN or Inf.*allow_nonfinite"):
        save_checkpoint(path, bad, {"step": 2})
    assert path.read_bytes() == before
    assert dir_listing(tmp_path) == ["ck.npz"]


def test_nonfinite_saved_when_allowed(tmp_path):
    arrays = {"w": np.array([1.0, np.nan, -np.inf], np.float32)}
    save_checkpoint(tmp_path / "ck.npz", arrays, {}, allow_nonfinite=True)
    got, _ = load_checkpoint(tmp_path / "ck.npz")
    assert got["w"].dtype == np.float32
    np.testing.assert_array_equal(got["w"], arrays["w"])  # NaN == NaN here


def test_is_finite_checkpoint_lists_bad_keys_on_any_backend():
    arrays = {"a": np.ones(2), "b": np.array([np.nan]),
              "c": backend.strict.asarray(np.array([1.0, np.inf], np.float32)),
              "d": backend.strict.asarray(np.arange(3)), "e": np.array([1 + 1j, complex(np.nan, 0)]),
              "f": np.array([True])}
    assert is_finite_checkpoint(arrays) == ["b", "c", "e"]
    assert is_finite_checkpoint({"a": np.ones(2)}) == []


# --------------------------------------------------------------------------------------
# Save-side validation (nothing is written)
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("arrays, metadata, exc, match", [
    ({"__meta__": np.ones(1)}, {}, ValueError, "reserved"),
    ({"": np.ones(1)}, {}, ValueError, "non-empty"),
    ({3: np.ones(1)}, {}, TypeError, "must be str"),
    ({"w": np.array([object()])}, {}, TypeError, r"'w'.*object"),
    ({"w": np.ones(1)}, {"cfg": {"f": object()}}, TypeError, r"metadata\['cfg'\]\['f'\]"),
    ({"w": np.ones(1)}, {"itos": {0: "a"}}, TypeError, "JSON keys must be str"),
    ({"w": np.ones(1)}, {"x": np.ones(3)}, TypeError, "put arrays in `arrays`"),
    ({"w": np.ones(1)}, ["not", "a", "dict"], TypeError, "metadata must be a dict"),
    ([np.ones(1)], {}, TypeError, "arrays must be a dict"),
])
def test_invalid_input_raises_and_writes_nothing(tmp_path, arrays, metadata, exc, match):
    with pytest.raises(exc, match=match):
        save_checkpoint(tmp_path / "ck.npz", arrays, metadata)
    assert dir_listing(tmp_path) == []


def test_circular_metadata_refused(tmp_path):
    meta = {"a": []}
    meta["a"].append(meta)
    with pytest.raises(ValueError, match="circular"):
        save_checkpoint(tmp_path / "ck.npz", {}, meta)


# --------------------------------------------------------------------------------------
# Loading bad files
# --------------------------------------------------------------------------------------

def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope" / "ck.npz"
    with pytest.raises(CheckpointError, match="does not exist") as ei:
        load_checkpoint(path)
    assert str(path) in str(ei.value)
    assert isinstance(ei.value, ValueError)


@pytest.mark.parametrize("keep", ["none", "10", "half", "all-but-one"])
def test_truncated_file_raises_checkpoint_error(tmp_path, keep):
    path = save_checkpoint(tmp_path / "ck.npz", sample_arrays(), sample_metadata())
    data = path.read_bytes()
    n = {"none": 0, "10": 10, "half": len(data) // 2, "all-but-one": len(data) - 1}[keep]
    path.write_bytes(data[:n])
    with pytest.raises(CheckpointError, match="is truncated or not a minirnn checkpoint") as ei:
        load_checkpoint(path)
    assert str(path) in str(ei.value)


def test_flipped_byte_in_array_data_is_caught(tmp_path):
    w = np.arange(1000, dtype=np.float32)
    path = save_checkpoint(tmp_path / "ck.npz", {"w": w}, {})
    data = bytearray(path.read_bytes())
    i = data.find(w.tobytes())
    assert i > 0
    data[i + 2001] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="truncated or not a minirnn checkpoint"):
        load_checkpoint(path)


def test_random_bytes_raise_checkpoint_error(tmp_path):
    path = tmp_path / "ck.npz"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match="is truncated or not a minirnn checkpoint"):
        load_checkpoint(path)


def test_foreign_npz_raises_checkpoint_error(tmp_path):
    path = tmp_path / "weights.npz"
    np.savez(path, W=np.ones((2, 2)), b=np.zeros(2))
    with pytest.raises(CheckpointError, match="was not written by minirnn"):
        load_checkpoint(path)


def test_single_npy_file_raises_checkpoint_error(tmp_path):
    path = tmp_path / "w.npy"
    np.save(path, np.ones(3))
    with pytest.raises(CheckpointError, match="was not written by minirnn"):
        load_checkpoint(path)


@pytest.mark.parametrize("meta, match", [
    ({"format": "someone-else", "version": 1, "arrays": {}, "metadata": {}},
     "was not written by minirnn.*'someone-else'"),
    (["minirnn-checkpoint"], "was not written by minirnn"),
    ({"format": "minirnn-checkpoint", "version": 2, "arrays": {}, "metadata": {}},
     "version 2.*upgrade minirnn"),
    ({"format": "minirnn-checkpoint", "version": "1", "arrays": {}, "metadata": {}},
     "invalid format version"),
    ({"format": "minirnn-checkpoint", "version": 1, "arrays": {"w": {}}, "metadata": {}},
     r"arrays missing: \['w'\]"),
])
def test_bad_meta_raises_checkpoint_error(tmp_path, meta, match):
    path = tmp_path / "ck.npz"
    write_raw_npz(path, {"__meta__": meta_array(meta)})
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_meta_not_json_raises_checkpoint_error(tmp_path):
    path = tmp_path / "ck.npz"
    write_raw_npz(path, {"__meta__": np.frombuffer(b"\xff\xfe{", dtype=np.uint8)})
    with pytest.raises(CheckpointError, match="not written by minirnn.*UTF-8 JSON"):
        load_checkpoint(path)


def test_array_not_matching_manifest_raises(tmp_path):
    meta = {"format": "minirnn-checkpoint", "version": 1,
            "arrays": {"w": {"dtype": "<f4", "shape": [3]}}, "metadata": {}}
    path = tmp_path / "ck.npz"
    write_raw_npz(path, {"__meta__": meta_array(meta), "w": np.ones(3, np.float64)})
    with pytest.raises(CheckpointError, match="manifest"):
        load_checkpoint(path)


class _Payload:
    """Unpickling this creates a directory: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickled_object_array_is_refused_without_unpickling(tmp_path):
    # A file that is a valid checkpoint in every other respect.
    good = save_checkpoint(tmp_path / "good.npz", {"w": np.ones(2)}, {"step": 1})
    with np.load(good) as z:
        meta = json.loads(z["__meta__"].tobytes())
    meta["arrays"]["evil"] = {"dtype": "|O", "shape": [1]}
    marker = tmp_path / "pwned"
    evil = np.empty(1, dtype=object)
    evil[0] = _Payload(marker)
    path = tmp_path / "evil.npz"
    write_raw_npz(path, {"__meta__": meta_array(meta), "w": np.ones(2), "evil": evil},
                  allow_pickle=True)

    with pytest.raises(CheckpointError, match=r"'evil'.*object.*pickl"):
        load_checkpoint(path)
    assert not marker.exists()

    # The payload is live: a loader that allowed pickles would have run it.
    with np.load(path, allow_pickle=True) as z:
        z["evil"]
    assert marker.is_dir()
