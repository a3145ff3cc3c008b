"""A cold start on two cores: the backward and Adagrad kernels compile in a second process.

On an empty Numba cache the first training step compiles every kernel it calls,
one after the other, in one process (docs/benchmarks.md, "Compile and start-up
time"). The forward kernels are needed first; the backward and optimizer kernels
only once the forward is done. So the first ``loss_and_grad`` of a dtype in a
process, when the cache holds no backward kernel for that dtype, starts a helper:

    python -m minidin.compile_helper DIR DTYPE CONFIG_JSON

which builds a small model of the same config, runs its forward with every
forward kernel replaced by a stand-in that only zeroes its arrays (so it
compiles none of them), then the backward and one SparseAdagrad step, into its
own Numba cache under DIR, and writes DIR/manifest.json listing the kernels it
compiled and their cache files. Meanwhile this process compiles the forward
kernels. Before its first backward (``adopt``) it waits for the helper and
copies the helper's cache entries into its own cache, so Numba loads those
kernels instead of compiling them.

Nothing depends on it. It is skipped with one CPU, without on-disk caching, when
Numba's JIT is off, or with ``MINIDIN_COMPILE_HELPER=0``; when the helper fails
or is not done in ``WAIT_S``, this process compiles what it needs itself, as it
would without a helper. Files are only ever added to Numba's cache, never
replaced: a kernel's entries are copied only where this process's cache has no
index for that kernel, and each file is created exclusively. The helper's
folder is removed once adopted, or when this process exits.
"""
import atexit
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from numba.core import config as numba_config
from numba.core.dispatcher import Dispatcher

ENV = "MINIDIN_COMPILE_HELPER"  # "0" turns the helper off
WAIT_S = 120.0  # the longest adopt() waits for the helper before compiling on its own
_pending = {}  # dtype name -> (Popen, folder) of a running helper
_tried = set()  # dtype names a helper was considered for in this process (once each)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask; all of them where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _cached_for(kernel, dtype) -> bool:
    """True when this process's Numba cache (or memory) already holds ``kernel`` for ``dtype``."""
    name = np.dtype(dtype).name
    if any(name in str(sig) for sig in kernel.signatures):
        return True
    try:
        index = kernel._cache._cache_file._load_index()
    except Exception:  # an unreadable index: Numba would recompile, so the cache is cold for it
        return False
    return any(name in str(key[0]) for key in index)


def start(model) -> None:
    """Start the helper for ``model``'s dtype when the cache is cold (at most once per dtype and process)."""
    from .layers import dense_backward

    name = np.dtype(model.dtype).name
    if name in _tried:
        return
    _tried.add(name)
    if (os.environ.get(ENV, "1") == "0" or numba_config.DISABLE_JIT or usable_cpus() < 2
            or not hasattr(getattr(dense_backward, "_cache", None), "_cache_file")  # no on-disk cache
            or _cached_for(dense_backward, model.dtype)):
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the folder minidin is imported from
    folder = None
    try:  # no temporary folder or no new process (a sandbox, no disk space): compile here, as without a helper
        folder = tempfile.mkdtemp(prefix="minidin-compile-")
        env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(folder, "cache"), **{ENV: "0"})
        env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [os.environ.get("PYTHONPATH")] if p])
        with open(os.path.join(folder, "log.txt"), "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "minidin.compile_helper", folder, name,
                                     json.dumps(model.config())], env=env, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT)
    except OSError:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        return
    _pending[name] = (proc, folder)


def adopt(dtype) -> int:
    """Wait for the helper of ``dtype``, if one runs, and copy its cache entries into this process's cache.
    Returns the number of kernels adopted (0 without a helper, or when it failed)."""
    entry = _pending.pop(np.dtype(dtype).name, None)
    if entry is None:
        return 0
    proc, folder = entry
    _compile_here()  # while the helper works: it is the longer side of a cold start
    try:
        try:
            proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return 0
        if proc.returncode != 0:
            return 0
        with open(os.path.join(folder, "manifest.json")) as f:
            manifest = json.load(f)
        return sum(_adopt_kernel(k) for k in manifest["kernels"])
    except (OSError, ValueError, KeyError):
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _compile_here() -> None:
    """Compile the kernel the helper leaves to this process: ``unique_rows``, which the backward calls with
    int64 ids whatever the model. The process reaches its backward while the helper still compiles the
    backward's larger kernels (docs/benchmarks.md, "Compile and start-up time"), so this takes it off the
    helper's side of the wait."""
    from .layers import unique_rows

    unique_rows(np.zeros(2, dtype=np.int64))


