"""The GPT: its whole gradient, its cached generation, its task, and everything the
char-RNN's runs give (sample, plot, resume, checkpoints, temperature / top-k / top-p / beam).

The loop's own guarantees (exact resume after Ctrl-C, the divergence stop, metrics and
figures) are checked for the GPT task with the other tasks in tests/test_loop.py.
"""

import json

import numpy as np
import pytest

from minirnn import backend, cli, gradcheck, nn
from minirnn import functional as F
from minirnn.checkpoint import load_checkpoint
from minirnn.data import CharVocab, WindowBatcher
from minirnn.generate import beam_sample_text, greedy_decode, sample
from minirnn.training import GPTTask, TrainConfig, evaluate, load_model, train
from minirnn.training.charlm import LANGUAGE_MODELS

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\n"
        "Speak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n")


def quiet(*_):
    pass


@pytest.fixture
def float64():
    backend.set_default_dtype("float64")
    yield
    backend.set_default_dtype("float32")


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def shaken(model, seed=0, scale=0.3):
    """The model with every parameter moved by N(0, scale): GPT-2's initialisation (0.02)
    makes gradients small enough for the differences' rounding to show."""
    rng = np.random.default_rng(seed)
    for p in model.params.values():
        p += rng.normal(0.0, scale, p.shape)
    return model


def gpt_config(text, out, **over):
    cfg = dict(data=str(text), model="gpt", num_layers=2, embedding_dim=8, num_heads=2,
               batch_size=3, seq_len=8, steps=6, eval_every=3, save_every=1000,
               sample_length=0, out=str(out), progress=False, seed=2)
    return TrainConfig(**{**cfg, **over})


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("num_layers, num_heads, T", [(1, 1, 1), (2, 2, 4), (2, 3, 5)])
def test_gpt_loss_gradient_matches_centered_differences(float64, num_layers, num_heads, T):
    V, N, E = 7, 2, 6
    model = shaken(nn.GPT(V, block_size=5, num_layers=num_layers, embedding_dim=E,
                          num_heads=num_heads, seed=3))
    rng = np.random.default_rng(1)
    ids, targets = rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))

    def loss(backward):
        value, dlogits = model.loss({"ids": ids, "targets": targets})
        if backward:
            model.backward(dlogits)
        return float(value)

    report = gradcheck.check_params(model.params, model.grads, loss, op="GPT", tol=1e-7)
    assert len(report.results) == len(model.params) == 6 + 12 * num_layers
    assert report.passed, f"\n{report}"


def test_the_gradient_check_catches_a_wrong_block_backward(float64, monkeypatch):
    """The check can fail: a residual path dropped from the block's backward shows."""
    model = shaken(nn.GPT(5, block_size=4, num_layers=1, embedding_dim=4, num_heads=2))
    ids = np.arange(6).reshape(2, 3) % 5

    def no_skip(dx, block=model.blocks[0]):
        du = F.gelu_backward(block.proj.backward(block.drop2.backward(dx)), block._gelu)
        dx = block.ln2.backward(block.fc.backward(du))   # the "dx +" of the residual gone
        return dx + block.ln1.backward(block.attn.backward(block.drop1.backward(dx)))
    monkeypatch.setattr(model.blocks[0], "backward", no_skip)

    def loss(backward):
        value, dlogits = model.loss({"ids": ids, "targets": ids})
        if backward:
            model.backward(dlogits)
        return float(value)
    report = gradcheck.check_params(model.params, model.grads, loss, op="GPT", tol=1e-7)
    failed = {r.arg for r in report.results if not r.passed}
    assert failed == {"embed.W", "pos", "blocks.0.ln1.gamma", "blocks.0.ln1.beta",
                      "blocks.0.attn.Wqkv", "blocks.0.attn.bqkv", "blocks.0.attn.Wo",
                      "blocks.0.attn.bo"}, f"\n{report}"  # below the dropped path only


def test_every_parameter_has_its_gradient_and_flatten_keeps_the_numbers():
    model = nn.GPT(11, block_size=8, num_layers=2, embedding_dim=8, num_heads=2, seed=1)
    rng = np.random.default_rng(0)
    batch = {"ids": rng.integers(0, 11, (3, 8)), "targets": rng.integers(0, 11, (3, 8))}
    loss, dlogits = model.loss(batch)
    model.backward(dlogits)
    before = {k: g.copy() for k, g in model.grads.items()}
    assert model.params.keys() == model.grads.keys()
    assert all(np.abs(g).sum() > 0 for g in before.values()), \
        [k for k, g in before.items() if not np.abs(g).sum()]
    model.flatten()
    assert all(np.shares_memory(p, model.flat.params) for p in model.params.values())
    model.zero_grad()
    loss2, dlogits = model.loss(batch)
    model.backward(dlogits)
    assert float(loss2) == float(loss)
    for k, g in model.grads.items():
        np.testing.assert_array_equal(g, before[k], err_msg=k)
    assert all(p.dtype == np.float32 for p in model.parameters())


