"""minirnn <-> PyTorch: the same numbers in both, bit-exact round trips, weight files that
PyTorch reads without minirnn, and a DistributedDataParallel continuation that comes back.

The tests that need PyTorch take the ``torch`` fixture and are skipped without it (CI
installs it); export and import need no PyTorch and always run.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from minirnn import backend, cli
from minirnn.checkpoint import load_checkpoint, save_checkpoint
from minirnn.data import CharVocab
from minirnn.gradcheck import rel_error
from minirnn.interop import export_model, from_torch, import_model, to_torch, torch_layout
from minirnn.nn import GPT, CharRNN, NextFrameModel, Recurrent, Seq2Seq
from minirnn.training import load_convlstm, load_model, load_seq2seq

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "before_one_loop"
TOL = {"float32": 1e-5, "float64": 1e-12}
CELLS = ("rnn", "lstm", "gru")


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="PyTorch is an optional extra: "
                                               "pip install -e \".[torch]\"")


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    before = backend.default_dtype()
    backend.set_default_dtype(request.param)
    yield request.param
    backend.set_default_dtype(before)


def torch_state(torch, state, cell):
    """minirnn's state tuple -> the form torch.nn.RNN/LSTM/GRU take (h, or (h, c))."""
    tensors = tuple(torch.from_numpy(s) for s in state)
    return tensors if cell == "lstm" else tensors[0]


def assert_close(ours, theirs, dtype, what):
    err = rel_error(ours, theirs.detach().numpy() if hasattr(theirs, "detach") else theirs)
    assert err <= TOL[dtype], f"{what}: relative error {err:.2e} > {TOL[dtype]:.0e}"


# --------------------------------------------------------------------------------------
# The same numbers
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("embedding_dim", [None, 5])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_charrnn_logits_match_torch_with_the_state_carried_across_two_chunks(
        torch, dtype, cell, num_layers, embedding_dim):
    model = CharRNN(11, 7, num_layers, cell, embedding_dim, seed=3).eval()
    tmodel = to_torch(model)
    ids = np.random.default_rng(0).integers(0, 11, (4, 12))
    state, tstate = None, None
    for chunk in (ids[:, :6], ids[:, 6:]):
        logits, state = model.forward(chunk, state)
        with torch.no_grad():
            tlogits, tstate = tmodel(torch.from_numpy(chunk), tstate)
        assert logits.dtype == tlogits.numpy().dtype == np.dtype(dtype)
        assert_close(logits, tlogits, dtype, f"{cell} x{num_layers} logits")
    for ours, theirs in zip(state, tstate if cell == "lstm" else (tstate,)):
        assert_close(ours, theirs, dtype, f"{cell} x{num_layers} final state")


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_one_backward_gives_the_same_gradients(torch, dtype, cell, num_layers):
    model = CharRNN(9, 6, num_layers, cell, embedding_dim=4, seed=1)
    tmodel = to_torch(model)
    rng = np.random.default_rng(1)
    ids, targets = rng.integers(0, 9, (3, 8)), rng.integers(0, 9, (3, 8))
    state = tuple(rng.standard_normal((num_layers, 3, 6)).astype(dtype) * 0.5
                  for _ in range(2 if cell == "lstm" else 1))  # carried from a chunk before
    model.zero_grad()
    loss, dlogits = model.loss({"ids": ids, "targets": targets, "state": state})
    model.backward(dlogits)
    tlogits, _ = tmodel(torch.from_numpy(ids), torch_state(torch, state, cell))
    tloss = torch.nn.functional.cross_entropy(tlogits.flatten(0, 1),
                                              torch.from_numpy(targets).flatten())
    tloss.backward()
    assert_close(loss, tloss, dtype, "loss")
    grads = {k: p.grad for k, p in tmodel.named_parameters()}
    for pair in torch_layout(model):
        ours = model.grads[pair.ours]
        if pair.how == "fold":  # b = bias_ih + bias_hh: each gets b's whole gradient
            for name in pair.theirs:
                assert_close(ours, grads[name], dtype, f"d{pair.ours} vs {name}")
        else:
            theirs = grads[pair.theirs].T if pair.how == "T" else grads[pair.theirs]
            assert_close(ours, theirs, dtype, f"d{pair.ours} vs {pair.theirs}")


