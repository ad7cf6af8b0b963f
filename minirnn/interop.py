"""PyTorch interop: minirnn models as ``torch.nn`` modules and back, and weight files
that PyTorch reads without minirnn.

    from minirnn.interop import to_torch, from_torch, export_model, import_model
    tmodel = to_torch(model)           # an equivalent torch.nn.Module, in the model's dtype
    model = from_torch(tmodel)         # and back, bit for bit
    layer = from_torch(torch.nn.LSTM(10, 32, num_layers=2))       # -> minirnn.nn.LSTM
    export_model("runs/s/checkpoint.npz", "s.safetensors")  # + s.json; needs no torch
    import_model("s.safetensors", "runs/back")              # -> runs/back/checkpoint.npz

One table says where every weight goes: ``LAYOUTS`` gives, for each kind of model, the
pairs (minirnn name, PyTorch name, how), where *how* is ``"same"`` (the same array),
``"T"`` (transposed: minirnn multiplies ``x @ W``, PyTorch ``W @ x``) or ``"fold"``
(minirnn's one RNN/LSTM bias ``b`` is PyTorch's ``bias_ih + bias_hh``: ``b`` goes to
``bias_ih`` and zeros to ``bias_hh``; coming back, ``b = bias_ih + bias_hh``). The GRU
keeps both biases, as PyTorch does. ``to_torch``, ``from_torch``, ``export_model`` and
``import_model`` all read that table, and ``torch_layout(model)`` shows it.

PyTorch is imported inside the functions that need it (``to_torch``, ``from_torch``),
never on ``import minirnn.interop``; export and import use ``safetensors.numpy`` only.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import tempfile
from typing import NamedTuple

import numpy as np

from . import backend
from .checkpoint import load_checkpoint, save_checkpoint
from .data import Seq2SeqVocab, vocab_from_json
from .functional.cells import get_cell
from .nn import GPT, CharRNN, NextFrameModel, Recurrent, Seq2Seq

__all__ = ["to_torch", "from_torch", "torch_layout", "export_model", "import_model",
           "read_export", "LAYOUTS", "Pair", "FORMAT", "VERSION"]

FORMAT, VERSION = "minirnn-export", 1


class Pair(NamedTuple):
    """One weight: its minirnn name, its PyTorch name (two for a folded bias), and how
    the arrays relate: "same", "T" (transposed) or "fold" (b = bias_ih + bias_hh)."""
    ours: str
    theirs: object  # str, or (bias_ih name, bias_hh name) for "fold"
    how: str


# --------------------------------------------------------------------------------------
# The table: which minirnn weight is which PyTorch tensor
# --------------------------------------------------------------------------------------

def _cell(cell, ours, theirs, tag):
    """A cell's weights: ``ours + "Wx"`` ... as PyTorch's ``theirs + "weight_ih" + tag``."""
    pairs = [Pair(ours + "Wx", f"{theirs}weight_ih{tag}", "T"),
             Pair(ours + "Wh", f"{theirs}weight_hh{tag}", "T")]
    if cell == "gru":  # PyTorch's two GRU biases act apart (the reset multiplies b_hn)
        return pairs + [Pair(ours + "bx", f"{theirs}bias_ih{tag}", "same"),
                        Pair(ours + "bh", f"{theirs}bias_hh{tag}", "same")]
    return pairs + [Pair(ours + "b", (f"{theirs}bias_ih{tag}", f"{theirs}bias_hh{tag}"),
                         "fold")]


def _recurrent_layout(c, ours="", theirs=""):
    return [p for layer in range(c["num_layers"])
            for p in _cell(c["cell"], f"{ours}{layer}.", theirs, f"_l{layer}")]


def _charrnn_layout(c):
    embed = [] if c["embedding_dim"] is None else [Pair("embed.W", "embed.weight", "same")]
    return embed + _recurrent_layout(c, "rnn.", "rnn.") + [
        Pair("head.W", "head.weight", "T"), Pair("head.b", "head.bias", "same")]


def _seq2seq_layout(c):
    enc = {"cell": c["cell"], "num_layers": 1}
    back = _recurrent_layout(enc, "enc_back.", "enc_back.") if c["bidirectional"] else []
    return ([Pair("embed", "embed.weight", "same")] + _recurrent_layout(enc, "enc.", "enc.")
            + back + _cell(c["cell"], "dec.", "dec.", "") + [
                Pair("attn.Wq", "attn.query.weight", "T"), Pair("attn.Wk", "attn.key.weight", "T"),
                Pair("attn.v", "attn.v", "same"),
                Pair("head.W", "head.weight", "T"), Pair("head.b", "head.bias", "same")])


def _convlstm_layout(c):
    # Convolution weights are (out, in, k, k) in both libraries: nothing to transpose.
    return [p for layer in range(c["num_layers"]) for p in (
        Pair(f"convlstm.{layer}.Wx", f"convlstm.{layer}.input.weight", "same"),
        Pair(f"convlstm.{layer}.Wh", f"convlstm.{layer}.hidden.weight", "same"),
        Pair(f"convlstm.{layer}.b", f"convlstm.{layer}.input.bias", "same"))] + [
        Pair("head.W", "head.weight", "same"), Pair("head.b", "head.bias", "same")]


def _gpt_layout(c):
    """The GPT's weights under the names of ``torch_models.GPT``: nn.Embedding tables,
    nn.LayerNorm weight and bias, nn.Linear weights transposed (``Wqkv``'s columns
    ``[q | k | v]`` become the rows of ``attn.qkv.weight``, as PyTorch splits them)."""
    pairs = [Pair("embed.W", "embed.weight", "same"), Pair("pos", "pos.weight", "same")]
    for i in range(c["num_layers"]):
        b = f"blocks.{i}."
        pairs += [Pair(b + "ln1.gamma", b + "ln1.weight", "same"),
                  Pair(b + "ln1.beta", b + "ln1.bias", "same"),
                  Pair(b + "attn.Wqkv", b + "attn.qkv.weight", "T"),
                  Pair(b + "attn.bqkv", b + "attn.qkv.bias", "same"),
                  Pair(b + "attn.Wo", b + "attn.proj.weight", "T"),
                  Pair(b + "attn.bo", b + "attn.proj.bias", "same"),
                  Pair(b + "ln2.gamma", b + "ln2.weight", "same"),
                  Pair(b + "ln2.beta", b + "ln2.bias", "same"),
                  Pair(b + "fc.W", b + "fc.weight", "T"), Pair(b + "fc.b", b + "fc.bias", "same"),
                  Pair(b + "proj.W", b + "proj.weight", "T"),
                  Pair(b + "proj.b", b + "proj.bias", "same")]
    return pairs + [Pair("ln_f.gamma", "ln_f.weight", "same"),
                    Pair("ln_f.beta", "ln_f.bias", "same"),
                    Pair("head.W", "head.weight", "T"), Pair("head.b", "head.bias", "same")]


class Kind(NamedTuple):
    """A kind of model (the ``kind`` of its checkpoints): its class, its table, its
    vocabulary's reader (None: no vocabulary)."""
    cls: type
    layout: object
    vocab: object


