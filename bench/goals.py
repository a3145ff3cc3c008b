"""The speed goals against several `minidin bench` runs: each run's figure, how many runs met it, the median.

    python bench/goals.py bench/results/speed/bench-*.json [--threads 2]

One run of `minidin bench` on a shared machine moves by about ±20% from the next (docs/benchmarks.md, "How
much to trust one run"), so a goal is judged over several runs: a column per run, in the order given, then
in how many of them the goal was met and the median over them. Training ratios are against the split eager
torch twin (the like-for-like one); inference at batch 1024 against whichever torch row was fastest in that
run; the ratios are those `minidin bench` measured in alternating passes. A run without the torch twins (or
without batch 1024) shows "–" where it has no figure, and counts only where it has one. A first row names
the BLAS kernels each run's products ran on, where the run recorded them; runs on different kernels are
judged in separate tables, since the same GEMM runs at twice the rate with AVX-512 kernels as with AVX2
ones on one machine (docs/benchmarks.md, "The BLAS kernels: AVX2 or AVX-512").
"""
from __future__ import annotations

import argparse
import json
import os
import statistics

# (label, unit, goal, higher is better, figure of a run at the given thread count)
GOALS = [
    ("training ≥ 2.5× the split eager twin at batch 32", "×", 2.5, True,
     lambda r, t: _row(r, 32, t, "train_ratio")),
    ("training ≥ 2× at batch 256", "×", 2.0, True, lambda r, t: _row(r, 256, t, "train_ratio")),
    ("training ≥ 2× at batch 1024", "×", 2.0, True, lambda r, t: _row(r, 1024, t, "train_ratio")),
    ("≥ 50% of the measured peak at batch 1024", "%", 50.0, True, lambda r, t: _row(r, 1024, t, "ceiling_pct")),
    ("the same, against the GEMM timed in the same rounds (paired)", "%", 50.0, True,
     lambda r, t: _row(r, 1024, t, "ceiling_pct_paired")),
    ("inference ≥ 2× the fastest torch row at batch 1024", "×", 2.0, True,
     lambda r, t: _fastest_twin(r, 1024, t)),
    ("one-sample latency ≤ 25 µs", " µs", 25.0, False,
     lambda r, t: r.get("latency_us") if r.get("threads_max") == t else None),
]


def _find(res, batch, threads):
    """The run's row at this batch size and thread count ({} when it has none)."""
    return next((r for r in res["rows"] if r["batch"] == batch and r["threads"] == threads), {})


def _row(res, batch, threads, key):
    return _find(res, batch, threads).get(key)


def _fastest_twin(res, batch, threads):
    """minidin's inference over the fastest torch row's: the run's own ``infer_ratio_best``, or, in runs from
    before it was recorded, the smallest of the rows' ``infer_ratio*`` (the same thing)."""
    row = _find(res, batch, threads)
    ratios = [v for k, v in row.items() if k.startswith("infer_ratio") and v is not None]
    return row.get("infer_ratio_best", min(ratios) if ratios else None)


def _blas_core(res):
    """The OpenBLAS kernels the run's products ran on (recorded by minidin bench from its BLAS), or None."""
    return res.get("provenance", {}).get("machine", {}).get("blas", {}).get("core")


def table(runs, threads):
    """Markdown rows: goal, each run's figure, 'k of n' met, the median; ``runs`` is [(name, result)]."""
    head = ["goal", *[name for name, _ in runs], "met", "median"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    cores = [_blas_core(res) for _, res in runs]
    if any(cores):  # the BLAS kernels set every GEMM's rate, minidin's and the peak's (not torch's)
        lines.append("| " + " | ".join(["BLAS kernels (OpenBLAS)", *[c or "–" for c in cores], "", ""]) + " |")
    for label, unit, goal, higher, figure in GOALS:
        vals = [figure(res, threads) for _, res in runs]
        have = [v for v in vals if v is not None]
        met = sum((v >= goal) if higher else (v <= goal) for v in have)
        fmt = (lambda v: f"{v:.1f}%") if unit == "%" else (lambda v: f"{v:.2f}×") if unit == "×" \
            else (lambda v: f"{v:.1f} µs")
        cells = [fmt(v) if v is not None else "–" for v in vals]
        med = fmt(statistics.median(have)) if have else "–"
        lines.append("| " + " | ".join([label, *cells, f"{met} of {len(have)}", med]) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", metavar="JSON", help="minidin bench --json files, one column each")
    ap.add_argument("--threads", type=int, default=2, help="the thread count whose rows are judged")
    args = ap.parse_args(argv)
    runs = []
    for path in args.runs:
        with open(path) as f:
            res = json.load(f)
        if "rows" not in res:
            ap.error(f"{path}: not a minidin bench --json file (no 'rows')")
        runs.append((os.path.splitext(os.path.basename(path))[0], res))
    groups = {}  # runs on different BLAS kernels are judged apart: their GEMM rates differ twofold
    for name, res in runs:
        groups.setdefault(_blas_core(res), []).append((name, res))
    for i, (core, group) in enumerate(groups.items()):
        kernels = "" if len(groups) == 1 else f", OpenBLAS kernels {core or 'unrecorded'}"
        print(("\n" if i else "") + f"goals at {args.threads} threads over {len(group)} "
              f"run{'s' * (len(group) != 1)} of minidin bench{kernels}:")
        print(table(group, args.threads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
