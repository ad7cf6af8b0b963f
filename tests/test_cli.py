"""``python -m minirnn gradcheck`` prints a table and its exit status says whether all passed."""

import dataclasses
import subprocess
import sys

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