LAYOUTS = {
    "charrnn": Kind(CharRNN, _charrnn_layout, vocab_from_json),
    "seq2seq": Kind(Seq2Seq, _seq2seq_layout, Seq2SeqVocab.from_json),
    "convlstm": Kind(NextFrameModel, _convlstm_layout, None),
    "gpt": Kind(GPT, _gpt_layout, vocab_from_json),
    "recurrent": Kind(Recurrent, _recurrent_layout, None),  # a bare stack of cells
}


def _kind_of(model):
    for kind, k in LAYOUTS.items():
        if type(model) is k.cls or (kind == "recurrent" and isinstance(model, Recurrent)):
            return kind
    names = ", ".join(k.cls.__name__ for k in LAYOUTS.values())
    raise TypeError(f"to_torch: model must be one of {names}, got {type(model).__name__}")


def _config(model):
    if isinstance(model, Recurrent):
        return {"cell": model.cell, "input_size": model.input_size,
                "hidden_size": model.hidden_size, "num_layers": model.num_layers,
                "dropout": model.dropout.p}
    return dict(model.config)


def torch_layout(model):
    """The ``Pair``s (minirnn name, PyTorch name, how) of ``model``'s weights."""
    return LAYOUTS[_kind_of(model)].layout(_config(model))


# --------------------------------------------------------------------------------------
# Arrays: minirnn names and layouts <-> PyTorch names and layouts (NumPy only)
# --------------------------------------------------------------------------------------