def test_config_rebuilds_the_model_and_initialisation_is_gpt2s():
    model = nn.GPT(13, block_size=6, num_layers=3, embedding_dim=12, num_heads=3,
                   dropout=0.1, seed=4)
    again = nn.GPT(**model.config)
    for k, p in model.params.items():
        np.testing.assert_array_equal(again.params[k], p, err_msg=k)
    assert model.config == dict(vocab_size=13, block_size=6, num_layers=3, embedding_dim=12,
                                num_heads=3, dropout=0.1, seed=4)
    p = model.params
    assert np.all(p["blocks.0.ln1.gamma"] == 1) and np.all(p["blocks.2.ln2.beta"] == 0)
    assert np.all(p["blocks.1.attn.bqkv"] == 0) and np.all(p["head.b"] == 0)
    assert np.std(p["blocks.0.attn.Wqkv"]) == pytest.approx(0.02, rel=0.25)
    assert np.std(p["blocks.0.proj.W"]) == pytest.approx(0.02 / np.sqrt(6), rel=0.25)


def test_dropout_is_on_in_training_and_off_in_eval():
    model = nn.GPT(5, block_size=4, num_layers=1, embedding_dim=4, num_heads=1, dropout=0.5)
    ids = np.zeros((2, 4), int)
    assert not np.array_equal(model.forward(ids), model.forward(ids))
    model.eval()
    np.testing.assert_array_equal(model.forward(ids), model.forward(ids))
    assert len([m for m in model.modules() if isinstance(m, nn.Dropout)]) == 3


@pytest.mark.parametrize("bad, message", [
    (dict(embedding_dim=6, num_heads=4), "num_heads must divide embedding_dim = 6"),
    (dict(block_size=0), "block_size must be a positive int, got 0"),
    (dict(num_layers=1.5), "num_layers must be a positive int, got 1.5"),
])
def test_bad_settings_name_the_argument(bad, message):
    settings = dict(vocab_size=5, block_size=4, num_layers=1, embedding_dim=4, num_heads=2)
    with pytest.raises(ValueError, match=message):
        nn.GPT(**{**settings, **bad})


def test_a_window_longer_than_the_context_or_a_carried_state_is_refused():
    model = nn.GPT(5, block_size=4, num_layers=1, embedding_dim=4, num_heads=2)
    with pytest.raises(ValueError, match=r"1 <= T <= block_size = 4, got shape \(1, 5\)"):
        model.forward(np.zeros((1, 5), int))
    with pytest.raises(ValueError, match="must be None: a GPT carries nothing"):
        model.loss({"ids": np.zeros((1, 2), int), "targets": np.zeros((1, 2), int),
                    "state": (np.zeros(1),)})


# --------------------------------------------------------------------------------------
# Generation with the key/value cache
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 1e-5)])
def test_each_cached_step_gives_the_forward_logits_of_the_positions_so_far(dtype, tol):
    before = backend.default_dtype()
    backend.set_default_dtype(dtype)
    try:
        model = shaken(nn.GPT(9, block_size=7, num_layers=2, embedding_dim=6, num_heads=3,
                              seed=5)).eval()
        ids = np.random.default_rng(0).integers(0, 9, (3, 7))
        full = model.forward(ids)                                   # (N, T, V)
        state = model.initial_state(3)
        for t in range(7):
            logits, state = model.step(ids[:, t], state)
            assert logits.dtype == np.dtype(dtype) and state.length == t + 1
            err = gradcheck.rel_error(logits, full[:, t])
            assert err <= tol, f"position {t}: relative error {err:.1e} > {tol:.0e}"
    finally:
        backend.set_default_dtype(before)


def test_a_full_window_starts_again_from_its_last_half(float64):
    """Past block_size tokens, each step's logits are the forward's over the window the
    state holds: the last block_size // 2 tokens at the restart, and those fed since."""
    B = 6
    model = shaken(nn.GPT(9, block_size=B, num_layers=2, embedding_dim=4, num_heads=2)).eval()
    ids = np.random.default_rng(1).integers(0, 9, (2, 20))
    state, start = model.initial_state(2), 0
    for t in range(20):
        if state.length == B:
            start = t - B // 2
        logits, state = model.step(ids[:, t], state)
        window = ids[:, start:t + 1]
        assert window.shape[1] == state.length <= B
        want = model.forward(window)[:, -1]
        assert gradcheck.rel_error(logits, want) <= 1e-12, t


