"""The cold-start compile helper (minidin/compile_helper.py): same results, loaded not compiled, never
replaces a file, and falls back to compiling here whenever it cannot help."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import minidin
from minidin import compile_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# one training step of a small BaseModel (few kernels: cheap to compile cold) in a fresh process; prints the
# loss, a digest of every gradient, and whether the backward kernels were compiled or loaded from the cache
STEP = """
import hashlib, json, sys
import numpy as np, minidin
from minidin.bench import make_batches
from minidin.layers import dense_backward, pooling_backward, unique_rows
model = minidin.BaseModel(n_goods=50, n_cates=5, goods_dim=4, cate_dim=4, hidden_units=(6,), activation="prelu",
                          dtype=np.float64)
batch = make_batches(np.random.default_rng(1), 8, 1, 50, 5)[0]
loss, grads = model.loss_and_grad(batch)
minidin.SparseAdagrad(model.params, lr=0.1).step(grads)
h = hashlib.sha256()
for name in sorted(grads):
    g = grads[name]
    h.update(np.ascontiguousarray(g.values if hasattr(g, "values") else g).tobytes())
stats = [k.stats for k in (dense_backward, pooling_backward)]
print(json.dumps({"loss": loss.hex(), "grads": h.hexdigest(), "params": hashlib.sha256(model.params.dense.tobytes())
                  .hexdigest(), "hits": sum(sum(s.cache_hits.values()) for s in stats),
                  "misses": sum(sum(s.cache_misses.values()) for s in stats),
                  "unique_misses": sum(unique_rows.stats.cache_misses.values())}))
"""


def _step(cache_dir, helper):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, MINIDIN_COMPILE_HELPER="1" if helper else "0",
               PYTHONPATH=ROOT)
    p = subprocess.run([sys.executable, "-c", STEP], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(compile_helper.usable_cpus() < 2, reason="the helper only runs with two or more CPUs")
def test_cold_step_with_the_helper_loads_its_kernels_and_gives_the_same_result():
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        helped, alone = _step(a, helper=True), _step(b, helper=False)
        again = _step(a, helper=True)  # warm: no helper, everything from the cache
    assert helped["misses"] == 0 and helped["hits"] == 2  # the backward kernels came from the helper's cache
    assert alone["misses"] == 2 and alone["hits"] == 0
    assert again["misses"] == 0
    # unique_rows is left to the process, which compiles it while the helper works; then it is cached too
    assert helped["unique_misses"] == 1 and again["unique_misses"] == 0
    for key in ("loss", "grads", "params"):  # bitwise: the same machine code either way
        assert helped[key] == alone[key] == again[key], key


def test_adopt_never_replaces_a_file(tmp_path):
    """An index already in this process's cache keeps its contents, and no data file is written beside it."""
    from minidin.layers import dense_backward

    index = dense_backward._cache._cache_file._index_path
    src = tmp_path / "src"
    src.mkdir()
    (src / os.path.basename(index)).write_bytes(b"helper index")
    data = src / (os.path.basename(index)[:-len(".nbi")] + ".0.nbc")
    data.write_bytes(b"helper data")
    entry = {"module": "minidin.layers.dense", "name": "dense_backward", "index": str(src / os.path.basename(index)),
             "data": [str(data)]}
    existed = os.path.exists(index)
    if not existed:  # make this process's cache hold an index for it, as after any compile of it
        z = np.zeros((2, 2))
        dense_backward(z.copy(), z.copy(), np.zeros(2), z, z, z)  # dx, dW, db, dout, x, W
    assert os.path.exists(index)
    before = open(index, "rb").read()
    assert not compile_helper._adopt_kernel(entry)
    assert open(index, "rb").read() == before
    dst = tmp_path / "taken"
    dst.write_bytes(b"someone else's")
    with pytest.raises(FileExistsError):
        compile_helper._copy_new(str(data), str(dst))
    assert dst.read_bytes() == b"someone else's"
    assert sorted(os.listdir(tmp_path)) == ["src", "taken"]  # no temporary left behind


def test_adopt_falls_back_when_the_helper_fails(tmp_path):
    folder = tmp_path / "helper"
    folder.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    compile_helper._pending["float16"] = (proc, str(folder))
    assert compile_helper.adopt(np.float16) == 0
    assert not folder.exists() and "float16" not in compile_helper._pending
    assert compile_helper.adopt(np.float16) == 0  # nothing pending: a no-op


def test_helper_is_off_when_asked(monkeypatch):
    monkeypatch.setenv(compile_helper.ENV, "0")
    monkeypatch.setattr(compile_helper, "_tried", set())
    monkeypatch.setattr(compile_helper, "_pending", {})
    compile_helper.start(minidin.DIN(n_goods=5, n_cates=2, dtype=np.float32))
    assert compile_helper._pending == {}


def test_no_helper_when_it_cannot_start(monkeypatch):
    """A cold cache but no temporary folder (a sandbox, a full disk): no helper, no error."""
    def refuse(*a, **k):
        raise OSError("no space left on device")

    monkeypatch.setenv(compile_helper.ENV, "1")
    monkeypatch.setattr(compile_helper, "_tried", set())
    monkeypatch.setattr(compile_helper, "_pending", {})
    monkeypatch.setattr(compile_helper, "usable_cpus", lambda: 2)
    monkeypatch.setattr(compile_helper, "_cached_for", lambda kernel, dtype: False)
    monkeypatch.setattr(compile_helper.tempfile, "mkdtemp", refuse)
    compile_helper.start(minidin.DIN(n_goods=5, n_cates=2, dtype=np.float32))
    assert compile_helper._pending == {}
