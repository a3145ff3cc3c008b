"""Compile and start-up time: process start to the end of the first training step, cold and warm cache.

    python bench/startup.py [--batch 256] [--repeats 3]

Each measurement is a fresh Python process that imports minidin, builds the
default DIN (float32, Dice), draws one batch of lognormal histories, runs one
training step (forward, backward, SparseAdagrad) and one ``predict``. "cold"
points ``NUMBA_CACHE_DIR`` at an empty folder, so every kernel the step needs is
compiled; "warm" runs again on that folder. Wall time from before the process
starts to the end of the step, median over --repeats.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
STEP = """
import resource, sys, time; sys.path.insert(0, {root!r})
import numpy as np, minidin
from minidin.bench import make_batches
t = time.time()
model = minidin.DIN(n_goods=10000, n_cates=200)
opt = minidin.SparseAdagrad(model.params, lr=0.01)
batch = make_batches(np.random.default_rng(0), {batch}, 1, 10000, 200)[0]
_, grads = model.loss_and_grad(batch)
opt.step(grads)
t_step = time.time()
cpu = resource.getrusage(resource.RUSAGE_SELF)
cpu_step = cpu.ru_utime + cpu.ru_stime
model.predict(batch)
print(t_step - t, time.time() - t_step, cpu_step)
"""


def measure(cache, batch):
    t0 = time.time()
    p = subprocess.run([sys.executable, "-c", STEP.format(root=ROOT, batch=batch)], capture_output=True, text=True,
                       env=dict(os.environ, NUMBA_CACHE_DIR=cache))
    if p.returncode:
        raise SystemExit(p.stderr)
    step, predict, cpu = map(float, p.stdout.split())
    return time.time() - t0 - predict, step, predict, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rows = {"cold": [], "warm": []}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache:
            rows["cold"].append(measure(cache, args.batch))
            rows["warm"].append(measure(cache, args.batch))
    print(f"{'cache':<6}{'start→first step s':>20}{'first step s':>14}{'first predict s':>17}"
          f"{'CPU s to step':>15}   (median of {args.repeats})")
    for k, v in rows.items():
        med = sorted(v)[len(v) // 2]
        print(f"{k:<6}{med[0]:>20.2f}{med[1]:>14.2f}{med[2]:>17.2f}{med[3]:>15.2f}")
    print("CPU s to step: user + system CPU time of the process up to the end of the first step; compiling is")
    print("single-threaded, so on a quiet machine it matches the wall time, and on a busy one it is the steadier figure")
    print("goals (docs/benchmarks.md): process start to the end of the first step ≤ 10 s cold, ≤ 2 s warm")


if __name__ == "__main__":
    main()
