"""The command line: gradcheck's table and exit status, Ctrl-C at any moment, streaming."""

import dataclasses
import os
import signal
import subprocess
import sys
import time

import pytest

from minirnn import cli, gradcheck


def test_gradcheck_command_checks_every_op_and_exits_zero():
    run = subprocess.run([sys.executable, "-m", "minirnn", "gradcheck"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["op", "argument", "rel.", "error", "tolerance", "result"]
    ops = {line.split()[0] for line in lines[2:-1]}
    assert ops == set(gradcheck.OPS)
    assert "dc_last" not in ops
    assert lines[-1].endswith("0 failed")


def test_op_option_picks_one_family(capsys):
    assert cli.main(["gradcheck", "--op", "lstm"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:-1]
    assert {r.split()[0] for r in rows} == {"lstm", "lstm_step"}
    assert {r.split()[1] for r in rows} == {"x", "h0", "c0", "h_prev", "c_prev", "Wx", "Wh", "b"}


def test_unknown_op_is_a_usage_error(capsys):
    assert cli.main(["gradcheck", "--op", "transformer"]) == 2
    assert "--op must name one of" in capsys.readouterr().err


def test_a_failing_check_gives_exit_status_one(monkeypatch, capsys):
    spec = gradcheck.OPS["rnn_step"]

    def broken(backward, d, cache):
        dx, dh, dWx, dWh, db = spec.call_backward(backward, d, cache)
        return dx, dh, dWx, dWh, 2 * db

    monkeypatch.setitem(gradcheck.OPS, "rnn_step", dataclasses.replace(spec, call_backward=broken))
    assert cli.main(["gradcheck", "--op", "rnn_step"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and out.splitlines()[-1] == "4 passed, 1 failed"


# ------------------------------------------------------------------ Ctrl-C and streaming


def _run_and_interrupt(argv, after_s, tmp_path, wait_for=None):
    """Start ``python -m minirnn ARGV``, send SIGINT ``after_s`` seconds later (or once
    ``wait_for`` appears in its stdout), and return (status, stdout, stderr)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", XDG_CACHE_HOME=str(tmp_path / "cache"))
    proc = subprocess.Popen([sys.executable, "-m", "minirnn", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    seen = b""
    if wait_for is not None:
        os.set_blocking(proc.stdout.fileno(), False)
        deadline = time.monotonic() + 120
        while wait_for not in seen and time.monotonic() < deadline:
            seen += proc.stdout.read() or b""
            time.sleep(0.05)
    else:
        time.sleep(after_s)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, (seen + (out or b"")).decode(), err.decode()


@pytest.mark.parametrize("after_s", [0.3, 1.0])
def test_ctrl_c_early_in_train_exits_130_in_one_line_without_a_traceback(after_s, tmp_path):
    code, out, err = _run_and_interrupt(
        ["train", "--steps", "100000", "--hidden-size", "32", "--no-progress",
         "--out", str(tmp_path / "r")], after_s, tmp_path)
    assert "Traceback" not in err, err
    # Interrupted before the loop started: 130 and one line; inside it: a saved stop, 0.
    assert (code == 130 and err.strip().splitlines()[-1] == "minirnn train: interrupted") \
        or (code == 0 and "stopped by interrupt" in out), (code, out, err)


def test_ctrl_c_during_a_long_sample_keeps_the_text_printed_and_exits_130(tmp_path):
    from minirnn.training import TrainConfig, train
    text = tmp_path / "t.txt"
    text.write_text("abcabcabc hello world\n" * 50, encoding="utf-8")
    train(TrainConfig(data=str(text), hidden_size=8, num_layers=1, batch_size=2, seq_len=8,
                      steps=2, sample_length=0, progress=False, out=str(tmp_path / "r")),
          log=lambda *_: None)
    code, out, err = _run_and_interrupt(
        ["sample", str(tmp_path / "r" / "checkpoint.npz"), "--prompt", "hello",
         "--length", "100000000"], None, tmp_path, wait_for=b"hello")
    assert code == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == "minirnn sample: interrupted"
    assert out.startswith("hello") and len(out) > len("hello") and out.endswith("\n")