def _to_theirs(pairs, params):
    """minirnn's host arrays -> PyTorch's (name -> C-contiguous array)."""
    out = {}
    for p in pairs:
        a = params[p.ours]
        if p.how == "fold":
            out[p.theirs[0]], out[p.theirs[1]] = a.copy(), np.zeros_like(a)
        else:
            out[p.theirs] = np.ascontiguousarray(a.T if p.how == "T" else a)
    return out


def _theirs_shapes(pairs, shapes):
    """The PyTorch shape of every tensor, from minirnn's shapes."""
    out = {}
    for p in pairs:
        shape = tuple(shapes[p.ours])
        for name in (p.theirs if p.how == "fold" else (p.theirs,)):
            out[name] = shape[::-1] if p.how == "T" else shape
    return out


def _to_ours(pairs, shapes, tensors, where, what):
    """PyTorch's arrays -> minirnn's, after checking every name, shape and dtype; a
    ValueError naming the first wrong tensor otherwise."""
    want = _theirs_shapes(pairs, shapes)
    missing = [k for k in want if k not in tensors]
    if missing:
        raise ValueError(f"{where}: tensor {missing[0]!r} is missing ({len(missing)} missing "
                         f"in all); {what} has it")
    extra = [k for k in tensors if k not in want]
    if extra:
        raise ValueError(f"{where}: unexpected tensor {extra[0]!r} ({len(extra)} in all); "
                         f"{what} has no such weight")
    for k, shape in want.items():
        a = tensors[k]
        if tuple(a.shape) != shape:
            raise ValueError(f"{where}: tensor {k!r} has shape {tuple(a.shape)}, but {what} "
                             f"needs {shape}")
        if a.dtype not in (np.float32, np.float64):
            raise ValueError(f"{where}: tensor {k!r} has dtype {a.dtype}; expected float32 "
                             "or float64")
    out = {}
    for p in pairs:
        if p.how == "fold":
            out[p.ours] = tensors[p.theirs[0]] + tensors[p.theirs[1]]
        else:
            a = tensors[p.theirs]
            out[p.ours] = np.array(a.T if p.how == "T" else a, copy=True)
    return out


@contextlib.contextmanager
def _default_dtype(dtype):
    before = backend.default_dtype()
    backend.set_default_dtype(dtype)
    try:
        yield
    finally:
        backend.set_default_dtype(before)


def _describe(kind, config):
    shown = ", ".join(f"{k} {v}" for k, v in config.items() if k not in ("seed", "dropout"))
    return f"a {kind} model with {shown}"


def _build(kind, config, tensors, where):
    """The minirnn model of ``kind`` with ``config`` and the PyTorch-named ``tensors``."""
    if not isinstance(config, dict):
        raise ValueError(f"{where}: the model's settings must be a dict, got "
                         f"{type(config).__name__}")
    dtype = next(iter(tensors.values())).dtype if tensors else np.float32
    with _default_dtype(dtype if dtype in (np.float32, np.float64) else np.float32):
        try:
            model = _make(kind, config)
        except (TypeError, ValueError) as e:  # an unknown, missing or bad setting
            raise ValueError(f"{where}: the settings do not make a {kind} model: {e}") \
                from None
        config = _config(model)  # with the constructor's defaults filled in
        params = _to_ours(LAYOUTS[kind].layout(config), {k: p.shape for k, p in
                          model.params.items()}, tensors, where, _describe(kind, config))
        model.load_state_dict(params)
    return model


def _make(kind, config):
    if kind == "recurrent":
        c = dict(config)
        return Recurrent(c.pop("cell"), **c)
    return LAYOUTS[kind].cls(**config)


# --------------------------------------------------------------------------------------
# PyTorch modules (torch is imported here, on first use)
# --------------------------------------------------------------------------------------

def _torch_models():
    """The PyTorch twins of minirnn's models (``minirnn/torch_models.py``, which needs torch)."""
    from . import torch_models
    return torch_models.MODELS