@pytest.mark.parametrize("num_layers, num_heads", [(1, 1), (2, 3)])
def test_gpt_logits_and_gradients_match_torch(torch, dtype, num_layers, num_heads):
    """nn.LayerNorm, scaled_dot_product_attention(is_causal=True), nn.GELU("tanh"): the
    same logits, loss and every gradient, weights moved to PyTorch by torch_layout."""
    model = GPT(11, block_size=8, num_layers=num_layers, embedding_dim=6, num_heads=num_heads,
                seed=2)
    rng = np.random.default_rng(3)
    for p in model.params.values():  # away from GPT-2's small initialisation
        p += rng.normal(0.0, 0.3, p.shape).astype(dtype)
    tmodel = to_torch(model)
    ids, targets = rng.integers(0, 11, (3, 7)), rng.integers(0, 11, (3, 7))
    model.zero_grad()
    loss, dlogits = model.loss({"ids": ids, "targets": targets})
    model.backward(dlogits)
    tlogits = tmodel(torch.from_numpy(ids))
    assert_close(model.forward(ids), tlogits, dtype, "GPT logits")
    tloss = torch.nn.functional.cross_entropy(tlogits.flatten(0, 1),
                                              torch.from_numpy(targets).flatten())
    tloss.backward()
    assert_close(loss, tloss, dtype, "loss")
    grads = {k: p.grad for k, p in tmodel.named_parameters()}
    assert len(grads) == len(model.grads) == len(torch_layout(model))
    for pair in torch_layout(model):
        theirs = grads[pair.theirs].T if pair.how == "T" else grads[pair.theirs]
        assert_close(model.grads[pair.ours], theirs, dtype, f"d{pair.ours} vs {pair.theirs}")


def seq2seq_logits(model, src, mask, tgt_in):
    keys, _ = model.encode(src, mask)
    state, logits = model.initial_state(keys, mask), []
    for t in range(tgt_in.shape[1]):
        step, state = model.step(tgt_in[:, t], state)
        logits.append(step)
    return np.stack(logits, axis=1)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_seq2seq_logits_match_torch_with_padded_sources(torch, dtype, cell, bidirectional):
    model = Seq2Seq(13, 4, 6, 5, cell, bidirectional, seed=2).eval()
    rng = np.random.default_rng(2)
    mask = np.arange(7)[None] < np.array([[7], [4], [2]])   # lengths 7, 4, 2
    src = np.where(mask, rng.integers(3, 13, (3, 7)), 0)
    tgt_in = rng.integers(3, 13, (3, 5))
    with torch.no_grad():
        theirs = to_torch(model)(*(torch.from_numpy(a) for a in (src, mask, tgt_in)))
    assert_close(seq2seq_logits(model, src, mask, tgt_in), theirs, dtype, f"{cell} seq2seq")


@pytest.mark.parametrize("num_layers", [1, 2])
def test_convlstm_predictions_match_torch(torch, dtype, num_layers):
    model = NextFrameModel(hidden_channels=4, kernel_size=3, num_layers=num_layers, n_out=2)
    frames = np.random.default_rng(3).random((2, 3, 1, 6, 6)).astype(dtype)
    with torch.no_grad():
        theirs = to_torch(model)(torch.from_numpy(frames))
    assert_close(model.forward(frames), theirs, dtype, "next-frame logits")


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("cell", CELLS)
def test_plain_torch_layers_become_minirnn_layers_with_their_biases_folded(torch, cell, bias):
    layer = getattr(torch.nn, cell.upper())(5, 4, num_layers=2, bias=bias, batch_first=True,
                                            dtype=torch.float64)
    ours = from_torch(layer)
    assert isinstance(ours, Recurrent) and ours.cell == cell
    sd = layer.state_dict()
    for layer_index in range(2):
        if cell == "gru":  # the GRU keeps both, as PyTorch does
            got = (ours.params[f"{layer_index}.bx"], ours.params[f"{layer_index}.bh"])
            want = (sd.get(f"bias_ih_l{layer_index}"), sd.get(f"bias_hh_l{layer_index}"))
        else:
            got = (ours.params[f"{layer_index}.b"],)
            want = ((sd[f"bias_ih_l{layer_index}"] + sd[f"bias_hh_l{layer_index}"]),) if bias \
                else (None,)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, 0 if w is None else w.numpy())
    x = np.random.default_rng(4).standard_normal((3, 6, 5))
    hs, _ = ours.forward(x)
    with torch.no_grad():
        ths, _ = layer(torch.from_numpy(x))
    assert_close(hs, ths, "float64", f"plain {cell}")