@pytest.mark.parametrize("B", [1, 2, 3])
def test_the_shortest_contexts_generate_past_their_window(float64, B):
    model = shaken(nn.GPT(5, block_size=B, num_layers=1, embedding_dim=2, num_heads=1)).eval()
    ids = np.arange(12) % 5
    state, fed = model.initial_state(1), []
    for t in range(12):
        logits, state = model.step(ids[t:t + 1], state)
        fed.append(ids[t])
        window = fed[len(fed) - state.length:]  # the tokens the state holds
        assert 1 <= state.length <= B
        assert gradcheck.rel_error(logits, model.forward(np.array([window]))[:, -1]) <= 1e-12


def test_generation_attends_to_at_most_block_size_keys_per_step(monkeypatch):
    """n tokens cost O(n * block_size) attention: every cached step reads at most
    block_size keys, and a full forward (over half a window) comes once every
    block_size // 2 tokens."""
    model = nn.GPT(5, block_size=8, num_layers=2, embedding_dim=4, num_heads=2).eval()
    keys, forwards = [], []
    real_step, real_forward = F.causal_self_attention_step, F.causal_self_attention_forward
    monkeypatch.setattr(F, "causal_self_attention_step",
                        lambda x, kv, *a: keys.append(kv.length + 1) or real_step(x, kv, *a))
    monkeypatch.setattr(F, "causal_self_attention_forward",
                        lambda x, *a: forwards.append(x.shape[1]) or real_forward(x, *a))
    state = model.initial_state(1)
    for t in range(40):
        _, state = model.step(np.array([t % 5]), state)
    assert len(keys) == 2 * 40 and max(keys) == 8
    assert forwards == [4] * (2 * 8)  # (40 - 8) / 4 restarts, one forward per layer each


def test_sampling_decoding_and_beam_search_work_on_a_gpt(float64):
    vocab = CharVocab("abcde")
    model = shaken(nn.GPT(5, block_size=6, num_layers=1, embedding_dim=4, num_heads=2,
                          seed=2), scale=1.0).eval()
    text = sample(model, vocab, prompt="abc", length=12, temperature=0.8, seed=3)
    assert text.startswith("abc") and len(text) == 15
    assert text == sample(model, vocab, prompt="abc", length=12, temperature=0.8, seed=3)
    greedy = sample(model, vocab, prompt="a", length=10, temperature=0)
    assert sample(model, vocab, prompt="a", length=10, top_k=1, seed=4) == greedy
    assert sample(model, vocab, prompt="a", length=10, top_p=1e-9, seed=5) == greedy
    ids, _ = greedy_decode(model.step, model.initial_state(1), [0], 10)
    assert greedy == "a" + vocab.decode(ids[0])
    assert beam_sample_text(model, vocab, "a", beam_width=1, length=10) == greedy
    wide = beam_sample_text(model, vocab, "ab", beam_width=4, length=8)
    assert wide.startswith("ab") and len(wide) == 10


def test_the_strict_backend_gives_the_numpy_logits(float64):
    model = shaken(nn.GPT(6, block_size=5, num_layers=1, embedding_dim=4, num_heads=2)).eval()
    ids = np.random.default_rng(0).integers(0, 6, (2, 5))
    want = model.forward(ids)
    backend.use("strict")
    strict = nn.GPT(**model.config).eval()
    strict.load_state_dict(model.state_dict())
    got = backend.to_numpy(strict.forward(backend.asarray(ids)))
    state = strict.initial_state(2)
    for t in range(5):
        logits, state = strict.step(backend.asarray(ids[:, t]), state)
        assert gradcheck.rel_error(backend.to_numpy(logits), want[:, t]) <= 1e-12
    assert gradcheck.rel_error(got, want) <= 1e-12


# --------------------------------------------------------------------------------------
# The task
# --------------------------------------------------------------------------------------

def test_a_window_batch_is_a_function_of_the_seed_and_the_step():
    ids = np.arange(100)
    a, b = WindowBatcher(ids, 4, 10, seed=1), WindowBatcher(ids, 4, 10, seed=1)
    x, y = a.batch(7)
    assert x.shape == y.shape == (4, 10)
    np.testing.assert_array_equal(y, x + 1)                       # targets: shifted by one
    np.testing.assert_array_equal(np.diff(x, axis=1), 1)          # each row: one window
    for step in (7, 0, 7, 123):                                   # any order, same batches
        np.testing.assert_array_equal(b.batch(step)[0], a.batch(step)[0])
    assert not np.array_equal(a.batch(8)[0], x)
    assert not np.array_equal(WindowBatcher(ids, 4, 10, seed=2).batch(7)[0], x)
    starts = np.concatenate([a.batch(s)[0][:, 0] for s in range(300)])
    assert starts.min() == 0 and starts.max() == 89               # every window can come
    with pytest.raises(ValueError, match="too few for windows of seq_len=10"):
        WindowBatcher(np.arange(10), 2, 10)


