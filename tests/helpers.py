"""Small helpers the tests share: CSR offsets, dense gradients, tiny models, thread counts."""
import numba
import numpy as np

import minidin


def offsets_from_lengths(lengths):
    """CSR offsets (len + 1,) int64 from per-sample history lengths."""
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def dense(g):
    """A gradient as a dense array: a SparseGrad's to_dense(), an array as it is."""
    return g.to_dense() if isinstance(g, minidin.SparseGrad) else np.asarray(g)


def tiny_model(model="din", n_goods=8, n_cates=4, goods_dim=3, cate_dim=2, attention_units=(4,), hidden_units=(5,),
               dtype=np.float64, **kw):
    """A small float64 DIN (or BaseModel) for tests that do not care about its size."""
    if model == "din":
        return minidin.DIN(n_goods=n_goods, n_cates=n_cates, goods_dim=goods_dim, cate_dim=cate_dim,
                           attention_units=attention_units, hidden_units=hidden_units, dtype=dtype, **kw)
    return minidin.BaseModel(n_goods=n_goods, n_cates=n_cates, goods_dim=goods_dim, cate_dim=cate_dim,
                             hidden_units=hidden_units, dtype=dtype, **kw)


def at_one_and_all_threads(fn):
    """[fn() with one Numba thread, fn() with all of them]: results that must not depend on the thread count."""
    n_max = numba.config.NUMBA_NUM_THREADS
    out = []
    for n in (1, n_max):
        numba.set_num_threads(n)
        try:
            out.append(fn())
        finally:
            numba.set_num_threads(n_max)
    return out
