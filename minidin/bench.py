"""End-to-end throughput: training and inference samples/s, and one-sample latency (``minidin bench``).

Histories are drawn lognormal with mean 9 and a long tail (p99 ≈ 48, capped at
100), the shape of real review histories; the model is the core defaults
(goods 64 + category 64, attention 80-40, MLP 200-80, Dice, float32), and the
same model with a schema (``SCHEMA``: a multi-hot item field and two one-hot user
fields) beside it. Training
is forward + backward + a SparseAdagrad step with the data already in memory.
Timings are medians over repeated passes; report ratios measured side by side in
one run rather than absolute numbers on a shared machine.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time

import numba
import numpy as np
from numba import njit, prange

from . import __version__
from .batch import Bag, Batch
from .compile_helper import usable_cpus
from .config import FieldSpec
from .model import DIN
from .optim import SparseAdagrad


def lognormal_lengths(rng, n, mean=9.0, sigma=0.89, cap=100):
    mu = np.log(mean) - sigma ** 2 / 2
    return np.clip(np.rint(rng.lognormal(mu, sigma, n)), 1, cap).astype(np.int64)


# the schema row of ``minidin bench``: genres-like sets of 1-3 of 20 values per item, and two user fields
SCHEMA = (FieldSpec("genres", "item", 20, 16, multi_hot=True), FieldSpec("gender", "user", 2, 16),
          FieldSpec("age", "user", 7, 16))


def _random_bag(rng, f, rows):
    if not f.multi_hot:
        return Bag.one_hot(rng.integers(0, f.vocab, rows))
    lengths = rng.integers(1, 4, rows)
    return Bag(rng.integers(0, f.vocab, int(lengths.sum())), np.r_[0, np.cumsum(lengths)].astype(np.int64))


def make_batches(rng, batch_size, n_batches, n_goods, n_cates, fields=(), mean=9.0, cap=100):
    """Random batches with lognormal histories (``lognormal_lengths``: ``mean`` behaviours on average, at most
    ``cap``); ``fields``: the schema fields every batch carries."""
    out = []
    for _ in range(n_batches):
        lens = lognormal_lengths(rng, batch_size, mean=mean, cap=cap)
        N = int(lens.sum())
        items = {f.name: (_random_bag(rng, f, N), _random_bag(rng, f, batch_size)) for f in fields if f.kind == "item"}
        samples = {f.name: _random_bag(rng, f, batch_size) for f in fields if f.kind != "item"}
        out.append(Batch(rng.integers(0, n_goods, N), rng.integers(0, n_cates, N), np.r_[0, np.cumsum(lens)],
                         rng.integers(0, n_goods, batch_size), rng.integers(0, n_cates, batch_size),
                         rng.integers(0, 2, batch_size), None, items, samples))
    return out


def _rate(fn, batches, repeats, sizes=None):
    """Samples/s of ``fn`` over ``batches`` at its median pass (``_paired_rates`` of one function)."""
    return _paired_rates({"fn": (fn, batches, sum(sizes or [b.size for b in batches]))}, repeats)[0]["fn"]


def _paired_rates(timed, repeats):
    """Several functions timed in alternating passes over their batches, for side-by-side ratios on a shared
    machine whose speed drifts: each round runs one pass of every function, in turn (the order reversed every
    other round), so all of them meet the same phases of the machine.

    timed: {name: (fn, batches, samples in one pass)}
    Returns ({name: samples/s at the median pass}, {name: [seconds of each round's pass]}).
    """
    for fn, batches, _ in timed.values():
        fn(batches[0])  # warm-up (compile)
    times = {name: [] for name in timed}
    for r in range(repeats):
        for name in (list(timed) if r % 2 == 0 else list(timed)[::-1]):
            fn, batches, _ = timed[name]
            t = time.perf_counter()
            for b in batches:
                fn(b)
            times[name].append(time.perf_counter() - t)
    return {name: timed[name][2] / float(np.median(times[name])) for name in timed}, times


def _paired_ratio(times, fast, slow):
    """How many times faster ``fast`` ran than ``slow`` over the same samples: the median over rounds of the
    ratio of their pass times in the same round (``_paired_rates``)."""
    return float(np.median(np.asarray(times[slow]) / np.asarray(times[fast])))


def _paired_percent(times, train_flop):
    """The training FLOP rate as a % of the chunked PEAK_SHAPE GEMM's, each round's training pass (``train_flop``
    FLOPs) against the GEMM pass of the same round, median over rounds (``_paired_rates``' times)."""
    return 100.0 * train_flop / PEAK_FLOP * _paired_ratio(times, "train", "gemm")


def dense_macs_per_sample(cfg, mean_history):
    """Multiply-adds of every dense layer for one sample with ``mean_history`` behaviours (a ModelConfig).

    DIN's first attention layer counts as computed: split, q·(Wq+Wd) once per sample (D·A₁) plus
    [k, q⊙k]·[Wk−Wd; Wp] per behaviour (2D·A₁); not split, [q, k, q−k, q⊙k]·W per behaviour (4D·A₁).
    """
    D = cfg.D
    macs = 0.0
    if cfg.uses_attention:
        units = list(cfg.attention_units) + [1]
        first = (D + 2 * D * mean_history) if cfg.attention_split else 4 * D * mean_history
        macs += first * units[0] + mean_history * sum(a * b for a, b in zip(units[:-1], units[1:]))
    widths = [cfg.mlp_width] + list(cfg.hidden_units) + [1]
    macs += sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    return macs


def flops_per_sample(cfg, mean_history, training=True):
    """FLOPs of the dense layers per sample: 2 per multiply-add forward, and twice that again in training
    (the backward's dx and dW products). 1.9 MFLOP for the default DIN at a mean history of 9."""
    return (6.0 if training else 2.0) * dense_macs_per_sample(cfg, mean_history)


# the GEMM of the peak measurement: (M, K) @ (K, N) float32, large enough that BLAS runs at its best rate
PEAK_SHAPE = (8192, 512, 512)
PEAK_FLOP = 2.0 * PEAK_SHAPE[0] * PEAK_SHAPE[1] * PEAK_SHAPE[2]  # one multiply and one add per multiply-add


@njit(parallel=True, cache=True)
def _chunked_gemm(out, a, b, chunks):
    """out = a @ b, rows split into ``chunks`` blocks, one single-threaded BLAS call per block across Numba's
    threads: how minidin's chunked kernels call BLAS."""
    M = a.shape[0]
    for c in prange(chunks):
        lo, hi = c * M // chunks, (c + 1) * M // chunks
        out[lo:hi] = np.dot(a[lo:hi], b)


def _peak_operands():
    """(out, a, b) of the PEAK_SHAPE product, float32."""
    M, K, N = PEAK_SHAPE
    rng = np.random.default_rng(0)
    return np.empty((M, N), np.float32), rng.random((M, K), dtype=np.float32), rng.random((K, N), dtype=np.float32)


def _peak_gemm(operands, threads):
    """One chunked PEAK_SHAPE product on ``threads`` Numba threads (8 row blocks per thread), as measure_peak
    times it and as ``run`` times it again beside each row."""
    _chunked_gemm(*operands, 8 * threads)


def _best_seconds(fn, repeats):
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


_BLAS_PROBE = """
import sys, time, numpy as np
M, K, N, r = map(int, sys.argv[1:])
rng = np.random.default_rng(0)
a, b = rng.random((M, K), dtype=np.float32), rng.random((K, N), dtype=np.float32)
a @ b
best = float("inf")
for _ in range(r):
    t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)
print(2.0 * M * K * N / best / 1e9)
"""


def measure_peak(threads, repeats=5):
    """This machine's float32 GEMM rate (GFLOP/s) at each thread count, measured now: ``"chunked"``, one
    single-threaded BLAS call per row block across ``t`` Numba threads (minidin's kernels), and ``"blas"``, one
    BLAS call with ``t`` BLAS threads (numpy in a fresh process with OPENBLAS_NUM_THREADS / OMP_NUM_THREADS = t,
    since this process pins its BLAS to one thread). {t: {"chunked", "blas", "peak"}}, peak the larger."""
    M, K, N = PEAK_SHAPE
    operands = _peak_operands()
    res, before = {}, numba.get_num_threads()
    try:
        for t in threads:
            numba.set_num_threads(t)
            chunked = PEAK_FLOP / _best_seconds(lambda: _peak_gemm(operands, t), repeats) / 1e9
            env = dict(os.environ, OPENBLAS_NUM_THREADS=str(t), OMP_NUM_THREADS=str(t), MKL_NUM_THREADS=str(t))
            try:
                blas = float(subprocess.run([sys.executable, "-c", _BLAS_PROBE, str(M), str(K), str(N), str(repeats)],
                                            env=env, capture_output=True, text=True, check=True,
                                            timeout=300).stdout.strip())
            except (OSError, ValueError, subprocess.SubprocessError):
                blas = float("nan")
            res[t] = {"chunked": chunked, "blas": blas, "peak": max(chunked, blas if blas == blas else 0.0)}
    finally:
        numba.set_num_threads(before)
    return res


def source_commit(root=None) -> str:
    """The git commit of the checkout this minidin is imported from (``root``: the folder holding minidin/),
    with '+dirty' when tracked files differ from it; 'unknown' when that folder is not a git checkout's top
    folder (an installed wheel, or a folder inside another repository)."""
    root = root or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def git(*a):
        return subprocess.run(["git", *a], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    try:
        if os.path.realpath(git("rev-parse", "--show-toplevel")) != os.path.realpath(root):
            return "unknown"  # a folder inside some other repository
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return git("rev-parse", "HEAD") + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def blas_kernels() -> dict:
    """Which kernels the BLAS that minidin's products call runs: {"core", "env"}. ``core`` is the name SciPy's
    OpenBLAS (Numba's ``np.dot`` and ``layers/blas.py`` call it) gives the kernels it picked when it loaded,
    e.g. ``"Haswell"`` (AVX2) or ``"SkylakeX"`` (AVX-512), or ``"unknown"`` for another BLAS; ``env``, the
    ``OPENBLAS_*`` variables of this process, since ``OPENBLAS_CORETYPE`` overrides OpenBLAS's own choice.
    The same GEMM runs at twice the rate on one machine with one core or the other (docs/benchmarks.md)."""
    import ctypes
    import glob

    import scipy
    import scipy.linalg.cython_blas  # noqa: F401  (loads the library, as Numba's first product does)

    core = "unknown"
    libs = os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs", "*openblas*")
    for path in sorted(glob.glob(libs)):
        try:
            lib = ctypes.CDLL(path)  # already loaded: the same handle
        except OSError:
            continue
        fn = getattr(lib, "scipy_openblas_get_corename", None) or getattr(lib, "openblas_get_corename", None)
        if fn is not None:
            fn.restype = ctypes.c_char_p
            core = (fn() or b"").decode("ascii", "replace").strip() or "unknown"
            break
    return {"core": core, "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("OPENBLAS_")}}


def machine() -> dict:
    """The CPU model, the CPUs this process may use, the BLAS kernels (``blas_kernels``) and the library
    versions a timing depends on."""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return {"cpu": cpu or platform.processor() or platform.machine(), "cpus": usable_cpus(), "blas": blas_kernels(),
            "python": platform.python_version(), "numba": numba.__version__, "numpy": np.__version__}


def _torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    from . import bench_torch
    return bench_torch


def dataset_batches(dataset, batch_size, n_batches, rng):
    """n_batches training batches of a prepared dataset (real histories), shuffled with rng."""
    out = []
    for _, b in dataset.batches("train", batch_size, shuffle=True, rng=rng):
        if len(out) == n_batches:
            break
        if b.size == batch_size:
            out.append(b)
    return out


def run(batch_sizes=(32, 256, 1024), threads=(1, 2), samples=8192, repeats=3, seed=0, n_goods=10000, n_cates=200,
        compare=True, lr=0.01, dataset=None, peak_gflops=None, schema=True, rank=True, ranking_histories=1000,
        torch_compile=False):
    """Throughput rows and one-sample latency, minidin and (if installed and ``compare``) PyTorch side by side.

    ``ceiling_pct`` is the training rate's useful FLOPs (``flops_per_sample`` of the model at the timed batches'
    mean history length) as a percentage of the float32 GEMM peak at the row's thread count, measured in this
    run (``peak_gflops`` overrides it with one figure for every row). With the peak measured, its chunked GEMM
    is also timed in every round beside the row's passes: ``gemm_gflops_paired`` (its median rate),
    ``gemm_gflops_best`` (its best) and ``ceiling_pct_paired``, the median over rounds of the training FLOP
    rate over that round's GEMM rate, the same figure with the machine's drift taken out as in the torch
    ratios. The peak is the best rate of all: ``measure_peak``'s at the start, or the chunked GEMM's in any
    round at that thread count (``peak[t]["in_rounds"]``), so one disturbed measurement at the start does
    not lower it.
    The torch rows: ``torch_*`` the like-for-like twin (the same split first attention layer), ``torch_full_*``
    the twin on the full (N, 4D) attention input, ``torch_compile_*`` (with ``torch_compile``) the split twin
    through ``torch.compile(dynamic=True)``; every twin's loss and gradients are checked against minidin first.
    Returns {"rows": [{batch, threads, train_sps, infer_sps, ceiling_pct, peak_gflops[, ceiling_pct_paired,
    gemm_gflops_paired][, torch_train_sps,
    torch_infer_sps, train_ratio, infer_ratio, torch_full_train_sps, torch_full_infer_sps, train_ratio_full,
    infer_ratio_full[, torch_compile_*], infer_ratio_best, infer_best_twin]}], "peak": measure_peak's, with
    "in_rounds" and "peak" the best of all (above),
    "torch_gemm": {t: torch.mm's GFLOP/s on PEAK_SHAPE} (with torch and the peak measured, else None),
    "schema_rows": [{batch, threads, train_sps, infer_sps, train_vs_default, infer_vs_default}] (``schema``: the
    model with SCHEMA's fields, at the most threads, on random histories),
    "latency_us", "torch_latency_us", "agreement", ...}. Before any timing the
    torch twin gets minidin's weights and its loss and gradients must agree (else ValueError).
    """
    commit = source_commit()  # now: the checkout may change while this runs
    rng = np.random.default_rng(seed)
    if dataset is not None:
        n_goods, n_cates = dataset.n_goods, dataset.n_cates
    model = DIN(n_goods=n_goods, n_cates=n_cates, seed=seed, goods_bias=False)  # no goods bias, as the torch twin
    bt = _torch() if compare else None
    agreement, twins = None, {}
    if bt is not None:
        import torch
        check = make_batches(np.random.default_rng(seed + 1), 256, 1, n_goods, n_cates)[0]
        agreement = {"split": bt.agreement(model, check, split=True), "full": bt.agreement(model, check, split=False)}
        for name, a in agreement.items():
            if a["loss"] > 1e-5 or a["grads"] > 1e-4:
                raise ValueError(f"torch twin ({name} attention input) disagrees with minidin before timing: {a}")
        # key prefix -> (train step, inference) of each twin; "torch" is the like-for-like one
        twins = {"torch": bt.train_step_fn(model, lr, 0.1, split=True),
                 "torch_full": bt.train_step_fn(model, lr, 0.1, split=False)}
        if torch_compile:
            twins["torch_compile"] = bt.train_step_fn(model, lr, 0.1, split=True, compile=True)
    peak = measure_peak(threads) if peak_gflops is None else {t: {"peak": float(peak_gflops)} for t in threads}
    # the twins' own BLAS on the same product, for comparison: measured at each thread count below
    torch_gemm = {} if bt is not None and peak_gflops is None else None
    gemm = _peak_operands() if peak_gflops is None else None  # the chunked GEMM again, timed beside each row
    opt = SparseAdagrad(model.params, lr=lr, initial_accumulator_value=0.1)

    def train_step(b):
        _, g = model.loss_and_grad(b)
        opt.step(g)

    rows, lengths = [], []
    default_threads = numba.get_num_threads()
    torch_threads = torch.get_num_threads() if bt is not None else None
    try:
        for t in threads:
            numba.set_num_threads(t)
            if bt is not None:
                torch.set_num_threads(t)
                if torch_gemm is not None:
                    torch_gemm[t] = bt.gemm_gflops(PEAK_SHAPE)
            for B in batch_sizes:
                n = max(1, samples // B)
                batches = (make_batches(rng, B, n, n_goods, n_cates) if dataset is None
                           else dataset_batches(dataset, B, n, rng))
                row_lengths = [int(t) for b in batches for t in np.diff(b.hist_offsets)]
                lengths.extend(row_lengths)
                n_pass = sum(b.size for b in batches)
                timed = {"train": (train_step, batches, n_pass), "infer": (model.predict, batches, n_pass)}
                if gemm is not None:  # one pass = one PEAK_SHAPE product, chunked as in measure_peak
                    timed["gemm"] = (lambda _, t=t: _peak_gemm(gemm, t), [None], 1)
                if bt is not None:  # every twin's passes alternate with minidin's (_paired_rates)
                    tb = [bt.tensors(b) for b in batches]
                    for key, (step, infer) in twins.items():
                        timed[f"{key}_train"], timed[f"{key}_infer"] = (step, tb, n_pass), (infer, tb, n_pass)
                rates, times = _paired_rates(timed, repeats)
                row = {"batch": B, "threads": t, "train_sps": rates["train"], "infer_sps": rates["infer"],
                       "flop_per_sample": flops_per_sample(model.cfg, float(np.mean(row_lengths)))}
                if gemm is not None:
                    row["gemm_gflops_paired"] = PEAK_FLOP / float(np.median(times["gemm"])) / 1e9
                    row["gemm_gflops_best"] = PEAK_FLOP / float(np.min(times["gemm"])) / 1e9
                    row["ceiling_pct_paired"] = _paired_percent(times, n_pass * row["flop_per_sample"])
                infer_ratios = {}
                for key in twins:
                    suffix = key[len("torch"):]
                    row[f"{key}_train_sps"], row[f"{key}_infer_sps"] = rates[f"{key}_train"], rates[f"{key}_infer"]
                    row[f"train_ratio{suffix}"] = _paired_ratio(times, "train", f"{key}_train")
                    row[f"infer_ratio{suffix}"] = infer_ratios[key] = _paired_ratio(times, "infer", f"{key}_infer")
                if twins:  # against whichever torch row was fastest at inference here
                    row["infer_best_twin"] = min(infer_ratios, key=infer_ratios.get)
                    row["infer_ratio_best"] = infer_ratios[row["infer_best_twin"]]
                rows.append(row)
        if gemm is not None:  # the peak: the best the GEMM reached, at the start or in any round since
            for t in threads:
                peak[t]["in_rounds"] = max(r["gemm_gflops_best"] for r in rows if r["threads"] == t)
                peak[t]["peak"] = max(peak[t]["peak"], peak[t]["in_rounds"])
        for row in rows:
            row["peak_gflops"] = peak[row["threads"]]["peak"]
            row["ceiling_pct"] = 100.0 * row["train_sps"] * row["flop_per_sample"] / (row["peak_gflops"] * 1e9)
        numba.set_num_threads(max(threads))
        schema_rows = _schema_rows(rows, batch_sizes, max(threads), samples, repeats, seed, n_goods, n_cates, lr) \
            if schema else []
        ranking = ranking_row(model, rng, n_goods, n_cates, histories=ranking_histories, repeats=repeats) \
            if rank else None
        one = Batch(rng.integers(0, n_goods, 9), rng.integers(0, n_cates, 9), [0, 9], [1], [1])
        latency = _latency(model.predict, one)
        torch_latency = None
        if bt is not None:
            torch.set_num_threads(max(threads))
            torch_latency = _latency(twins["torch"][1], bt.tensors(one))
    finally:
        numba.set_num_threads(default_threads)
        if bt is not None:
            torch.set_num_threads(torch_threads)
    return {"rows": rows, "schema_rows": schema_rows, "ranking": ranking, "latency_us": latency, "torch_latency_us": torch_latency, "threads_max": max(threads),
            "agreement": agreement, "torch": None if bt is None else torch.__version__, "torch_requested": compare,
            "model": model.config(),
            "histories": ("lognormal, mean 9, capped at 100" if dataset is None else "a prepared dataset's train split")
            + f"; timed batches' mean length {np.mean(lengths):.1f}, max {np.max(lengths)}",
            "flop_per_sample": flops_per_sample(model.cfg, float(np.mean(lengths))), "peak": peak,
            "peak_measured": peak_gflops is None, "torch_gemm": torch_gemm,
            "provenance": {"minidin_version": __version__, "commit": commit, "machine": machine(),
                           "settings": {"batch_sizes": list(batch_sizes), "threads": list(threads),
                                        "samples": samples, "repeats": repeats, "seed": seed, "lr": lr,
                                        "torch_compile": torch_compile, "peak_gflops": peak_gflops},
                           "data": ({"synthetic": "lognormal histories (make_batches: mean 9, sigma 0.89, cap 100)",
                                     "n_goods": n_goods, "n_cates": n_cates, "seed": seed} if dataset is None else
                                    {"sha256": dataset.fingerprint(), "n_goods": n_goods, "n_cates": n_cates})}}


def ranking_row(model, rng, n_goods, n_cates, histories=1000, per_history=100, repeats=3):
    """Scoring ``per_history`` random candidates for each of ``histories`` lognormal histories with
    ``model.score``, against ``model.predict`` on the expanded (history, candidate) pairs (built beforehand,
    not timed), side by side: {"histories", "candidates", "score_sps", "predict_sps", "ratio"} (pairs/s)."""
    from .batch import Candidates

    hist = make_batches(rng, histories, 1, n_goods, n_cates)[0]
    goods = rng.integers(0, n_goods, histories * per_history)
    cands = Candidates(goods, rng.integers(0, n_cates, goods.shape[0]),
                       np.arange(histories + 1, dtype=np.int64) * per_history)
    pairs = cands.expand(hist)
    if not np.allclose(model.score(hist, cands), model.predict(pairs), rtol=1e-4, atol=1e-5):
        raise ValueError("ranking: model.score disagrees with predict on the expanded pairs")
    K = cands.size
    score = _rate(lambda b: model.score(hist, cands), [hist], repeats, sizes=[K])
    predict = _rate(model.predict, [pairs], repeats, sizes=[K])
    return {"histories": histories, "candidates": per_history, "score_sps": score, "predict_sps": predict,
            "ratio": score / predict}


def _schema_rows(rows, batch_sizes, threads, samples, repeats, seed, n_goods, n_cates, lr):
    """Training and inference rates of the default model with SCHEMA's fields, against the default model's own
    row at the same batch size and thread count (measured just before, in the same run)."""
    model = DIN(n_goods=n_goods, n_cates=n_cates, seed=seed, fields=SCHEMA, goods_bias=False)
    opt = SparseAdagrad(model.params, lr=lr, initial_accumulator_value=0.1)

    def train_step(b):
        _, g = model.loss_and_grad(b)
        opt.step(g)

    rng, out = np.random.default_rng(seed + 2), []
    for B in batch_sizes:
        batches = make_batches(rng, B, max(1, samples // B), n_goods, n_cates, SCHEMA)
        row = {"batch": B, "threads": threads, "train_sps": _rate(train_step, batches, repeats),
               "infer_sps": _rate(model.predict, batches, repeats)}
        ref = next((r for r in rows if r["batch"] == B and r["threads"] == threads), None)
        if ref is not None:
            row["train_vs_default"] = row["train_sps"] / ref["train_sps"]
            row["infer_vs_default"] = row["infer_sps"] / ref["infer_sps"]
        out.append(row)
    return out


def _latency(fn, one, n=300):
    fn(one)
    lat = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn(one)
        lat.append(time.perf_counter_ns() - t0)
    return float(np.median(lat)) / 1e3


def _threads(t):
    """'1 thread', '2 threads' (t: an int, or its string as a JSON key)."""
    return f"{t} thread{'s' if int(t) > 1 else ''}"


def format_table(res):
    torch = res.get("torch")
    compiled = bool(res["rows"]) and "torch_compile_train_sps" in res["rows"][0]
    paired = bool(res["rows"]) and "ceiling_pct_paired" in res["rows"][0]
    head = f"{'batch':>6} {'threads':>7} {'train/s':>9} {'infer/s':>9} {'% peak':>7}"
    head += f" {'paired':>7}" if paired else ""
    if torch:
        head += (f" | {'split twin train/s':>18} {'infer/s':>9} {'train ×':>8} {'infer ×':>8}"
                 f" | {'full-input twin train/s':>23} {'train ×':>8}")
        if compiled:
            head += f" | {'compiled train/s':>16} {'train ×':>8}"
    lines = [f"histories: {res['histories']}", head]
    for r in res["rows"]:
        line = (f"{r['batch']:>6} {r['threads']:>7} {r['train_sps']:>9,.0f} {r['infer_sps']:>9,.0f} "
                f"{r['ceiling_pct']:>6.1f}%")
        line += f" {r['ceiling_pct_paired']:>6.1f}%" if paired else ""
        if torch:
            line += (f" | {r['torch_train_sps']:>18,.0f} {r['torch_infer_sps']:>9,.0f} {r['train_ratio']:>7.2f}×"
                     f" {r['infer_ratio']:>7.2f}× | {r['torch_full_train_sps']:>23,.0f} {r['train_ratio_full']:>7.2f}×")
            if compiled:
                line += f" | {r['torch_compile_train_sps']:>16,.0f} {r['train_ratio_compile']:>7.2f}×"
        lines.append(line)
    if torch:
        lines.append("inference × the fastest torch row at each size: " + ", ".join(
            f"{r['batch']}/{r['threads']}t {r['infer_ratio_best']:.2f}× ({r['infer_best_twin']})" for r in res["rows"]))
    lat = f"one-sample latency (history 9, {res['threads_max']} threads): minidin {res['latency_us']:.0f} µs"
    if torch:
        lat += f", torch {res['torch_latency_us']:.0f} µs"
    lines.append(lat)
    if res.get("schema_rows"):
        lines.append("with a schema (" + ", ".join(f"{f.name}: {f.kind}, {'multi' if f.multi_hot else 'one'}-hot"
                                                    for f in SCHEMA) + "; each 16 wide), against the rows above:")
        for r in res["schema_rows"]:
            lines.append(f"{r['batch']:>6} {r['threads']:>7} {r['train_sps']:>9,.0f} {r['infer_sps']:>9,.0f}   "
                         f"train {r.get('train_vs_default', float('nan')):.2f}×, infer "
                         f"{r.get('infer_vs_default', float('nan')):.2f}× the default model's")
    if res.get("ranking"):
        r = res["ranking"]
        lines.append(f"ranking, {r['candidates']} candidates for each of {r['histories']} histories: model.score "
                     f"{r['score_sps']:,.0f} pairs/s, predict on the expanded pairs {r['predict_sps']:,.0f}/s: "
                     f"{r['ratio']:.2f}×")
    if res.get("peak_measured", True):
        lines.append("float32 GEMM rate measured now, GFLOP/s, chunked (one single-threaded BLAS call per row block "
                     "across Numba's threads, as minidin's kernels call it) / multi-threaded BLAS: " + "; ".join(
                         f"{_threads(t)} {p['chunked']:.0f} / {p['blas']:.0f}"
                         + (f", the chunked one's best in the rounds {p['in_rounds']:.0f}" if "in_rounds" in p else "")
                         for t, p in res["peak"].items())
                     + (" (torch.mm on the same product, the twins' BLAS: " + "; ".join(
                         f"{_threads(t)} {g:.0f}" for t, g in res["torch_gemm"].items()) + ")"
                        if res.get("torch_gemm") else ""))
    blas = res.get("provenance", {}).get("machine", {}).get("blas")
    if blas:
        forced = blas["env"].get("OPENBLAS_CORETYPE")
        lines.append(f"BLAS kernels: OpenBLAS '{blas['core']}' (" + (
            f"OPENBLAS_CORETYPE={forced} in the environment; unset, OpenBLAS picks its own for the CPU)" if forced
            else "OpenBLAS's own choice for the CPU; OPENBLAS_CORETYPE overrides it)"))
    lines.append(f"% peak: train samples/s × training FLOPs per sample ({res['flop_per_sample'] / 1e6:.2f} MFLOP at "
                 f"the timed histories' mean length, from the model's config) / the best GEMM rate at the row's "
                 f"thread count" + ("" if res.get("peak_measured", True) else " (given by --peak-gflops)")
                 + ("; paired: the same FLOP rate over the chunked GEMM's, timed again in every round beside the row "
                    "(the median over rounds of the ratio within a round), which the machine's drift moves less"
                    if paired else ""))
    if torch:
        a = res["agreement"]
        lines.append(f"torch {torch}: same weights; split twin (minidin's split first attention layer) loss rel. diff "
                     f"{a['split']['loss']:.1e}, worst gradient {a['split']['grads']:.1e}; full-input twin ([q, k, "
                     f"q−k, q⊙k] per behaviour) {a['full']['loss']:.1e}, {a['full']['grads']:.1e} (checked before "
                     "timing); Dice in both MLPs, sparse embeddings, Adagrad lr 0.01 both sides, no clipping; "
                     "latency and infer × against the split twin; each × is the median over rounds of the ratio "
                     "of pass times within a round, minidin's and every twin's passes alternating")
    elif res.get("torch_requested", True):
        lines.append("torch: not installed, no side-by-side column (pip install 'minidin[compare]', CPU wheel: "
                     "see docs/benchmarks.md)")
    else:
        lines.append("torch: skipped (--no-torch)")
    return "\n".join(lines)
