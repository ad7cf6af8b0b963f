"""The grader catches wrong answers: every mutant of a reference solution fails grading.

Each mutant is one small, plausible mistake in the code of one graded function (or of the
cell helper it calls): a dropped term, a flipped sign, two gates swapped, h_t used where
h_{t-1} belongs, a missing transpose, a state not carried. The mutated module is loaded
in place of the library's and run through the graded checks, on the graded cases (drawn
from the teacher's key, as ``minirnn assignment grade`` draws them) and on the public
cases a workspace's own tests use; the test fails if the function's tests all still pass
on either. (The checks are the same code whether the student's functions run in this
process or, when grading, in a child process: see tests/test_grader_security.py.)
"""

import ast
import importlib
import sys
import types
from functools import lru_cache
from pathlib import Path

import pytest

from minirnn.assignment import ASSIGNMENTS, checks
from minirnn.assignment.grading import grading_key

# function -> [(what the mistake is, function whose code is changed, old text, new text)]
MUTANTS = {
    "rnn_step_forward": [
        ("bias dropped", "rnn_step_forward", "h_prev @ Wh + b)", "h_prev @ Wh)"),
        ("recurrent term dropped", "rnn_step_forward", "x @ Wx + h_prev @ Wh + b", "x @ Wx + b"),
        ("recurrent term's sign flipped", "rnn_step_forward", "+ h_prev @ Wh", "- h_prev @ Wh"),
        ("tanh left out", "rnn_step_forward", "xp.tanh(x @ Wx + h_prev @ Wh + b)",
         "(x @ Wx + h_prev @ Wh + b)"),
        ("Wh transposed", "rnn_step_forward", "h_prev @ Wh +", "h_prev @ Wh.T +"),
    ],
    "rnn_step_backward": [
        ("tanh' sign flipped", "rnn_step_backward", "(1 - h * h)", "(1 + h * h)"),
        ("tanh' left out", "rnn_step_backward", "da = dh * (1 - h * h)", "da = dh"),
        ("Wh not transposed", "rnn_step_backward", "da @ Wh.T", "da @ Wh"),
        ("h_t used where h_{t-1} belongs", "rnn_step_backward", "h_prev.T @ da", "h.T @ da"),
        ("bias gradient summed over the wrong axis", "rnn_step_backward", "da.sum(axis=0)",
         "da.sum(axis=1)"),
    ],
    "rnn_forward": [
        ("bias dropped", "rnn_forward", "    a += b\n", ""),
        ("h0 ignored", "rnn_forward", "h = h0", "h = xp.zeros_like(h0)"),
        ("recurrent term's sign flipped", "rnn_forward", "hs[t] += xp.matmul", "hs[t] -= xp.matmul"),
        ("batch and time mixed up", "rnn_forward", "x.transpose(1, 0, 2).reshape(T * N, D)",
         "x.reshape(T * N, D)"),
        ("state not carried to the next step", "rnn_forward",
         "h = xp.tanh(hs[t], out=hs[t])", "xp.tanh(hs[t], out=hs[t])"),
        ("tanh left out", "rnn_forward", "h = xp.tanh(hs[t], out=hs[t])", "h = hs[t]"),
    ],
    "rnn_backward": [
        ("gradient from later steps dropped", "rnn_backward", "dh += dhs[:, t]",
         "dh = dhs[:, t].copy()"),
        ("tanh' sign flipped", "rnn_backward", "1 - hs[t] * hs[t]", "1 + hs[t] * hs[t]"),
        ("Wh not transposed", "rnn_backward", "dh = da[t] @ Wh.T", "dh = da[t] @ Wh"),
        ("h_t used where h_{t-1} belongs", "rnn_backward", "hs[:-1].reshape", "hs[1:].reshape"),
        ("h0's term of dWh dropped", "rnn_backward", "h0.T @ da[0] + ", ""),
        ("dh0 not returned", "rnn_backward", "return dx, dh,", "return dx, xp.zeros_like(dh),"),
    ],
    "lstm_step_forward": [
        ("bias dropped", "lstm_step_forward", "h_prev @ Wh + b", "h_prev @ Wh"),
        ("c_{t-1} used where h_{t-1} belongs", "lstm_step_forward", "h_prev @ Wh + b",
         "c_prev @ Wh + b"),
        ("h_{t-1} used where c_{t-1} belongs", "lstm_step_forward",
         "_lstm_cell_forward(gates, c_prev,", "_lstm_cell_forward(gates, h_prev,"),
        ("h and c swapped", "lstm_step_forward", "return h, c,", "return c, h,"),
        ("gate scale and shift swapped", "lstm_step_forward", "*_gate_affine(H, x.dtype, xp))",
         "*_gate_affine(H, x.dtype, xp)[::-1])"),
        ("input and forget gates swapped", "_lstm_cell_forward", "i, f, g, o = a[:, :H], a[:, H:2 * H]",
         "f, i, g, o = a[:, :H], a[:, H:2 * H]"),
        ("forget gate used where the input gate belongs", "_lstm_cell_forward", "c += i * g",
         "c += f * g"),
        ("tanh of the cell left out", "_lstm_cell_forward", "xp.multiply(o, tc, out=h)",
         "xp.multiply(o, c, out=h)"),
    ],
    "lstm_step_backward": [
        ("incoming dc ignored", "lstm_step_backward", "dc.copy()", "xp.zeros_like(dc)"),
        ("dc_t returned where dc_{t-1} belongs", "lstm_step_backward", "da @ Wh.T, dc_prev,",
         "da @ Wh.T, dc,"),
        ("bias gradient averaged", "lstm_step_backward", "da.sum(axis=0)", "da.mean(axis=0)"),
        ("h_{t-1} used where c_{t-1} belongs", "lstm_step_backward", ", c_prev, tc, da,",
         ", h_prev, tc, da,"),
        ("extra term in dh_prev", "lstm_step_backward", "da @ Wh.T, dc_prev", "da @ Wh.T + dh, dc_prev"),
        ("tanh' of the cell left out", "_lstm_cell_backward", "dc += dh * o * (1 - tc * tc)",
         "dc += dh * o"),
        ("di and df gates swapped", "_lstm_cell_backward", "xp.multiply(dc, g, out=da[:, :H])",
         "xp.multiply(dc, i, out=da[:, :H])"),
        ("forget gate left out of dc_{t-1}", "_lstm_cell_backward", "return dc * f", "return dc"),
        ("dc used where dh belongs for the output gate", "_lstm_cell_backward",
         "xp.multiply(dh, tc, out=da[:, 3 * H:])", "xp.multiply(dc, tc, out=da[:, 3 * H:])"),
    ],
    "lstm_forward": [
        ("bias dropped", "lstm_forward", "    gates += b\n", ""),
        ("c0 ignored", "lstm_forward", "h, c = h0, c0", "h, c = h0, xp.zeros_like(c0)"),
        ("cell state not carried", "lstm_forward", "h, c = hs[t], cs[t]", "h = hs[t]"),
        ("c_last taken from the first step", "lstm_forward", "cs[T - 1].copy()", "cs[0].copy()"),
        ("batch and time mixed up", "lstm_forward", "x.transpose(1, 0, 2).reshape(T * N, D)",
         "x.reshape(T * N, D)"),
        ("h0 used at every step", "lstm_forward", "xp.matmul(h, Wh, out=hWh)",
         "xp.matmul(h0, Wh, out=hWh)"),
    ],
    "lstm_backward": [
        ("dc_last ignored", "lstm_backward", "dc = dc_last.copy()", "dc = xp.zeros_like(c0)"),
        ("c_t used where c_{t-1} belongs", "lstm_backward", "c_prev = cs[t - 1] if t > 0 else c0",
         "c_prev = cs[t]"),
        ("h_t used where h_{t-1} belongs", "lstm_backward", "hs[:-1].reshape", "hs[1:].reshape"),
        ("gradient from later steps dropped", "lstm_backward", "dh += dhs[:, t]",
         "dh = dhs[:, t].copy()"),
        ("dc0 not returned", "lstm_backward", "return dx, dh, dc,", "return dx, dh, xp.zeros_like(dc),"),
        ("h0's term of dWh dropped", "lstm_backward", "h0.T @ da[0] + ", ""),
    ],
    "gru_step_forward": [
        ("input bias dropped", "gru_step_forward", "ax = x @ Wx + bx", "ax = x @ Wx"),
        ("recurrent bias dropped", "gru_step_forward", "ah = h_prev @ Wh + bh", "ah = h_prev @ Wh"),
        ("input and recurrent parts swapped", "gru_step_forward",
         "_gru_cell_forward(ax, ah, h_prev, gates, h)", "_gru_cell_forward(ah, ax, h_prev, gates, h)"),
        ("reset and update gates swapped", "_gru_cell_forward", "r, z, n = gates[:, :H], gates[:, H:2 * H]",
         "z, r, n = gates[:, :H], gates[:, H:2 * H]"),
        ("reset gate left out", "_gru_cell_forward", "xp.multiply(r, ah[:, 2 * H:], out=n)",
         "xp.multiply(1, ah[:, 2 * H:], out=n)"),
        ("update convention flipped", "_gru_cell_forward", "xp.subtract(h_prev, n, out=h)",
         "xp.subtract(n, h_prev, out=h)"),
        ("input part of the candidate's sign flipped", "_gru_cell_forward", "n += ax[:, 2 * H:]",
         "n -= ax[:, 2 * H:]"),
    ],
    "gru_step_backward": [
        ("r and z columns of dax left at 0", "gru_step_backward", "dax[:, :2 * H] = dah[:, :2 * H]",
         "dax[:, :2 * H] = 0"),
        ("path through Wh dropped from dh_prev", "gru_step_backward", "dh_prev += dah @ Wh.T", "pass"),
        ("dbx and dbh swapped", "gru_step_backward", "dax.sum(axis=0), dah.sum(axis=0)",
         "dah.sum(axis=0), dax.sum(axis=0)"),
        ("dah used where dax belongs in dWx", "gru_step_backward", "x.T @ dax,", "x.T @ dah,"),
        ("z used where 1 - z belongs", "_gru_cell_backward", "dh * (1 - z), 1 - n * n",
         "dh * z, 1 - n * n"),
        ("dz's sign flipped", "_gru_cell_backward", "dh * (h_prev - n)", "dh * (n - h_prev)"),
        ("skip path uses 1 - z", "_gru_cell_backward", "return dh * z", "return dh * (1 - z)"),
        ("reset gate left out of the candidate's recurrent gradient", "_gru_cell_backward",
         "xp.multiply(dan, r, out=dah[:, 2 * H:])", "xp.multiply(dan, 1, out=dah[:, 2 * H:])"),
    ],
    "gru_forward": [
        ("input bias dropped", "gru_forward", "    ax += bx\n", ""),
        ("recurrent bias dropped", "gru_forward", "        ah += bh\n", ""),
        ("h0 ignored", "gru_forward", "h = h0", "h = xp.zeros_like(h0)"),
        ("state not carried to the next step", "gru_forward", "h = hs[t]", "h = h0"),
        ("batch and time mixed up", "gru_forward", "x.transpose(1, 0, 2).reshape(T * N, D)",
         "x.reshape(T * N, D)"),
        ("h_{t-1} ignored inside the cell", "gru_forward", "_gru_cell_forward(ax[t], ah, h,",
         "_gru_cell_forward(ax[t], ah, h0,"),
    ],
    "gru_backward": [
        ("h_t used where h_{t-1} belongs", "gru_backward", "h_prev = hs[t - 1] if t > 0 else h0",
         "h_prev = hs[t]"),
        ("skip path dropped", "gru_backward", "dh += skip", "pass"),
        ("gradient from later steps dropped", "gru_backward", "dh += dhs[:, t]",
         "dh = dhs[:, t].copy()"),
        ("h_t used where h_{t-1} belongs in dWh", "gru_backward", "hs[:-1].reshape", "hs[1:].reshape"),
        ("dbx and dbh swapped", "gru_backward", "dax2.sum(axis=0), dah2.sum(axis=0)",
         "dah2.sum(axis=0), dax2.sum(axis=0)"),
        ("r and z columns of dax left at 0", "gru_backward", "dax[:, :, :2 * H] = dah[:, :, :2 * H]",
         "dax[:, :, :2 * H] = 0"),
    ],
    "additive_attention_forward": [
        ("tanh left out", "additive_attention_forward", "xp.tanh(u, out=u)", "pass"),
        ("mask ignored", "additive_attention_forward", "e = xp.where(mask, e, -xp.inf)", "e = e"),
        ("softmax normalised over the whole batch", "additive_attention_forward",
         "weights /= weights.sum(axis=1, keepdims=True)", "weights /= weights.sum()"),
        ("score's sign flipped", "additive_attention_forward", "e = u @ v", "e = -(u @ v)"),
        ("context is the plain mean of the keys", "additive_attention_forward",
         "context = (weights[:, None, :] @ keys)[:, 0]", "context = keys.mean(axis=1)"),
        ("query projection dropped", "additive_attention_forward",
         "u = keys_proj + (query @ Wq)[:, None, :]", "u = keys_proj + 0"),
    ],
    "additive_attention_backward": [
        ("softmax Jacobian's second term dropped", "additive_attention_backward",
         "de -= (weights * dw).sum(axis=1, keepdims=True)", "pass"),
        ("tanh' sign flipped", "additive_attention_backward", "da *= 1 - u * u", "da *= 1 + u * u"),
        ("direct path to the keys dropped", "additive_attention_backward",
         "dkeys += weights[:, :, None] * dcontext[:, None, :]", "pass"),
        ("dweights ignored", "additive_attention_backward", "dw += dweights", "pass"),
        ("dquery's sign flipped", "additive_attention_backward", "return dquery_proj @ Wq.T",
         "return -dquery_proj @ Wq.T"),
        ("only the first position reaches the query", "additive_attention_backward",
         "dquery_proj = da.sum(axis=1)", "dquery_proj = da[:, 0]"),
    ],
    "layer_norm_forward": [
        ("mean not subtracted", "layer_norm_forward", "xhat = x - _row_mean(x, col)",
         "xhat = x.copy()"),
        ("eps left out", "layer_norm_forward", "    rstd += eps\n", ""),
        ("variance not square-rooted", "layer_norm_forward", "xp.sqrt(rstd, out=rstd)", "pass"),
        ("unbiased variance (divided by E - 1)", "layer_norm_forward",
         "rstd = _row_mean(xhat * xhat, col)",
         "rstd = _row_mean(xhat * xhat, col) * (E / max(E - 1, 1))"),
        ("scale and shift swapped", "layer_norm_forward", "y = xhat * gamma\n    y += beta",
         "y = xhat * beta\n    y += gamma"),
        ("shift dropped", "layer_norm_forward", "    y += beta\n", ""),
    ],
    "layer_norm_backward": [
        ("mean term dropped", "layer_norm_backward", "dx -= dy2 @ col", "pass"),
        ("xhat term dropped", "layer_norm_backward", "    dx -= dy_xhat\n", ""),
        ("rstd left out", "layer_norm_backward", "dx *= rstd.reshape(-1, 1)", "pass"),
        ("gamma left out of dxhat", "layer_norm_backward", "dx = dy2 * gamma", "dx = dy2.copy()"),
        ("dgamma and dbeta swapped", "layer_norm_backward", "dx.reshape(xhat.shape), dgamma, dbeta",
         "dx.reshape(xhat.shape), dbeta, dgamma"),
        ("dgamma without xhat", "layer_norm_backward", "dgamma = (ones @ dy_xhat)[0]",
         "dgamma = (ones @ dy2)[0]"),
        ("means taken over 1 instead of E features", "layer_norm_backward",
         "col = (gamma / E)[:, None]", "col = gamma[:, None]"),
    ],
    "causal_self_attention_forward": [
        ("causal mask dropped", "causal_self_attention_forward",
         "att += xp.triu(xp.full((T, T), -xp.inf, dtype=x.dtype), 1)", "pass"),
        ("a position may not see itself", "causal_self_attention_forward",
         "-xp.inf, dtype=x.dtype), 1)", "-xp.inf, dtype=x.dtype), 0)"),
        ("scores not scaled by 1 / sqrt(hs)", "causal_self_attention_forward",
         "q *= 1 / math.sqrt(hs)", "pass"),
        ("softmax normalised over the queries", "causal_self_attention_forward",
         "att /= att @ xp.ones((T, 1), dtype=x.dtype)",
         "att /= att.sum(axis=-2, keepdims=True)"),
        ("keys averaged instead of values", "causal_self_attention_forward", "heads = att @ v",
         "heads = att @ k"),
        ("queries and keys swapped", "causal_self_attention_forward", "q, k, v = qkv",
         "k, q, v = qkv"),
        ("heads merged in the wrong order", "causal_self_attention_forward",
         "heads.transpose(0, 2, 1, 3).reshape(N * T, E)",
         "heads.transpose(0, 2, 3, 1).reshape(N * T, E)"),
        ("output bias dropped", "causal_self_attention_forward", "    y += bo\n", ""),
    ],
    "causal_self_attention_backward": [
        ("softmax Jacobian's row term dropped", "causal_self_attention_backward",
         "datt -= rows[..., None]", "pass"),
        ("softmax Jacobian's weights left out", "causal_self_attention_backward",
         "datt *= att", "pass"),
        ("att not transposed for dv", "causal_self_attention_backward",
         "xp.matmul(att.transpose(0, 1, 3, 2), dheads, out=dqkv[2])",
         "xp.matmul(att, dheads, out=dqkv[2])"),
        ("dq not scaled by 1 / sqrt(hs)", "causal_self_attention_backward",
         "dqkv[0] *= 1 / math.sqrt(hs)", "pass"),
        ("dk from the keys instead of the queries", "causal_self_attention_backward",
         "datt.transpose(0, 1, 3, 2), q, out=dqkv[1]",
         "datt.transpose(0, 1, 3, 2), k, out=dqkv[1]"),
        ("Wo not transposed", "causal_self_attention_backward", "dz = dy2 @ Wo.T",
         "dz = dy2 @ Wo"),
        ("bias gradient averaged", "causal_self_attention_backward",
         "dbqkv = dqkv.sum(axis=0)", "dbqkv = dqkv.mean(axis=0)"),
    ],
}