@pytest.mark.parametrize("module", ["bidirectional", "relu", "projection"])
def test_from_torch_refuses_a_layer_minirnn_has_no_equal_for(torch, module):
    layer = {"bidirectional": lambda: torch.nn.GRU(3, 4, bidirectional=True),
             "relu": lambda: torch.nn.RNN(3, 4, nonlinearity="relu"),
             "projection": lambda: torch.nn.LSTM(3, 4, proj_size=2)}[module]()
    with pytest.raises(ValueError, match="one-directional, tanh, without projections"):
        from_torch(layer)
    with pytest.raises(TypeError, match="from_torch: module must come from to_torch"):
        from_torch(torch.nn.Linear(2, 2))


# --------------------------------------------------------------------------------------
# Bit-exact round trips
# --------------------------------------------------------------------------------------

def models():
    yield from (CharRNN(10, 6, layers, cell, emb, dropout=0.25, seed=7)
                for cell in CELLS for layers in (1, 3) for emb in (None, 4))
    yield from (Seq2Seq(12, 4, 5, 3, cell, bidi, seed=5) for cell in CELLS for bidi in (0, 1))
    yield NextFrameModel(hidden_channels=3, kernel_size=3, num_layers=2, n_out=2, seed=4)
    yield GPT(10, block_size=5, num_layers=2, embedding_dim=6, num_heads=2, dropout=0.1)
    yield Recurrent("gru", 3, 4, num_layers=2, dropout=0.1)


def test_minirnn_to_torch_to_minirnn_is_bit_exact(torch, dtype):
    for model in models():
        back = from_torch(to_torch(model))
        assert type(back) is type(model)
        assert getattr(back, "config", None) == getattr(model, "config", None)
        assert list(back.params) == list(model.params)
        for k, p in model.params.items():
            assert back.params[k].dtype == p.dtype
            assert back.params[k].tobytes() == p.tobytes(), f"{type(model).__name__} {k}"


def test_a_ddp_wrapped_module_comes_back_too(torch):
    model = CharRNN(6, 4, 1, "lstm")
    wrapped = torch.nn.parallel.DistributedDataParallel.__new__(
        torch.nn.parallel.DistributedDataParallel)
    torch.nn.Module.__init__(wrapped)
    wrapped.module = to_torch(model)   # what DDP holds, without a process group
    back = from_torch(wrapped)
    assert all(back.params[k].tobytes() == p.tobytes() for k, p in model.params.items())


# --------------------------------------------------------------------------------------
# Files: export and import
# --------------------------------------------------------------------------------------

def write_checkpoint(path, model, vocab=None, kind="charrnn"):
    meta = {"kind": kind, "model": model.config}
    if vocab is not None:
        meta["vocab"] = vocab.to_json()
    return save_checkpoint(path, {f"model/{k}": v for k, v in model.params.items()}, meta)


def test_export_and_import_give_back_the_trained_checkpoints_of_every_kind(tmp_path):
    loaders = {"char_lstm_2x16": load_model, "seq2seq_dates": load_seq2seq,
               "convlstm_squares": load_convlstm}
    for name, load in loaders.items():
        src = FIXTURES / f"{name}.npz"
        weights, settings = export_model(src, tmp_path / f"{name}.safetensors")
        assert settings == tmp_path / f"{name}.json"
        out = import_model(weights, tmp_path / name)
        before, after = load(src)[0], load(out)[0]
        assert type(before) is type(after) and before.config == after.config
        for k, p in before.params.items():
            assert after.params[k].tobytes() == p.tobytes(), f"{name}: {k}"