def to_torch(model):
    """An equivalent ``torch.nn.Module`` of ``model`` (CharRNN, Seq2Seq, NextFrameModel,
    GPT, or a stack of cells, which becomes ``torch.nn.RNN/LSTM/GRU`` with ``batch_first``),
    holding copies of its weights in its dtype, in the same train/eval mode."""
    import torch

    kind, config = _kind_of(model), _config(model)
    params = {k: backend.to_numpy(v) for k, v in model.params.items()}
    tensors = _to_theirs(LAYOUTS[kind].layout(config), params)
    tmodel = _torch_models()[kind](config)
    dtype = next(iter(params.values())).dtype
    tmodel = tmodel.to(torch.float64 if dtype == np.float64 else torch.float32)
    tmodel.load_state_dict({k: torch.from_numpy(a) for k, a in tensors.items()})
    return tmodel.train(model.training)


def _plain_rnn_config(module):
    """The Recurrent settings of a torch.nn.RNN/LSTM/GRU, refusing what minirnn lacks."""
    name = type(module).__name__
    if module.bidirectional or getattr(module, "proj_size", 0) or \
            getattr(module, "nonlinearity", "tanh") != "tanh":
        raise ValueError(f"from_torch: minirnn's layers are one-directional, tanh, without "
                         f"projections; this {name} is not ({module!r})")
    return {"cell": name.lower(), "input_size": module.input_size,
            "hidden_size": module.hidden_size, "num_layers": module.num_layers,
            "dropout": float(module.dropout)}


def from_torch(module, kind=None, config=None):
    """The minirnn model equivalent to the PyTorch ``module``.

    ``module`` is one that ``to_torch`` made (or DistributedDataParallel around one), a
    plain ``torch.nn.RNN``/``LSTM``/``GRU`` (-> a ``minirnn.nn.Recurrent`` of that cell,
    batch first whatever ``batch_first`` says; a layer without biases gets zero biases), or any module whose ``state_dict`` has the
    names of ``LAYOUTS[kind]``, given with ``kind`` and ``config`` (the model's settings,
    as an export's JSON holds them). The model gets the tensors' dtype.
    """
    import torch

    if isinstance(module, torch.nn.parallel.DistributedDataParallel):
        module = module.module
    tensors = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    if isinstance(module, (torch.nn.RNN, torch.nn.LSTM, torch.nn.GRU)):
        kind, config = "recurrent", _plain_rnn_config(module)
        if not module.bias:
            kH = get_cell(config["cell"]).gates * module.hidden_size
            zeros = np.zeros(kH, dtype=tensors["weight_ih_l0"].dtype)
            tensors.update({f"bias_{w}_l{layer}": zeros for w in ("ih", "hh")
                            for layer in range(module.num_layers)})
    elif kind is None and getattr(module, "kind", None) in LAYOUTS and \
            hasattr(module, "config"):
        kind, config = module.kind, module.config
    if kind not in LAYOUTS or config is None:
        raise TypeError(f"from_torch: module must come from to_torch, be a torch.nn.RNN, LSTM "
                        f"or GRU, or come with kind= (one of {', '.join(LAYOUTS)}) and "
                        f"config=; got {type(module).__name__} with kind={kind!r}")
    return _build(kind, dict(config), tensors, f"from_torch({type(module).__name__})")


# --------------------------------------------------------------------------------------
# Files: export a checkpoint for PyTorch, import one back (no torch needed)
# --------------------------------------------------------------------------------------

def _settings_path(weights):
    return pathlib.Path(weights).with_suffix(".json")


def _torch_modules(kind, c):
    """For a CharRNN, torch.nn's own layers with their constructors' arguments."""
    if kind != "charrnn":
        return None
    V, H, E = c["vocab_size"], c["hidden_size"], c["embedding_dim"]
    rnn = {"input_size": E or V, "hidden_size": H, "num_layers": c["num_layers"],
           "batch_first": True, "dropout": c["dropout"] if c["num_layers"] > 1 else 0.0}
    out = {} if E is None else {"embed": {"class": "Embedding", "args": {
        "num_embeddings": V, "embedding_dim": E}}}
    out["rnn"] = {"class": c["cell"].upper(), "args": rnn}
    out["head"] = {"class": "Linear", "args": {"in_features": H, "out_features": V}}
    return out


def _write_atomically(files):
    """Write every ``path -> bytes`` to a temporary file beside it, then move them all in
    place; on any error remove the temporaries and leave the old files as they were."""
    temps = {}
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temps[path] = tmp
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for path, tmp in temps.items():
            os.replace(tmp, path)
    finally:
        for tmp in temps.values():
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _refuse_existing(paths, force):
    if not force:
        for p in paths:
            if p.exists():
                raise ValueError(f"{p} exists; pass --force (force=True) to replace it")