ASSIGNMENT_OF = {fn: name for name in ASSIGNMENTS for fn, _ in checks.functions(name)}
CASES = [(fn, *m) for fn, mutants in MUTANTS.items() for m in mutants]


def mutate(module_source, function, old, new):
    """``module_source`` with ``old`` replaced by ``new`` inside ``function``'s solution
    region only; the text must occur there exactly once."""
    tree = ast.parse(module_source)
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function)
    lines = module_source.splitlines(keepends=True)
    start, end = node.lineno - 1, node.end_lineno
    body = "".join(lines[start:end])
    begin = body.index("### BEGIN SOLUTION")
    region = body[begin:]
    assert region.count(old) == 1, f"{old!r} occurs {region.count(old)} times in {function}'s region"
    body = body[:begin] + region.replace(old, new)
    return "".join(lines[:start]) + body + "".join(lines[end:])


def load_variant(module, source):
    """Execute ``source`` as a sibling of ``minirnn.functional.<module>``."""
    name = f"minirnn.functional._mutant_{module}"
    mod = types.ModuleType(name)
    mod.__package__ = "minirnn.functional"
    mod.__file__ = f"<mutant of {module}.py>"
    sys.modules[name] = mod
    try:
        exec(compile(source, mod.__file__, "exec"), mod.__dict__)
    finally:
        del sys.modules[name]
    return mod