def test_a_gpt_checkpoint_exports_and_imports_back_and_samples_the_same_text(tmp_path, capsys):
    model = GPT(5, block_size=6, num_layers=2, embedding_dim=4, num_heads=2, seed=3)
    src = write_checkpoint(tmp_path / "gpt.npz", model, CharVocab("abcde"), kind="gpt")
    weights, settings = export_model(src, tmp_path / "gpt.safetensors")
    written = json.loads(settings.read_text(encoding="utf-8"))
    assert written["kind"] == "gpt" and written["model"] == model.config
    out = import_model(weights, tmp_path / "back")
    back = load_model(out)[0]
    assert isinstance(back, GPT) and back.config == model.config
    assert all(back.params[k].tobytes() == p.tobytes() for k, p in model.params.items())
    texts = []
    for ckpt in (src, out):
        assert cli.main(["sample", str(ckpt), "--prompt", "ab", "--length", "30",
                         "--seed", "3"]) == 0
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1] and len(texts[0]) > 30


def test_imported_checkpoint_samples_the_same_text(tmp_path, capsys):
    src = FIXTURES / "char_lstm_2x16.npz"
    assert cli.main(["export", str(src), "--to", str(tmp_path / "m.safetensors")]) == 0
    assert cli.main(["import", str(tmp_path / "m.safetensors"), "--out",
                     str(tmp_path / "run")]) == 0
    capsys.readouterr()
    texts = []
    for ckpt in (src, tmp_path / "run" / "checkpoint.npz"):
        assert cli.main(["sample", str(ckpt), "--length", "80", "--seed", "3"]) == 0
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1] and len(texts[0]) > 80


def test_export_and_import_need_no_torch(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None          # any import of torch fails from here on
        from minirnn import cli
        assert cli.main(["export", {str(FIXTURES / "char_lstm_2x16.npz")!r},
                         "--to", {str(tmp_path / "m.safetensors")!r}]) == 0
        assert cli.main(["import", {str(tmp_path / "m.safetensors")!r},
                         "--out", {str(tmp_path / "run")!r}]) == 0
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "run" / "checkpoint.npz").is_file()


PLAIN_TORCH = """
import json, sys
sys.modules["minirnn"] = None              # any import of minirnn fails from here on
import numpy as np
import torch
from safetensors.torch import load_file

stem, ids_file, out_file = sys.argv[1:]
settings = json.load(open(stem + ".json", encoding="utf-8"))
layers = settings["torch_modules"]
assert layers["rnn"]["class"] == "LSTM", layers
embed = torch.nn.Embedding(**layers["embed"]["args"])
rnn = torch.nn.LSTM(**layers["rnn"]["args"])
head = torch.nn.Linear(**layers["head"]["args"])
tensors = load_file(stem + ".safetensors")
for name, module in (("embed", embed), ("rnn", rnn), ("head", head)):
    module.load_state_dict({k[len(name) + 1:]: v for k, v in tensors.items()
                            if k.startswith(name + ".")})
with torch.no_grad():
    hs, _ = rnn(embed(torch.from_numpy(np.load(ids_file))))
    np.save(out_file, head(hs).numpy())
assert not any(m.startswith("minirnn") and sys.modules[m] for m in sys.modules)
"""