def _unique_rows_stand_in(ids):
    """``unique_rows`` in the helper, which leaves that kernel to the process (``_compile_here``)."""
    rows, inverse = np.unique(ids, return_inverse=True)
    return rows.astype(np.int64), inverse.astype(np.int64).reshape(-1)


def _adopt_kernel(k) -> bool:
    """Copy one kernel's cache files (its index and data files) where this process's cache has no index."""
    try:
        kernel = getattr(importlib.import_module(k["module"]), k["name"])
        cache_file = kernel._cache._cache_file
        index = cache_file._index_path
    except Exception:  # renamed, or a Numba without these attributes: compile it here
        return False
    if os.path.exists(index) or os.path.basename(index) != os.path.basename(k["index"]):
        return False
    target = os.path.dirname(index)
    os.makedirs(target, exist_ok=True)
    names = [os.path.basename(p) for p in k["data"]]
    if any(os.path.exists(os.path.join(target, n)) for n in names):
        return False
    try:
        for src, n in zip(k["data"], names):
            _copy_new(src, os.path.join(target, n))
        _copy_new(k["index"], index)  # the index last: until it exists, Numba sees no entry
    except OSError:
        return False
    return True


def _copy_new(src, dst) -> None:
    """Copy src to dst, which must not exist: written under a temporary name, then hard-linked into place
    (which fails rather than replace a file created meanwhile)."""
    tmp = f"{dst}.tmp.{os.getpid()}"
    shutil.copyfile(src, tmp)
    try:
        os.link(tmp, dst)
    finally:
        os.unlink(tmp)


@atexit.register
def _cleanup() -> None:
    for proc, folder in _pending.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)
    _pending.clear()


# ---------------------------------------------------------------------------------------- the helper itself
def _zero_arrays(*args):
    """A forward kernel's stand-in: zeroes every float array it is given (its outputs, and in this throwaway
    model its inputs too), so the backward and the optimizer see finite values; returns 0.0 (the loss)."""
    for a in args:
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            a.fill(0)
    return 0.0


def _compile(folder, dtype, config_json) -> None:
    from . import model as model_module
    from .bench import make_batches
    from .checkpoint import model_from_config
    from .optim import SparseAdagrad

    # the kernels' signatures depend on the config and dtype, not on the sizes: a small model and batch
    model = model_from_config({**json.loads(config_json), "dtype": dtype, "n_goods": 7, "n_cates": 3})
    batch = make_batches(np.random.default_rng(0), 3, 1, model.n_goods, model.n_cates, fields=model.cfg.fields)[0]
    for name, obj in list(vars(model_module).items()):  # no forward kernel is compiled here
        if isinstance(obj, Dispatcher) and name.endswith("_forward"):
            setattr(model_module, name, _zero_arrays)
    model_module.unique_rows = _unique_rows_stand_in  # nor unique_rows: the process compiles it meanwhile
    model._check_batch(batch, need_labels=True)
    cache = model._forward(batch, training=True, update_stats=True)
    for a in model._workspace.values():
        a.fill(0)
    SparseAdagrad(model.params, lr=0.01).step(model.backward(cache))
    kernels, seen = [], set()
    for mod_name, mod in list(sys.modules.items()):
        if not mod_name.startswith("minidin"):
            continue
        for obj in list(vars(mod).values()):
            if not isinstance(obj, Dispatcher) or id(obj) in seen or not obj.signatures:
                continue
            seen.add(id(obj))
            cache_file = obj._cache._cache_file
            if not os.path.exists(cache_file._index_path):
                continue
            stem = cache_file._index_name[:-len(".nbi")]
            data = sorted(os.path.join(cache_file._cache_path, f) for f in os.listdir(cache_file._cache_path)
                          if f.startswith(stem + ".") and f.endswith(".nbc") and f[len(stem) + 1:-4].isdigit())
            kernels.append({"module": obj.py_func.__module__, "name": obj.py_func.__name__,
                            "index": cache_file._index_path, "data": data})
    tmp = os.path.join(folder, "manifest.json.tmp")
    with open(tmp, "w") as f:
        json.dump({"kernels": kernels}, f)
    os.replace(tmp, os.path.join(folder, "manifest.json"))


if __name__ == "__main__":
    _compile(*sys.argv[1:4])
