"""Microbenchmarks for every kernel: validate against NumPy first, then time.

    python bench/kernels.py [--batch 256] [--mean-len 9] [--dtype float32] [--repeat 50] [--json PATH]

For each kernel (forward and backward) at the default model's sizes: the
compile time of the first call (cold: empty Numba cache; warm: cache filled),
the median µs per call after warm-up, GFLOP/s from counted FLOPs or GB/s from
counted bytes, and the speed-up over a NumPy implementation of the same
computation. Exits non-zero if any kernel disagrees with NumPy.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def cases(B, mean_len, dt, seed=0):
    """(name, numba call, numpy call, check pair, work (flops or bytes), unit) for every kernel."""
    import minidin.layers as L
    from minidin.optim import adagrad_rows_step

    rng = np.random.default_rng(seed)
    lens = np.minimum(rng.lognormal(np.log(mean_len) - 0.5, 1.0, B).astype(np.int64), 100)
    off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    N, Dg, Dc, A1, H1 = int(off[-1]), 64, 64, 80, 200
    D = Dg + Dc
    Vg, Vc = 10000, 200
    seg = np.repeat(np.arange(B), lens)
    gid, cid = rng.integers(0, Vg, N), rng.integers(0, Vc, N)
    gt, ct = rng.standard_normal((Vg, Dg)).astype(dt), rng.standard_normal((Vc, Dc)).astype(dt)
    hist = np.concatenate([gt[gid], ct[cid]], 1)
    cand = rng.standard_normal((B, D)).astype(dt)
    x4 = rng.standard_normal((N, 4 * D)).astype(dt)
    W1, b1 = (rng.standard_normal((4 * D, A1)) * 0.05).astype(dt), np.zeros(A1, dt)
    z = rng.standard_normal((N, A1)).astype(dt)
    alpha = np.full(A1, 0.25, dt)
    w = rng.standard_normal(N).astype(dt)
    logits, labels = rng.standard_normal(B).astype(dt), rng.integers(0, 2, B).astype(dt)
    sz = dt(0).itemsize
    out = {}

    def buf(*shape):
        return np.empty(shape, dt)

    # embedding gather
    o = buf(N, D)
    out["embedding_forward"] = (lambda: L.embedding_forward(o, gid, cid, gt, ct) or o,
                                lambda: np.concatenate([gt[gid], ct[cid]], 1), N * D * sz * 2, "B")
    rows, inv = np.unique(gid, return_inverse=True)  # what L.unique_rows computes (timed with the backward)
    dv = np.zeros((rows.shape[0], Dg), dt)

    def emb_bwd():
        dv[:] = 0
        L.embedding_backward(dv, hist, inv, 0)
        return dv

    def emb_bwd_np():
        r = np.zeros((rows.shape[0], Dg), dt)
        np.add.at(r, inv, hist[:, :Dg])
        return r
    out["embedding_backward"] = (emb_bwd, emb_bwd_np, N * Dg * sz * 2, "B")
    o4 = buf(N, 4 * D)
    q = cand[seg]
    out["attention_input_forward"] = (lambda: L.attention_input_forward(o4, cand, hist, off) or o4,
                                      lambda: np.concatenate([q, hist, q - hist, q * hist], 1), N * 4 * D * sz * 2, "B")
    dq, dk = np.zeros((B, D), dt), np.zeros((N, D), dt)

    def ai_bwd():
        dq[:] = 0
        dk[:] = 0
        L.attention_input_backward(dq, dk, x4, cand, hist, off)
        return dk

    out["attention_input_backward"] = (ai_bwd, lambda: x4[:, D:2 * D] - x4[:, 2 * D:3 * D] + x4[:, 3 * D:] *
                                       cand[seg], N * 6 * D * sz, "B")
    oz = buf(N, A1)
    out["dense_forward"] = (lambda: L.dense_forward(oz, x4, W1, b1) or oz, lambda: x4 @ W1 + b1,
                            2 * N * 4 * D * A1, "FLOP")
    dx, dW, db = np.zeros_like(x4), np.zeros_like(W1), np.zeros_like(b1)

    def dense_bwd():
        dx[:] = 0
        dW[:] = 0
        db[:] = 0
        L.dense_backward(dx, dW, db, z, x4, W1)
        return dW

    out["dense_backward"] = (dense_bwd, lambda: x4.T @ z, 4 * N * 4 * D * A1, "FLOP")
    # the split first attention layer: same output as attention_input + dense, half the multiply-adds
    Wsplit = (rng.standard_normal((4 * D, A1)) * 0.05).astype(dt)
    zs, kx = buf(N, A1), buf(N, 2 * D)
    x4_real = np.concatenate([q, hist, q - hist, q * hist], 1)
    out["attention_split_forward"] = (
        lambda: L.attention_split_forward(zs, kx, cand, hist, off, Wsplit, b1) or zs,
        lambda: x4_real @ Wsplit + b1, 2 * N * 2 * D * A1 + 2 * B * D * A1, "FLOP")
    L.attention_split_forward(zs, kx, cand, hist, off, Wsplit, b1)
    sdq, sdk, sdW, sdb = np.zeros((B, D), dt), np.zeros((N, D), dt), np.zeros_like(Wsplit), np.zeros(A1, dt)

    def split_bwd():
        for a in (sdq, sdk, sdW, sdb):
            a[...] = 0
        L.attention_split_backward(sdq, sdk, sdW, sdb, z, kx, cand, hist, off, Wsplit)
        return sdW

    out["attention_split_backward"] = (split_bwd, lambda: x4_real.T @ z, 4 * N * 2 * D * A1 + 4 * B * D * A1,
                                       "FLOP")
    gbias = rng.standard_normal((Vg, 1)).astype(dt)
    cg = rng.integers(0, Vg, B)
    zb = buf(B)

    def gb_fwd():
        zb[:] = logits
        L.goods_bias_forward(zb, cg, gbias)
        return zb

    out["goods_bias_forward"] = (gb_fwd, lambda: logits + gbias[cg, 0], B * sz * 3, "B")
    xh, p, inv_std = buf(N, A1), buf(N, A1), buf(A1)
    rm, rv = np.zeros(A1, dt), np.ones(A1, dt)

    def dice_np():
        mu, var = z.mean(0), z.var(0)
        pp = 1 / (1 + np.exp(-(z - mu) / np.sqrt(var + 1e-8)))
        return z * (alpha + (1 - alpha) * pp)

    out["dice_forward"] = (lambda: L.dice_forward(oz, xh, p, inv_std, z, alpha, rm, rv, True, 0.0, 1e-8) or oz,
                           dice_np, N * A1 * sz * 4, "B")
    dz, da = np.zeros_like(z), np.zeros_like(alpha)
    filled = []

    def dice_bwd():
        if not filled:  # the forward's cache, computed once (and not inside the compile timing of the forward)
            L.dice_forward(buf(N, A1), xh, p, inv_std, z, alpha, rm, rv, True, 0.0, 1e-8)
            filled.append(True)
        dz[:] = 0
        da[:] = 0
        L.dice_backward(dz, da, z, z, xh, p, inv_std, alpha, True)
        return da

    def dice_bwd_np():
        return (z * z * (1 - p)).sum(0)

    out["dice_backward"] = (dice_bwd, dice_bwd_np, N * A1 * sz * 5, "B")
    out["prelu_forward"] = (lambda: L.prelu_forward(oz, z, alpha) or oz, lambda: np.where(z > 0, z, alpha * z),
                            N * A1 * sz * 2, "B")

    def prelu_bwd():
        dz[:] = 0
        da[:] = 0
        L.prelu_backward(dz, da, z, z, alpha)
        return dz

    out["prelu_backward"] = (prelu_bwd, lambda: np.where(z > 0, z, alpha * z), N * A1 * sz * 3, "B")
    out["sigmoid_forward"] = (lambda: L.sigmoid_forward(oz, z) or oz, lambda: 1 / (1 + np.exp(-z)),
                              N * A1 * sz * 2, "B")
    ow = buf(N)
    sc = 1 / np.sqrt(D)

    def softmax_np():
        r = np.empty(N, dt)
        for b in range(B):
            s = sc * w[off[b]:off[b + 1]]
            if s.size:
                e = np.exp(s - s.max())
                r[off[b]:off[b + 1]] = e / e.sum()
        return r

    out["attention_softmax_forward"] = (lambda: L.attention_softmax_forward(ow, w, off, sc) or ow, softmax_np,
                                        N * sz * 2, "B")
    ou = buf(B, D)

    def pool_np():
        r = np.zeros((B, D), dt)
        np.add.at(r, seg, w[:, None] * hist)
        return r

    out["pooling_forward"] = (lambda: L.pooling_forward(ou, w, hist, off) or ou, pool_np, 2 * N * D, "FLOP")
    dw, dh = np.zeros(N, dt), np.zeros((N, D), dt)

    def pool_bwd():
        dw[:] = 0
        dh[:] = 0
        L.pooling_backward(dw, dh, cand, w, hist, off)
        return dh

    out["pooling_backward"] = (pool_bwd, lambda: w[:, None] * cand[seg], 4 * N * D, "FLOP")
    o3 = buf(B, 3 * D)
    out["interaction_forward"] = (lambda: L.interaction_forward(o3, cand, cand) or o3,
                                  lambda: np.concatenate([cand, cand, cand * cand], 1), B * 3 * D * sz * 2, "B")
    out["bce_forward"] = (lambda: np.array(L.bce_forward(logits, labels)),
                          lambda: np.array(np.mean(np.logaddexp(0, logits) - logits * labels)), B * sz * 2, "B")
    table, acc = gt.copy(), np.full_like(gt, 0.1)
    vals = rng.standard_normal((rows.shape[0], Dg)).astype(dt)
    coef = np.zeros(rows.shape[0], dt)

    def opt_np():
        t, a = gt.copy(), np.full_like(gt, 0.1)
        a[rows] += vals * vals
        t[rows] -= 0.05 * vals / (np.sqrt(a[rows]) + 1e-10)
        return t

    def opt_nb():
        table[:] = gt
        acc[:] = 0.1
        adagrad_rows_step(table, acc, rows, vals, coef, 0.05, 1e-10, 1.0)
        return table

    out["adagrad_rows_step"] = (opt_nb, opt_np, rows.shape[0] * Dg * sz * 5, "B")
    # the fused inference kernel (whole model) against the per-layer path, NumPy-free reference
    from minidin import DIN, Batch
    model = DIN(n_goods=Vg, n_cates=Vc, dtype=dt, seed=seed, goods_bias=False)
    batch = Batch(gid, cid, off, rng.integers(0, Vg, B), rng.integers(0, Vc, B))
    infer_flops = 2 * (N * (2 * D * A1 + A1 * 40 + 40) + B * (D * A1 + 3 * D * H1 + H1 * 80 + 80))
    out["din_infer_forward"] = (lambda: model.logits(batch), lambda: model.logits(batch, fused=False), infer_flops,
                                "FLOP")
    return out, dict(B=B, N=N, D=D, A1=A1, H1=H1, mean_len=float(lens.mean()))


def median_us(f, repeat):
    f()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter_ns()
        f()
        ts.append(time.perf_counter_ns() - t)
    return float(np.median(ts)) / 1e3


def compile_times(dtype, batch, mean_len):
    """First-call seconds per kernel in a fresh process: cold (empty cache dir), then warm (same dir)."""
    code = ("import sys, time, json, numpy as np; sys.path.insert(0, %r); import bench.kernels as k; "
            "c, _ = k.cases(%d, %r, np.%s); r = {}\n"
            "for n, (f, *_rest) in c.items():\n    t = time.perf_counter(); f(); r[n] = time.perf_counter() - t\n"
            "print(json.dumps(r))") % (os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."), batch,
                                       mean_len, dtype)
    res = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold", "warm"):
            p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
            if p.returncode:
                raise SystemExit(p.stderr)
            res[label] = json.loads(p.stdout.strip().splitlines()[-1])
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--mean-len", type=float, default=9.0)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--no-compile", action="store_true", help="skip the cold/warm compile measurement")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import numba

    from minidin.bench import machine, source_commit

    dt = np.dtype(args.dtype).type
    c, sizes = cases(args.batch, args.mean_len, dt)
    mach = machine()
    print(f"minidin kernel microbenchmarks: {sizes}, {args.dtype}, numba {mach['numba']} "
          f"({numba.get_num_threads()} threads), numpy {mach['numpy']}, python {mach['python']}, "
          f"{mach['cpu']}, OpenBLAS '{mach['blas']['core']}'")
    tol = dict(rtol=2e-4, atol=2e-4) if args.dtype == "float32" else dict(rtol=1e-9, atol=1e-9)
    bad = []
    for name, (fn, ref, _, _) in c.items():
        got, want = np.asarray(fn(), np.float64), np.asarray(ref(), np.float64)
        if got.shape != want.shape or not np.allclose(got, want, **tol):
            bad.append(name)
    if bad:
        print(f"MISMATCH against NumPy: {bad}")
        sys.exit(1)
    print("all kernels agree with NumPy\n")
    comp = None if args.no_compile else compile_times(args.dtype, args.batch, args.mean_len)
    print(f"{'kernel':<28}{'cold s':>8}{'warm s':>8}{'µs/call':>10}{'rate':>14}{'NumPy µs':>10}{'speed-up':>9}")
    rows = []
    for name, (fn, ref, work, unit) in c.items():
        t, tn = median_us(fn, args.repeat), median_us(ref, max(5, args.repeat // 5))
        rate = work / (t * 1e-6) / 1e9
        row = dict(kernel=name, us=t, numpy_us=tn, speedup=tn / t, rate=rate,
                   unit="GFLOP/s" if unit == "FLOP" else "GB/s")
        if comp:
            row.update(compile_cold_s=comp["cold"][name], compile_warm_s=comp["warm"][name])
        rows.append(row)
        cc = f"{row['compile_cold_s']:>8.2f}{row['compile_warm_s']:>8.3f}" if comp else f"{'-':>8}{'-':>8}"
        print(f"{name:<28}{cc}{t:>10.1f}{rate:>9.1f} {row['unit']:<5}{tn:>9.1f}{tn / t:>8.1f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(sizes=sizes, dtype=args.dtype, threads=numba.get_num_threads(), rows=rows,
                           commit=source_commit(), machine=mach), f, indent=2)


if __name__ == "__main__":
    main()