def test_exported_file_loads_into_a_plain_nn_lstm_without_minirnn(torch, tmp_path):
    src = FIXTURES / "char_lstm_2x16.npz"
    export_model(src, tmp_path / "m.safetensors")
    ids = np.random.default_rng(5).integers(0, 58, (2, 9))
    np.save(tmp_path / "ids.npy", ids)
    run = subprocess.run([sys.executable, "-c", PLAIN_TORCH, str(tmp_path / "m"),
                          str(tmp_path / "ids.npy"), str(tmp_path / "logits.npy")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    model = load_model(src)[0].eval()
    assert_close(model.forward(ids)[0], np.load(tmp_path / "logits.npy"), "float32",
                 "plain nn.LSTM from the export")


# --------------------------------------------------------------------------------------
# Bad input: one line naming what is wrong, nothing written
# --------------------------------------------------------------------------------------

@pytest.fixture
def exported(tmp_path):
    """A 1x8 LSTM char model exported to tmp_path/m.safetensors and m.json."""
    vocab = CharVocab("abcdef")
    write_checkpoint(tmp_path / "ckpt.npz", CharRNN(6, 8, 1, "lstm"), vocab)
    export_model(tmp_path / "ckpt.npz", tmp_path / "m.safetensors")
    return tmp_path / "m.safetensors"


def rewrite(weights, drop=(), change=None, settings=None):
    from safetensors.numpy import load_file, save_file
    tensors = {k: v for k, v in load_file(weights).items() if k not in drop}
    tensors.update(change or {})
    save_file(tensors, weights)
    if settings:
        path = weights.with_suffix(".json")
        s = json.loads(path.read_text())
        s.update(settings)
        path.write_text(json.dumps(s))


def refused(capsys, argv, *words):
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, err
    return err


def test_a_missing_tensor_is_named(exported, capsys):
    rewrite(exported, drop=["rnn.weight_hh_l0"])
    refused(capsys, ["import", str(exported), "--out", str(exported.parent / "run")],
            "'rnn.weight_hh_l0' is missing")
    assert not (exported.parent / "run").exists()


def test_a_shape_that_does_not_match_the_settings_is_named(exported, capsys):
    rewrite(exported, settings={"model": {**json.loads(exported.with_suffix(".json")
                                                       .read_text())["model"], "hidden_size": 9}})
    refused(capsys, ["import", str(exported), "--out", str(exported.parent / "run")],
            "'rnn.weight_ih_l0' has shape (32, 6)", "needs (36, 6)", "hidden_size 9")
    assert not (exported.parent / "run").exists()


def test_an_unexpected_tensor_or_dtype_is_named(exported, capsys):
    rewrite(exported, change={"rnn.weight_ih_l1": np.zeros((32, 8), np.float32)})
    refused(capsys, ["import", str(exported), "--out", str(exported.parent / "run")],
            "unexpected tensor 'rnn.weight_ih_l1'")
    rewrite(exported, drop=["rnn.weight_ih_l1"],
            change={"head.bias": np.zeros(6, np.int32)})
    refused(capsys, ["import", str(exported), "--out", str(exported.parent / "run")],
            "'head.bias' has dtype int32")
    assert not (exported.parent / "run").exists()


def test_weights_of_another_kind_are_refused(exported, tmp_path, capsys):
    conv = NextFrameModel(hidden_channels=2, num_layers=1, n_out=1)
    write_checkpoint(tmp_path / "conv.npz", conv, kind="convlstm")
    export_model(tmp_path / "conv.npz", tmp_path / "conv.safetensors")
    shutil.copy(exported.with_suffix(".json"), tmp_path / "conv.json")  # a char model's
    refused(capsys, ["import", str(tmp_path / "conv.safetensors"), "--out",
                     str(tmp_path / "run")], "'rnn.weight_ih_l0' is missing", "charrnn")
    rewrite(exported, settings={"kind": "mamba"})
    refused(capsys, ["import", str(exported), "--out", str(tmp_path / "run")],
            "kind 'mamba' is not a model minirnn imports")
    assert not (tmp_path / "run").exists()


def test_export_refuses_a_checkpoint_of_another_kind_and_writes_nothing(tmp_path, capsys):
    save_checkpoint(tmp_path / "c.npz", {"model/W": np.zeros(3, np.float32)},
                    {"kind": "word2vec", "model": {}})
    refused(capsys, ["export", str(tmp_path / "c.npz"), "--to", str(tmp_path / "m.safetensors")],
            "holds a 'word2vec' model", "charrnn, seq2seq, convlstm")
    bad = CharRNN(6, 8, 1, "lstm")
    arrays = {f"model/{k}": v for k, v in bad.params.items() if k != "head.b"}
    save_checkpoint(tmp_path / "d.npz", arrays, {"kind": "charrnn", "model": bad.config,
                                                 "vocab": CharVocab("abcdef").to_json()})
    refused(capsys, ["export", str(tmp_path / "d.npz"), "--to", str(tmp_path / "m.safetensors")],
            "lacks the weight 'head.b'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz", "d.npz"]


def test_a_file_that_is_not_safetensors_or_has_no_settings_is_refused(exported, capsys):
    exported.with_suffix(".json").rename(exported.parent / "elsewhere.json")
    refused(capsys, ["import", str(exported), "--out", str(exported.parent / "run")],
            "m.json does not exist")
    exported.write_bytes(b"not a safetensors file")
    refused(capsys, ["import", str(exported), "--settings", str(exported.parent /
            "elsewhere.json"), "--out", str(exported.parent / "run")], "is not a safetensors file")
    assert not (exported.parent / "run").exists()


def test_existing_files_are_not_replaced_without_force(exported, capsys):
    before = exported.read_bytes()
    ckpt = exported.parent / "ckpt.npz"
    refused(capsys, ["export", str(ckpt), "--to", str(exported)], "exists", "--force")
    assert exported.read_bytes() == before
    assert cli.main(["export", str(ckpt), "--to", str(exported), "--force"]) == 0
    assert cli.main(["import", str(exported), "--out", str(exported.parent)]) == 0
    stamp = load_checkpoint(exported.parent / "checkpoint.npz")[1]
    refused(capsys, ["import", str(exported), "--out", str(exported.parent)], "exists")
    assert load_checkpoint(exported.parent / "checkpoint.npz")[1] == stamp


def test_export_to_a_json_name_is_a_usage_error(exported, capsys):
    assert cli.main(["export", str(exported.parent / "ckpt.npz"), "--to", "m.json"]) == 2
    assert "--to names the weights file" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# Past one machine: the DDP example, 2 processes on 127.0.0.1
# --------------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_example_trains_on_two_processes_and_comes_back_to_minirnn(torch, tmp_path):
    from minirnn.data import read_text, resolve_corpus
    text = read_text(resolve_corpus("tinyshakespeare"))
    vocab = CharVocab(sorted(set(text)))
    (tmp_path / "text.txt").write_text(text[:40_000], encoding="utf-8")
    write_checkpoint(tmp_path / "ckpt.npz", CharRNN(len(vocab), 32, 1, "gru", 16), vocab)
    export_model(tmp_path / "ckpt.npz", tmp_path / "m.safetensors")
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    run = subprocess.run(
        torchrun + ["--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port",
                    str(free_port()), str(ROOT / "examples" / "ddp_continue.py"),
                    "--model", str(tmp_path / "m.safetensors"), "--data",
                    str(tmp_path / "text.txt"), "--steps", "30", "--batch-size", "8",
                    "--seq-len", "32", "--lr", "0.01", "--sample-length", "40",
                    "--out", str(tmp_path / "ddp")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    loss = {when: float(out.split(f"validation loss {when}: ")[1].split()[0])
            for when in ("before", "after")}
    assert loss["after"] < loss["before"] - 0.2, out
    digests = {line.split()[1]: line.split()[-1] for line in out.replace("rank", "\nrank")
               .splitlines() if "weights sha256" in line}
    assert set(digests) == {"0:", "1:"} and len(set(digests.values())) == 1, out
    # The weights back in minirnn give the logits the trained PyTorch weights give.
    from safetensors.torch import load_file
    model = load_model(tmp_path / "ddp" / "checkpoint.npz")[0].eval()
    tmodel = to_torch(CharRNN(**model.config)).eval()
    tmodel.load_state_dict(load_file(tmp_path / "ddp" / "model.safetensors"))
    ids = np.random.default_rng(6).integers(0, len(vocab), (2, 20))
    with torch.no_grad():
        theirs, _ = tmodel(torch.from_numpy(ids))
    assert_close(model.forward(ids)[0], theirs, "float32", "imported DDP weights")
    assert "minirnn samples from" in out