def test_train_picks_the_gpt_task_for_model_gpt_and_the_checkpoint_loads(text, tmp_path):
    said = []
    result = train(gpt_config(text, tmp_path / "g", sample_length=20), log=said.append)
    assert isinstance(result.task, GPTTask) and isinstance(result.model, nn.GPT)
    assert any("GPT 2 blocks x 8, 2 heads, context 8" in line for line in said)
    model, vocab, meta = load_model(tmp_path / "g" / "checkpoint.npz")
    assert meta["kind"] == "gpt" and meta["train"]["model"] == "gpt"
    assert isinstance(model, nn.GPT) and model.config == result.model.config
    for k, p in result.model.params.items():
        np.testing.assert_array_equal(model.params[k], p, err_msg=k)
    assert LANGUAGE_MODELS["gpt"] is nn.GPT
    # the validation loss is the mean over the windows of the split, nothing carried
    windows = list(result.task.val_batches)
    assert [x.shape[1] for x, _ in windows] == [8, 5]  # 13 (input, target) pairs
    nats = [float(model.eval().loss({"ids": x, "targets": y})[0]) * y.size for x, y in windows]
    assert evaluate(model, result.task.val_batches) == pytest.approx(sum(nats) / 13, rel=1e-6)


def test_gpt_runs_are_exactly_resumable_and_refuse_other_settings(text, tmp_path):
    whole = train(gpt_config(text, tmp_path / "a", steps=6), log=quiet)
    train(gpt_config(text, tmp_path / "b", steps=3), log=quiet)
    resumed = train(gpt_config(text, tmp_path / "b", steps=6), resume=True, log=quiet)
    for k, p in whole.model.params.items():
        np.testing.assert_array_equal(resumed.model.params[k], p, err_msg=k)
    with pytest.raises(ValueError, match=r"num_heads: checkpoint has 2, now 4"):
        train(gpt_config(text, tmp_path / "b", steps=9, num_heads=4), resume=True, log=quiet)
    rnn = TrainConfig(data=str(text), hidden_size=8, num_layers=2, batch_size=3, seq_len=8,
                      steps=9, sample_length=0, out=str(tmp_path / "b"), progress=False, seed=2)
    with pytest.raises(ValueError, match=r"holds a 'gpt' run, not a 'charrnn' one"):
        train(rnn, resume=True, log=quiet)


@pytest.mark.parametrize("over, flag, says", [
    (dict(embedding_dim=None), "--embedding-dim", "must be set for --model gpt"),
    (dict(embedding_dim=10, num_heads=4), "--num-heads", "must divide --embedding-dim 10"),
    (dict(init_from="x.npz"), "--init-from", "does not take --model gpt"),
    (dict(num_heads=0), "--num-heads", "must be a positive integer, got 0"),
])
def test_gpt_settings_are_checked_naming_the_flag(text, tmp_path, over, flag, says):
    from minirnn.settings import SettingError
    with pytest.raises(SettingError) as e:
        gpt_config(text, tmp_path / "r", **over)
    assert e.value.flag == flag and says in e.value.detail


def test_fine_tuning_refuses_a_gpt_checkpoint_in_one_line(text, tmp_path, capsys):
    train(gpt_config(text, tmp_path / "g", steps=1), log=quiet)
    status = cli.main(["train", "--data", str(text), "--init-from",
                       str(tmp_path / "g" / "checkpoint.npz"), "--steps", "1",
                       "--out", str(tmp_path / "ft"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert status == 1 and len(err.splitlines()) == 1
    assert "holds a gpt model; fine-tuning takes a recurrent one" in err
    assert not (tmp_path / "ft").exists()


def test_the_command_line_trains_samples_and_plots_a_gpt(text, tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli.main(["train", "--data", str(text), "--model", "gpt", "--num-layers", "1",
                     "--embedding-dim", "8", "--num-heads", "2", "--seq-len", "8",
                     "--batch-size", "2", "--steps", "4", "--eval-every", "2",
                     "--sample-length", "0", "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    ckpt = str(out / "checkpoint.npz")
    for extra in (["--temperature", "0.7", "--seed", "1"], ["--top-k", "3", "--seed", "2"],
                  ["--top-p", "0.9", "--seed", "3"], ["--beam-width", "3"]):
        assert cli.main(["sample", ckpt, "--prompt", "First", "--length", "20", *extra]) == 0
        printed = capsys.readouterr().out
        assert printed.startswith("First") and len(printed.rstrip("\n")) >= 25, extra
    assert cli.main(["plot", str(out)]) == 0
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    records = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert [r["step"] for r in records if "val_loss" in r] == [2, 4]
    _, meta = load_checkpoint(out / "checkpoint.npz")
    assert meta["model"]["block_size"] == 8 and meta["kind"] == "gpt"
