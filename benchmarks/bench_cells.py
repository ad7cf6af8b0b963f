#!/usr/bin/env python
"""Benchmark minirnn's sequence cells (LSTM, GRU, RNN) forward + backward, against PyTorch.

For every cell and every configuration this times one full training-style iteration,
``*_forward`` followed by ``*_backward`` over the whole sequence, in float32, and reports
milliseconds per iteration, characters per second (N*T / seconds) and GFLOP/s.

If ``torch`` can be imported, the same process builds ``torch.nn.LSTM`` / ``GRU`` /
``RNN(nonlinearity="tanh")`` (batch_first=True, float32), copies minirnn's weights into
it, checks that outputs and gradients agree, and times torch's forward +
``hs.backward(dhs)`` with the same upstream gradient. minirnn and torch runs are
interleaved (alternating, in alternating order) so that noise from other processes on
the machine hits both equally; the reported figure is the median of the repeats.

Threads: torch is set to as many threads as the process may use (``os.sched_getaffinity``),
which is also what NumPy's BLAS picks by default; NumPy's BLAS is left at its default.

This is a report, not a test: it always exits 0 (argument errors aside).

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_cells.py
    .venv/bin/python benchmarks/bench_cells.py --quick --cells lstm
    .venv/bin/python benchmarks/bench_cells.py --repeats 20 --json bench.json
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import numpy as np

# Run from a checkout without installing: the repository root holds the package.
_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from minirnn import backend  # noqa: E402
from minirnn import functional as F  # noqa: E402

try:
    import torch
except Exception:  # torch is optional: without it only minirnn is timed
    torch = None

CELLS = ("lstm", "gru", "rnn")
GATES = {"lstm": 4, "gru": 3, "rnn": 1}  # k: number of H-wide gate blocks

# (name, N, T, D, H, target ratio minirnn/torch)
CONFIGS = (
    ("N64 T64 D65 H512", 64, 64, 65, 512, 1.0),
    ("N32 T64 D65 H256", 32, 64, 65, 256, 1.1),
)

DTYPE = np.float32
ATOL_OUT = 1e-4  # max |minirnn - torch| allowed for hidden/cell states (values in [-1, 1])
RTOL_GRAD = 1e-3  # max |minirnn - torch| / max |torch| allowed for gradients


def n_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def numpy_blas_threads():
    """Best effort: the thread count NumPy's OpenBLAS uses, or None if it can't be asked."""
    try:
        with open("/proc/self/maps") as fh:
            libs = {line.split()[-1] for line in fh if "openblas" in line.lower()}
    except OSError:
        return None
    for lib in sorted(libs):
        try:
            handle = ctypes.CDLL(lib)
        except OSError:
            continue
        for sym in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                    "openblas_get_num_threads"):
            fn = getattr(handle, sym, None)
            if fn is not None:
                fn.restype = ctypes.c_int
                return int(fn())
    return None


def matmul_flops(cell, N, T, D, H):
    """FLOPs of one forward + backward iteration, counting ONLY the matrix products.

    Forward: the input and recurrent products, 2*N*T*(D+H)*kH. Backward: dx, dh and the
    two weight gradients, twice the forward. Elementwise gate math, bias adds and
    reductions are not counted, so GFLOP/s here understates the work actually done.
    """
    k = GATES[cell]
    fwd = 2 * N * T * (D + H) * k * H
    return 3 * fwd


# --------------------------------------------------------------------------------------
# Problem set-up
# --------------------------------------------------------------------------------------

def make_problem(cell, N, T, D, H, seed):
    """Random inputs, weights (PyTorch-style U(-1/sqrt(H), 1/sqrt(H))) and upstream grads."""
    rng = np.random.default_rng(seed)
    k = GATES[cell]
    s = 1.0 / np.sqrt(H)

    def u(*shape):
        return rng.uniform(-s, s, size=shape).astype(DTYPE)

    p = {
        "x": rng.standard_normal((N, T, D)).astype(DTYPE),
        "h0": (0.1 * rng.standard_normal((N, H))).astype(DTYPE),
        "Wx": u(D, k * H),
        "Wh": u(H, k * H),
        "dhs": rng.standard_normal((N, T, H)).astype(DTYPE),
    }
    if cell == "lstm":
        p["c0"] = (0.1 * rng.standard_normal((N, H))).astype(DTYPE)
    if cell == "gru":
        p["bx"], p["bh"] = u(k * H), u(k * H)
    else:
        p["b"] = u(k * H)
    return p


def minirnn_iteration(cell, p):
    """One forward + backward through minirnn; returns (outputs, grads) dicts."""
    if cell == "lstm":
        hs, c_last, cache = F.lstm_forward(p["x"], p["h0"], p["c0"], p["Wx"], p["Wh"], p["b"])
        dx, dh0, dc0, dWx, dWh, db = F.lstm_backward(p["dhs"], cache)
        return ({"hs": hs, "c_last": c_last},
                {"dx": dx, "dh0": dh0, "dc0": dc0, "dWx": dWx, "dWh": dWh, "db": db})
    if cell == "gru":
        hs, cache = F.gru_forward(p["x"], p["h0"], p["Wx"], p["Wh"], p["bx"], p["bh"])
        dx, dh0, dWx, dWh, dbx, dbh = F.gru_backward(p["dhs"], cache)
        return ({"hs": hs},
                {"dx": dx, "dh0": dh0, "dWx": dWx, "dWh": dWh, "dbx": dbx, "dbh": dbh})
    hs, cache = F.rnn_forward(p["x"], p["h0"], p["Wx"], p["Wh"], p["b"])
    dx, dh0, dWx, dWh, db = F.rnn_backward(p["dhs"], cache)
    return {"hs": hs}, {"dx": dx, "dh0": dh0, "dWx": dWx, "dWh": dWh, "db": db}


class TorchCell:
    """The matching torch module with minirnn's weights, and leaf tensors for x, h0 (, c0)."""

    def __init__(self, cell, p):
        N, T, D = p["x"].shape
        H = p["h0"].shape[1]
        cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell]
        kwargs = {"nonlinearity": "tanh"} if cell == "rnn" else {}
        self.cell = cell
        self.mod = cls(D, H, num_layers=1, bias=True, batch_first=True, **kwargs).float()
        t = torch.from_numpy
        with torch.no_grad():
            self.mod.weight_ih_l0.copy_(t(np.ascontiguousarray(p["Wx"].T)))
            self.mod.weight_hh_l0.copy_(t(np.ascontiguousarray(p["Wh"].T)))
            if cell == "gru":
                self.mod.bias_ih_l0.copy_(t(p["bx"]))
                self.mod.bias_hh_l0.copy_(t(p["bh"]))
            else:
                self.mod.bias_ih_l0.copy_(t(p["b"]))
                self.mod.bias_hh_l0.zero_()
        # x, h0, c0 require grad so torch computes dx, dh0, dc0 as minirnn does.
        self.x = t(p["x"].copy()).requires_grad_(True)
        self.h0 = t(p["h0"].copy()).unsqueeze(0).requires_grad_(True)  # (1, N, H)
        self.c0 = (t(p["c0"].copy()).unsqueeze(0).requires_grad_(True)
                   if cell == "lstm" else None)
        self.dhs = t(p["dhs"].copy())
        self.leaves = [self.x, self.h0] + ([self.c0] if self.c0 is not None else [])
        self.leaves += list(self.mod.parameters())

    def iteration(self):
        for leaf in self.leaves:  # drop last iteration's grads instead of accumulating
            leaf.grad = None
        if self.cell == "lstm":
            hs, (_, c_n) = self.mod(self.x, (self.h0, self.c0))
        else:
            hs, _ = self.mod(self.x, self.h0)
            c_n = None
        hs.backward(self.dhs)
        return hs, c_n

    def results(self):
        """Outputs and gradients of one iteration, as NumPy arrays named like minirnn's."""
        hs, c_n = self.iteration()
        m, g = self.mod, (lambda v: v.grad.detach().numpy())
        out = {"hs": hs.detach().numpy()}
        grads = {"dx": g(self.x), "dh0": g(self.h0)[0],
                 "dWx": g(m.weight_ih_l0).T, "dWh": g(m.weight_hh_l0).T}
        if self.cell == "lstm":
            out["c_last"] = c_n.detach().numpy()[0]
            grads["dc0"] = g(self.c0)[0]
        if self.cell == "gru":
            grads["dbx"], grads["dbh"] = g(m.bias_ih_l0), g(m.bias_hh_l0)
        else:
            grads["db"] = g(m.bias_ih_l0)  # equal to bias_hh's grad: both add to a_t
        return out, grads