CASES_OF = {"graded": lambda a: checks.graded_cases(a, grading_key(a)),
            "public": checks.public_cases}


def module_of(function):
    """The short name of the graded module that holds ``function`` (the transformer's
    assignment grades two modules: layernorm and self_attention)."""
    from minirnn import functional as F
    return getattr(F, function).__module__.rpartition(".")[2]


@lru_cache(maxsize=None)
def source(module):
    ref = importlib.import_module(f"minirnn.functional.{module}")
    return Path(ref.__file__).read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def data(assignment, cases):
    return checks.reference_data(assignment, CASES_OF[cases](assignment))


def test_every_graded_function_has_at_least_five_mutants():
    graded = set(ASSIGNMENT_OF)
    assert set(MUTANTS) == graded
    assert min(len(MUTANTS[fn]) for fn in graded) >= 5


@pytest.mark.parametrize("cases", list(CASES_OF))
@pytest.mark.parametrize("assignment", list(ASSIGNMENTS))
def test_the_unmutated_source_loaded_the_same_way_grades_100_percent(assignment, cases):
    """The harness itself: without a change, every test of every function passes."""
    impl = types.SimpleNamespace()  # every graded module, loaded as the mutants are
    for module in dict.fromkeys(module_of(fn) for fn, _ in checks.functions(assignment)):
        vars(impl).update(vars(load_variant(module, source(module))))
    outcomes = checks.run_tests(assignment, impl, data(assignment, cases))
    assert [o for o in outcomes if not o.passed] == []


