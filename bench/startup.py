"""Compile and start-up time: process start to the end of the first training step, cold and warm cache.

    python bench/startup.py [--batch 256] [--repeats 3]

Each measurement is a fresh Python process that imports minidin, builds the
default DIN (float32, Dice), draws one batch of lognormal histories, runs one
training step (forward, backward, SparseAdagrad) and one ``predict``. "cold"
points ``NUMBA_CACHE_DIR`` at an empty folder, so every kernel the step needs is
compiled, with the backward kernels in a second process (``minidin/compile_helper.py``);
"cold, one process" does the same with that helper off (``MINIDIN_COMPILE_HELPER=0``), side by
side in each repeat; "warm" runs again on the first folder. Wall time from before the process
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
cpu_step = sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))  # + the helper
model.predict(batch)
print(t_step - t, time.time() - t_step, cpu_step)
"""


def measure(cache, batch, helper=True):
    t0 = time.time()
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, MINIDIN_COMPILE_HELPER="1" if helper else "0")
    p = subprocess.run([sys.executable, "-c", STEP.format(root=ROOT, batch=batch)], capture_output=True, text=True,
                       env=env)
    if p.returncode:
        raise SystemExit(p.stderr)
    step, predict, cpu = map(float, p.stdout.split())
    return time.time() - t0 - predict, step, predict, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rows = {"cold": [], "cold, one process": [], "warm": []}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as alone:
            rows["cold"].append(measure(cache, args.batch))
            rows["cold, one process"].append(measure(alone, args.batch, helper=False))
            rows["warm"].append(measure(cache, args.batch))
    print(f"{'cache':<18}{'start→first step s':>20}{'first step s':>14}{'first predict s':>17}"
          f"{'CPU s to step':>15}   (median of {args.repeats})")
    for k, v in rows.items():
        med = [sorted(col)[len(col) // 2] for col in zip(*v)]
        print(f"{k:<18}{med[0]:>20.2f}{med[1]:>14.2f}{med[2]:>17.2f}{med[3]:>15.2f}")
    print("CPU s to step: user + system CPU time up to the end of the first step, of the process and of the")
    print("compile helper it waited for; each process compiles on one thread, so with the helper the wall time")
    print("is below the CPU time, and without it the two match on a quiet machine")
    print("goals (docs/benchmarks.md): process start to the end of the first step ≤ 10 s cold, ≤ 2 s warm")


if __name__ == "__main__":
    main()
