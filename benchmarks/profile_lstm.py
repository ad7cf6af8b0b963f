"""Where the LSTM's forward + backward time goes: matrix products against the rest.

    python benchmarks/profile_lstm.py [--N 64 --T 64 --D 65 --H 512] [--repeats 15]

Times ``lstm_forward`` and ``lstm_backward`` (float32), then every matrix product they
make, alone, on the same shapes: the T per-step recurrent products of each pass, the
input projection, and the dWh, dWx and dx products after the backward loop. What the
products do not explain is the elementwise work of the cells (and allocation). A
report, not a test: it exits 0 whatever the figures.
"""

import argparse
import time

import numpy as np

from minirnn import backend
from minirnn import functional as F


def median_ms(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in (("N", 64), ("T", 64), ("D", 65), ("H", 512)):
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--repeats", type=int, default=15)
    a = p.parse_args(argv)
    backend.reuse_freed_memory()  # as the trainer does
    N, T, D, H = a.N, a.T, a.D, a.H
    rng = np.random.default_rng(0)

    def rand(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    x, h0, c0 = rand(N, T, D), rand(N, H), rand(N, H)
    Wx, Wh, b = rand(D, 4 * H, scale=D ** -0.5), rand(H, 4 * H, scale=H ** -0.5), rand(4 * H)
    dhs = rand(N, T, H)
    _, _, cache = F.lstm_forward(x, h0, c0, Wx, Wh, b)

    total = {"forward": median_ms(lambda: F.lstm_forward(x, h0, c0, Wx, Wh, b), a.repeats),
             "backward": median_ms(lambda: F.lstm_backward(dhs, cache), a.repeats)}
    h, da_t, WhT = rand(N, H), rand(N, 4 * H), np.ascontiguousarray(Wh.T)
    out_f, out_b = np.empty((N, 4 * H), np.float32), np.empty((N, H), np.float32)
    x_tm, da, hs = rand(T * N, D), rand(T * N, 4 * H), rand(T * N, H)
    products = {
        "forward": {
            "input projection x Wx": (lambda: x_tm @ Wx, 2 * T * N * D * 4 * H),
            f"{T} recurrent products h Wh": (
                lambda: [np.matmul(h, Wh, out=out_f) for _ in range(T)], 2 * T * N * H * 4 * H)},
        "backward": {
            f"{T} recurrent products da Wh.T": (
                lambda: [np.matmul(da_t, WhT, out=out_b) for _ in range(T)], 2 * T * N * H * 4 * H),
            "dWh = hs.T da": (lambda: hs.T @ da, 2 * T * N * H * 4 * H),
            "dWx = x.T da": (lambda: x_tm.T @ da, 2 * T * N * D * 4 * H),
            "dx = da Wx.T": (lambda: da @ Wx.T, 2 * T * N * D * 4 * H)},
    }
    print(f"lstm N={N} T={T} D={D} H={H}, float32, median of {a.repeats} (ms)")
    for phase, parts in products.items():
        print(f"\n{phase}: {total[phase]:.1f} ms")
        spent = 0.0
        for name, (fn, flops) in parts.items():
            ms = median_ms(fn, a.repeats)
            spent += ms
            print(f"  {name:<30} {ms:7.1f} ms  {flops / ms / 1e6:6.1f} GFLOP/s")
        print(f"  {'everything else (cells, copies)':<30} {total[phase] - spent:7.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