@pytest.mark.parametrize("function, what, where, old, new", CASES,
                         ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_the_mutant_fails_grading(function, what, where, old, new):
    assignment, module = ASSIGNMENT_OF[function], module_of(function)
    for cases in CASES_OF:
        impl = load_variant(module, mutate(source(module), where, old, new))
        outcomes = checks.run_tests(assignment, impl, data(assignment, cases), function=function)
        caught = [o for o in outcomes if not o.passed]
        assert caught, (f"{function} with '{what}' still passes all {len(outcomes)} tests "
                        f"on the {cases} cases")


@pytest.mark.parametrize("function, where, old, new", [
    ("rnn_step_forward", "rnn_step_forward", "x @ Wx + h_prev @ Wh + b", "b + h_prev @ Wh + x @ Wx"),
    ("lstm_step_backward", "lstm_step_backward", "da.sum(axis=0)", "da.sum(axis=0, keepdims=True)[0]"),
    ("additive_attention_backward", "additive_attention_backward", "da *= 1 - u * u",
     "da *= (1 - u) * (1 + u)"),
    ("layer_norm_backward", "layer_norm_backward", "dbeta = (ones @ dy2)[0]",
     "dbeta = dy2.sum(axis=0)"),
    ("causal_self_attention_forward", "causal_self_attention_forward",
     "att /= att @ xp.ones((T, 1), dtype=x.dtype)", "att /= att.sum(axis=-1, keepdims=True)"),
])
def test_a_correct_rewrite_still_grades_full_marks(function, where, old, new):
    """The grader judges results, not text: another correct way to write it passes."""
    assignment, module = ASSIGNMENT_OF[function], module_of(function)
    for cases in CASES_OF:
        impl = load_variant(module, mutate(source(module), where, old, new))
        outcomes = checks.run_tests(assignment, impl, data(assignment, cases), function=function)
        assert all(o.passed for o in outcomes)