def verify(cell, p, tc):
    """Compare minirnn and torch on one iteration. Returns (ok, worst errors, message)."""
    m_out, m_grads = minirnn_iteration(cell, p)
    t_out, t_grads = tc.results()
    out_err = {k: float(np.max(np.abs(m_out[k] - t_out[k]))) for k in m_out}
    grad_err = {k: float(np.max(np.abs(m_grads[k] - t_grads[k]))
                         / max(float(np.max(np.abs(t_grads[k]))), 1e-30))
                for k in m_grads}
    ok = max(out_err.values()) <= ATOL_OUT and max(grad_err.values()) <= RTOL_GRAD
    worst_o = max(out_err, key=out_err.get)
    worst_g = max(grad_err, key=grad_err.get)
    msg = (f"outputs max|diff| {out_err[worst_o]:.2e} ({worst_o}, tol {ATOL_OUT:g}); "
           f"grads max rel diff {grad_err[worst_g]:.2e} ({worst_g}, tol {RTOL_GRAD:g})")
    return ok, {"outputs_max_abs": out_err, "grads_max_rel": grad_err}, msg


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------

def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def time_interleaved(fns, warmup, repeats):
    """Median seconds of each callable, the callables run alternately.

    fns: dict name -> zero-argument callable. Each repeat runs every callable once;
    the order is reversed on every other repeat so neither always goes first.
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    samples = {name: [] for name in names}
    gc.collect()
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            samples[name].append(_timed(fns[name]))
    return {name: statistics.median(s) for name, s in samples.items()}, samples


def bench_one(cell, cfg, args, use_torch):
    name, N, T, D, H, target = cfg
    p = make_problem(cell, N, T, D, H, args.seed)
    row = {"cell": cell, "config": name, "N": N, "T": T, "D": D, "H": H,
           "target_ratio": target, "matmul_flops": matmul_flops(cell, N, T, D, H)}
    fns = {"minirnn": lambda: minirnn_iteration(cell, p)}
    if use_torch:
        tc = TorchCell(cell, p)
        ok, errs, msg = verify(cell, p, tc)
        print(f"  verify {cell:4s} {name}: {'OK   ' if ok else 'MISMATCH'} {msg}", flush=True)
        row["verified"], row["verify_errors"] = ok, errs
        fns["torch"] = tc.iteration
    med, samples = time_interleaved(fns, args.warmup, args.repeats)
    sec = med["minirnn"]
    row.update(minirnn_ms=1e3 * sec, chars_per_s=N * T / sec,
               gflops=row["matmul_flops"] / sec / 1e9,
               minirnn_samples_ms=[1e3 * s for s in samples["minirnn"]])
    if use_torch:
        row.update(torch_ms=1e3 * med["torch"], ratio=sec / med["torch"],
                   torch_gflops=row["matmul_flops"] / med["torch"] / 1e9,
                   torch_samples_ms=[1e3 * s for s in samples["torch"]])
        row["meets_target"] = row["ratio"] <= target
    return row


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------

def print_table(rows):
    head = (f"{'cell':<5} {'config':<17} {'minirnn ms':>10} {'torch ms':>9} "
            f"{'ratio':>6} {'target':>6} {'chars/s':>9} {'GFLOP/s':>8} {'torch GF/s':>10}")
    print(head)
    print("-" * len(head))
    for r in rows:
        if "error" in r:
            print(f"{r['cell']:<5} {r['config']:<17} ERROR: {r['error']}")
            continue
        has_t = "torch_ms" in r
        tms = f"{r['torch_ms']:9.1f}" if has_t else f"{'-':>9}"
        ratio = f"{r['ratio']:6.2f}" if has_t else f"{'-':>6}"
        mark = ("  ok" if r["meets_target"] else "  MISSED") if has_t else ""
        tgf = f"{r['torch_gflops']:10.1f}" if has_t else f"{'-':>10}"
        print(f"{r['cell']:<5} {r['config']:<17} {r['minirnn_ms']:10.1f} {tms} {ratio} "
              f"{'<=' + format(r['target_ratio'], '.1f'):>6} {r['chars_per_s']:9.0f} "
              f"{r['gflops']:8.1f} {tgf}{mark}")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", nargs="+", default=list(CELLS), metavar="CELL",
                    help="cells to time, space- or comma-separated, from: lstm gru rnn "
                         "(default: all)")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed repeats per implementation (default 15, or 5 with --quick)")
    ap.add_argument("--warmup", type=int, default=None,
                    help="untimed warm-up runs per implementation (default 3, or 1 with --quick)")
    ap.add_argument("--quick", action="store_true", help="fewer repeats and warm-ups")
    ap.add_argument("--no-torch", action="store_true", help="time minirnn only")
    ap.add_argument("--seed", type=int, default=0, help="random seed for the problem data")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    args = ap.parse_args(argv)
    cells = [c.strip().lower() for item in args.cells for c in item.split(",") if c.strip()]
    bad = [c for c in cells if c not in CELLS]
    if bad:
        ap.error(f"--cells: unknown cell(s) {bad}; choose from {list(CELLS)}")
    args.cells = cells
    if args.repeats is None:
        args.repeats = 5 if args.quick else 15
    if args.warmup is None:
        args.warmup = 1 if args.quick else 3
    if args.repeats < 1 or args.warmup < 0:
        ap.error("--repeats must be >= 1 and --warmup >= 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    backend.reuse_freed_memory()  # as the trainer does: large buffers reused, not re-faulted
    cores = n_cores()
    use_torch = torch is not None and not args.no_torch
    if use_torch:
        torch.set_num_threads(cores)
    env = {
        "python": platform.python_version(), "platform": platform.platform(),
        "numpy": np.__version__, "cores": cores,
        "numpy_blas_threads": numpy_blas_threads(),
        "torch": torch.__version__ if torch is not None else None,
        "torch_threads": torch.get_num_threads() if use_torch else None,
        "repeats": args.repeats, "warmup": args.warmup, "dtype": "float32",
    }
    print("minirnn cell benchmark: forward + backward, float32, batch first")
    print(f"  python {env['python']}, numpy {env['numpy']} "
          f"(BLAS threads: {env['numpy_blas_threads'] or 'default'}), cores available: {cores}")
    if use_torch:
        print(f"  torch {env['torch']}, torch.get_num_threads() = {env['torch_threads']}")
    else:
        print("  torch: " + ("disabled (--no-torch)" if torch is not None else "not importable")
              + "; timing minirnn only")
    print(f"  {args.warmup} warm-up + {args.repeats} timed runs each, median; "
          f"minirnn and torch interleaved")
    print("  GFLOP/s counts only matrix-product FLOPs: 6*N*T*(D+H)*kH per iteration "
          "(k = 4 LSTM, 3 GRU, 1 RNN)")
    print(flush=True)

    rows = []
    for cell in args.cells:
        for cfg in CONFIGS:
            try:
                rows.append(bench_one(cell, cfg, args, use_torch))
            except Exception as exc:  # a report: note the failure and carry on
                traceback.print_exc()
                rows.append({"cell": cell, "config": cfg[0],
                             "error": f"{type(exc).__name__}: {exc}"})

    print()
    print_table(rows)
    print()
    print("targets: ratio minirnn/torch <= 1.0 at N64 T64 D65 H512, "
          "<= 1.1 at N32 T64 D65 H256")
    timed = [r for r in rows if "ratio" in r]
    if timed:
        met = sum(r["meets_target"] for r in timed)
        print(f"  {met}/{len(timed)} met")
        bad = [r for r in timed if not r["verified"]]
        if bad:
            print("  WARNING: outputs/grads did not match torch for "
                  + ", ".join(f"{r['cell']} {r['config']}" for r in bad))

    if args.json:
        try:
            Path(args.json).write_text(json.dumps({"env": env, "results": rows}, indent=2))
            print(f"wrote {args.json}")
        except OSError as exc:
            print(f"could not write {args.json}: {exc}")
    return 0


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception:
        traceback.print_exc()
    sys.exit(0)
