"""Time and memory of `minidin prepare movielens` on an ml-20m-sized input (generated, not real data).

    python bench/prepare_scale.py [--ratings 20000000] [--users 138493] [--movies 27278] [--workdir /tmp/ml20m]

Writes a MovieLens-format ratings.csv (header, userId,movieId,rating,timestamp) and movies.csv of the given
sizes, then runs the prepare command in a child process and reports its wall time and peak resident memory
(the issue's target: under about 5 minutes and 4 GB on 2 cores).
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

import numpy as np


def write_inputs(workdir, n, users, movies, seed=0):
    os.makedirs(workdir, exist_ok=True)
    rng = np.random.default_rng(seed)
    rpath, mpath = os.path.join(workdir, "ratings.csv"), os.path.join(workdir, "movies.csv")
    genres = ["Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
              "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"]
    with open(mpath, "w") as f:
        f.write("movieId,title,genres\n")
        for m in range(1, movies + 1):
            g = "|".join(rng.choice(genres, size=rng.integers(1, 4), replace=False))
            f.write(f'{m},"Movie {m}, The (2000)",{g}\n')
    with open(rpath, "w") as f:
        f.write("userId,movieId,rating,timestamp\n")
        chunk = 1_000_000
        for lo in range(0, n, chunk):
            k = min(chunk, n - lo)
            u = rng.integers(1, users + 1, k)
            m = rng.zipf(1.3, k) % movies + 1  # popular movies get most ratings, as in MovieLens
            r = rng.integers(1, 11, k) / 2.0
            t = rng.integers(789_652_009, 1_427_784_002, k)
            lines = np.char.add(np.char.add(np.char.add(np.char.add(u.astype(str), ","), m.astype(str)), ","),
                                np.char.add(np.char.add(r.astype(str), ","), t.astype(str)))
            f.write("\n".join(lines.tolist()))
            f.write("\n")
    return rpath, mpath


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ratings", type=int, default=20_000_000)
    ap.add_argument("--users", type=int, default=138_493)
    ap.add_argument("--movies", type=int, default=27_278)
    ap.add_argument("--workdir", default="/tmp/minidin-ml20m")
    args = ap.parse_args()
    t = time.time()
    rpath, mpath = write_inputs(args.workdir, args.ratings, args.users, args.movies)
    print(f"wrote {args.ratings:,} ratings ({os.path.getsize(rpath) / 1e6:.0f} MB) in {time.time() - t:.0f}s")
    out = os.path.join(args.workdir, "prepared")
    t = time.time()
    p = subprocess.run([sys.executable, "-m", "minidin", "prepare", "movielens", "--ratings", rpath, "--movies", mpath,
                        "--out", out], capture_output=True, text=True)
    wall = time.time() - t
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(p.stdout.strip())
    if p.returncode:
        print(p.stderr)
        sys.exit(p.returncode)
    print(f"prepare movielens: {wall:.0f} s wall, peak RSS {peak_mb:,.0f} MB (targets: ~300 s, 4,096 MB)")


if __name__ == "__main__":
    main()
