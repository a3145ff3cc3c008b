import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import minidin
from minidin.bench import source_commit
from minidin.cli import main


@pytest.mark.parametrize("argv", [
    ["gradcheck"],
    ["gradcheck", "--activation", "prelu", "--seed", "2"],
    ["gradcheck", "--activation", "sigmoid", "--attention-softmax"],
    ["gradcheck", "--model", "base", "--activation", "dice"],
])
def test_gradcheck_passes(argv, capsys):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "max rel err" in out and "goods_emb" in out


def test_gradcheck_exits_1_on_a_wrong_gradient(monkeypatch, capsys):
    import minidin.layers.pooling as pooling
    from minidin import model as model_mod

    real = pooling.pooling_backward

    def wrong(dweights, dhist_emb, dout, weights, hist_emb, offsets):
        real(dweights, dhist_emb, dout, weights, hist_emb, offsets)
        dhist_emb *= 1.01  # 1% off

    monkeypatch.setattr(model_mod, "pooling_backward", wrong)
    assert main(["gradcheck", "--model", "base"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_console_help_and_version():
    out = subprocess.run([sys.executable, "-m", "minidin", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("minidin ")
    out = subprocess.run([sys.executable, "-m", "minidin", "gradcheck", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--attention-softmax" in out.stdout
    out = subprocess.run([sys.executable, "-m", "minidin", "gradcheck", "--activation", "relu"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_bench_runs_and_writes_json(tmp_path, capsys):
    import json

    p = tmp_path / "b.json"
    assert main(["bench", "--batch-sizes", "4", "--threads", "1", "--samples", "8", "--repeats", "1",
                 "--ranking-histories", "3", "--json", str(p)]) == 0
    res = json.loads(p.read_text())
    assert res["rows"][0]["batch"] == 4 and res["rows"][0]["train_sps"] > 0 and res["latency_us"] > 0
    schema = res["schema_rows"][0]
    assert schema["batch"] == 4 and schema["train_sps"] > 0 and schema["train_vs_default"] > 0
    assert res["ranking"]["histories"] == 3 and res["ranking"]["score_sps"] > 0
    # the GEMM peak is measured in the same run, both ways, and % peak is the row's useful FLOP rate against it
    peak, row = res["peak"]["1"], res["rows"][0]
    # the peak: the best rate its GEMM reached, at the start (chunked, multi-threaded BLAS) or in the rounds
    assert peak["chunked"] > 0 and peak["blas"] > 0 and peak["in_rounds"] == row["gemm_gflops_best"]
    assert peak["peak"] == max(peak["chunked"], peak["blas"], peak["in_rounds"]) == row["peak_gflops"]
    assert row["ceiling_pct"] == pytest.approx(100 * row["train_sps"] * row["flop_per_sample"] / (peak["peak"] * 1e9))
    # and again against the same GEMM timed beside the row in every round
    assert row["gemm_gflops_best"] >= row["gemm_gflops_paired"] > 0 and row["ceiling_pct_paired"] > 0
    # what produced the figures: the code, the machine, the settings and the data
    prov = res["provenance"]
    assert prov["minidin_version"] == minidin.__version__ and prov["commit"]
    assert prov["machine"]["cpus"] >= 1 and prov["machine"]["numba"] and prov["machine"]["cpu"]
    blas = prov["machine"]["blas"]  # which BLAS kernels ran the products, and the variables that chose them
    assert blas["core"] and blas["env"]["OPENBLAS_NUM_THREADS"] == os.environ["OPENBLAS_NUM_THREADS"]
    assert prov["settings"]["batch_sizes"] == [4] and prov["settings"]["repeats"] == 1
    assert prov["data"]["n_goods"] == res["model"]["n_goods"] and "lognormal" in prov["data"]["synthetic"]
    out = capsys.readouterr().out
    assert "train samples/s" in out and "with a schema (genres: item, multi-hot, gender: user" in out
    assert "float32 GEMM rate measured now" in out and "paired: the same FLOP rate" in out
    assert f"BLAS kernels: OpenBLAS '{blas['core']}'" in out
    assert main(["bench", "--batch-sizes", "4", "--threads", "1", "--samples", "8", "--repeats", "1", "--no-schema",
                 "--no-ranking", "--peak-gflops", "50", "--json", str(p)]) == 0
    row = json.loads(p.read_text())["rows"][0]
    assert row["peak_gflops"] == 50 and "given by --peak-gflops" in capsys.readouterr().out
    assert "ceiling_pct_paired" not in row  # no GEMM of its own to pair with


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="OpenBLAS's core names are x86-64's")
def test_bench_names_the_blas_kernels_that_ran():
    """``blas_kernels`` reports the kernels SciPy's OpenBLAS loaded with: the ones OPENBLAS_CORETYPE asks for
    (Nehalem, SSE4.2, runs on any x86-64 CPU of the last 15 years), and the variable itself, in a fresh process."""
    code = "import json; from minidin.bench import blas_kernels; print(json.dumps(blas_kernels()))"
    env = dict(os.environ, OPENBLAS_CORETYPE="Nehalem")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    assert got["core"] == "Nehalem" and got["env"]["OPENBLAS_CORETYPE"] == "Nehalem"
    env.pop("OPENBLAS_CORETYPE")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    assert got["core"] not in ("", "unknown") and "OPENBLAS_CORETYPE" not in got["env"]


def test_torch_twins_equal_minidin_split_and_full_input():
    """Where torch is installed (the optional 'compare' extra; CI does not install it): both twins, loaded with
    minidin's weights, give its loss and gradients."""
    pytest.importorskip("torch", reason="the torch twins need the optional 'compare' extra (torch==2.13.0)")

    from minidin import bench_torch as bt
    from minidin.bench import make_batches

    m = minidin.DIN(n_goods=300, n_cates=20, seed=1, goods_bias=False)
    batch = make_batches(np.random.default_rng(2), 64, 1, 300, 20)[0]
    for split in (True, False):
        a = bt.agreement(m, batch, split=split)
        assert a["loss"] < 1e-5 and a["grads"] < 1e-4, (split, a)
    assert bt.gemm_gflops((64, 32, 16), repeats=1) > 0  # torch's own GEMM rate, printed beside the peak


def test_paired_rates_alternate_and_ratio_within_rounds(monkeypatch):
    """minidin bench times every library in alternating passes and takes each ratio within a round, so a
    machine that slows down between rounds moves both sides alike (a fake clock stands in for time)."""
    from minidin import bench

    clock, calls = [0.0], []
    slowdown = {0: 1.0, 1: 5.0, 2: 2.0}  # the machine's speed changes from round to round

    def fake(name, cost):
        def fn(batch):
            calls.append(name)
            clock[0] += cost * slowdown[max(0, (len(calls) - 3) // 4)] * batch  # 4 calls a round, after 2
        return fn

    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock[0])
    timed = {"a": (fake("a", 1.0), [1, 1], 2), "b": (fake("b", 3.0), [1, 1], 2)}
    rates, times = bench._paired_rates(timed, 3)
    assert calls[:2] == ["a", "b"]  # the warm-up, one batch each
    assert calls[2:] == ["a", "a", "b", "b", "b", "b", "a", "a", "a", "a", "b", "b"]  # the order flips each round
    assert bench._paired_ratio(times, "a", "b") == pytest.approx(3.0)  # whatever each round's speed
    assert rates["a"] == pytest.approx(2 / 4.0) and rates["b"] == pytest.approx(2 / 12.0)  # the median passes


def test_source_commit_names_this_checkout_or_says_unknown(tmp_path):
    """The commit recorded with benchmark results is this checkout's HEAD ('+dirty' with uncommitted changes),
    and 'unknown' where minidin is not a git checkout's top folder."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(minidin.__file__)))
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    if head.returncode == 0:
        assert source_commit().split("+")[0] == head.stdout.strip()
    else:
        assert source_commit() == "unknown"
    (tmp_path / "sub" / "minidin").mkdir(parents=True)
    assert source_commit(str(tmp_path / "sub")) == "unknown"  # no repository
    repo = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    if subprocess.run(["git", "init", "-q", str(tmp_path)]).returncode == 0 and \
            subprocess.run([*repo, "commit", "-q", "--allow-empty", "-m", "x"]).returncode == 0:
        assert source_commit(str(tmp_path / "sub")) == "unknown"  # a folder inside someone else's repository
        assert source_commit(str(tmp_path)) not in ("unknown", "")  # that repository's own top folder


def test_goals_table_counts_each_goal_over_runs():
    """bench/goals.py: a column per run, how many runs met each goal, the median; a run without a figure shows
    '–' and is not counted; runs before infer_ratio_best take their fastest twin's ratio."""
    from bench.goals import table

    def run(train32, pct, infer, latency, best=True):
        row = {"batch": 1024, "threads": 2, "train_ratio": 2.1, "ceiling_pct": pct}
        row.update({"infer_ratio_best": infer} if best else {"infer_ratio": infer + 0.5, "infer_ratio_full": infer})
        return {"rows": [{"batch": 32, "threads": 2, "train_ratio": train32}, row], "latency_us": latency,
                "threads_max": 2}

    a = run(2.6, 49.0, 2.1, 24.0)
    a["provenance"] = {"machine": {"blas": {"core": "SkylakeX", "env": {}}}}  # b and c predate the record
    text = table([("a", a), ("b", run(2.4, 51.0, 1.9, 30.0, best=False)),
                  ("c", {"rows": [], "latency_us": 20.0, "threads_max": 2})], threads=2)
    lines = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in text.splitlines()[2:]}
    assert lines["BLAS kernels (OpenBLAS)"][1:4] == ["SkylakeX", "–", "–"]
    assert lines["training ≥ 2.5× the split eager twin at batch 32"][1:] == ["2.60×", "2.40×", "–", "1 of 2",
                                                                           "2.50× |"]
    assert lines["≥ 50% of the measured peak at batch 1024"][-2] == "1 of 2"
    assert lines["inference ≥ 2× the fastest torch row at batch 1024"][1:3] == ["2.10×", "1.90×"]
    assert lines["one-sample latency ≤ 25 µs"][1:] == ["24.0 µs", "30.0 µs", "20.0 µs", "2 of 3", "24.0 µs |"]


def test_goals_judges_runs_on_different_blas_kernels_apart(tmp_path, capsys):
    """bench/goals.py: runs whose products ran on different BLAS kernels get a table each, in the order given."""
    from bench.goals import main as goals

    paths = []
    for i, core in enumerate(["Haswell", "SkylakeX", "Haswell"]):
        res = {"rows": [{"batch": 1024, "threads": 2, "train_ratio": 2.0 + i, "ceiling_pct": 40.0}],
               "latency_us": 20.0, "threads_max": 2, "provenance": {"machine": {"blas": {"core": core, "env": {}}}}}
        paths.append(tmp_path / f"run{i}.json")
        paths[-1].write_text(json.dumps(res))
    assert goals([str(p) for p in paths]) == 0
    out = capsys.readouterr().out
    assert "over 2 runs of minidin bench, OpenBLAS kernels Haswell" in out
    assert "over 1 run of minidin bench, OpenBLAS kernels SkylakeX" in out
    assert out.index("kernels Haswell") < out.index("kernels SkylakeX")
    haswell = out.split("kernels SkylakeX")[0]
    assert "| training ≥ 2× at batch 1024 | 2.00× | 4.00× | 2 of 2 | 3.00× |" in haswell


def test_paired_percent_of_peak_takes_each_rounds_gemm_rate():
    """ceiling_pct_paired divides each round's training FLOP rate by the GEMM rate of the same round: a round
    where the machine runs at half speed for both moves nothing, one that slows the training alone is outvoted."""
    from minidin import bench

    gemm_flop = 2.0 * float(np.prod(bench.PEAK_SHAPE))
    times = {"train": [1.0, 2.0, 1.0, 3.0, 1.0], "gemm": [0.5, 1.0, 0.5, 0.5, 0.5]}  # round 2 slow, round 4 odd
    assert bench._paired_percent(times, 1e9) == pytest.approx(100.0 * (1e9 / 1.0) / (gemm_flop / 0.5))