def export_model(checkpoint, weights, force=False):
    """Write the model of ``checkpoint`` to ``weights`` (a ``.safetensors`` file under
    PyTorch's names and layouts) and its settings, vocabulary and torch.nn layers to the
    ``.json`` beside it. Returns the two paths. Nothing is written if anything is wrong."""
    from safetensors.numpy import save

    arrays, meta = load_checkpoint(checkpoint)
    kind = meta.get("kind")
    if kind not in LAYOUTS or kind == "recurrent":
        known = ", ".join(k for k in LAYOUTS if k != "recurrent")
        raise ValueError(f"export: {checkpoint} holds a {kind!r} model; export knows {known}")
    params = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    config = meta.get("model")
    pairs = LAYOUTS[kind].layout(config) if isinstance(config, dict) else []
    missing = [p.ours for p in pairs if p.ours not in params]
    if missing or not params:
        raise ValueError(f"export: {checkpoint} lacks the weight "
                         f"{(missing or ['model/...'])[0]!r} of its {kind} model")
    _build(kind, config, _to_theirs(pairs, params), str(checkpoint))  # settings and shapes
    settings = {"format": FORMAT, "version": VERSION, "kind": kind, "model": config,
                "dtype": str(next(iter(params.values())).dtype)}
    if LAYOUTS[kind].vocab is not None:
        settings["vocab"] = meta["vocab"]
    if _torch_modules(kind, config):
        settings["torch_modules"] = _torch_modules(kind, config)
    weights = pathlib.Path(weights)
    paths = (weights, _settings_path(weights))
    _refuse_existing(paths, force)
    blob = save(_to_theirs(pairs, params), metadata={"format": "pt"})
    # One line per setting: the vocabulary stays on one line however long it is.
    text = ",\n".join(f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}"
                      for k, v in settings.items())
    _write_atomically({paths[0]: blob, paths[1]: ("{\n" + text + "\n}\n").encode("utf-8")})
    return paths


def read_export(weights, settings=None):
    """(model, settings) from an exported ``.safetensors`` file and its ``.json``
    (default: the weights' name with ``.json``), every name and shape checked."""
    from safetensors.numpy import load

    weights = pathlib.Path(weights)
    settings = _settings_path(weights) if settings is None else pathlib.Path(settings)
    for p in (weights, settings):
        if not p.is_file():
            raise FileNotFoundError(f"{p} does not exist (an export is a .safetensors file "
                                    "and the .json of its settings beside it)")
    try:
        s = json.loads(settings.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"{settings} is not JSON ({e})") from None
    if not isinstance(s, dict) or s.get("format") != FORMAT:
        raise ValueError(f"{settings} is not the settings of a minirnn export (no "
                         f"\"format\": \"{FORMAT}\")")
    kind = s.get("kind")
    if kind not in LAYOUTS or kind == "recurrent":
        known = ", ".join(k for k in LAYOUTS if k != "recurrent")
        raise ValueError(f"{settings}: kind {kind!r} is not a model minirnn imports ({known})")
    try:
        tensors = load(weights.read_bytes())
    except Exception as e:  # noqa: BLE001 - safetensors raises its own SafetensorError
        raise ValueError(f"{weights} is not a safetensors file ({e})") from None
    model = _build(kind, s.get("model"), tensors, str(weights))
    if LAYOUTS[kind].vocab is not None:
        vocab = LAYOUTS[kind].vocab(s.get("vocab"))
        if len(vocab) != model.config["vocab_size"]:
            raise ValueError(f"{settings}: the vocabulary has {len(vocab)} symbols, the model "
                             f"{model.config['vocab_size']}")
    return model, s


def import_model(weights, out, settings=None, force=False):
    """Read an export back into ``out/checkpoint.npz`` (a file ``minirnn sample``, or the
    loader of its kind, reads). Returns its path; nothing is written on an error."""
    model, s = read_export(weights, settings)
    path = pathlib.Path(out) / "checkpoint.npz"
    _refuse_existing([path], force)
    meta = {"kind": s["kind"], "model": s["model"], "imported_from": str(weights)}
    if "vocab" in s:
        meta["vocab"] = s["vocab"]
    return save_checkpoint(path, {f"model/{k}": v for k, v in model.state_dict().items()}, meta)
