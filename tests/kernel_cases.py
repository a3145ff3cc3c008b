"""One ``Case`` per layer: inputs, the kernel forward/backward, and the NumPy reference.

A case is built for a dtype and a random generator. ``forward(serial)`` runs the
jitted kernel (or, with serial=True, its pure-Python ``py_func``, where ``prange``
is an ordinary ``range``), ``backward(dout, serial)`` returns freshly accumulated
gradients for every input in ``wrt``.
"""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import minidin.layers as L
from tests.helpers import offsets_from_lengths
from minidin import reference as ref


def _k(kernel, serial):
    return kernel.py_func if serial else kernel


@dataclass
class Case:
    name: str
    inputs: dict
    run_forward: Callable  # (serial) -> output array
    run_backward: Callable  # (dout, grads: dict of zeroed buffers, serial) -> None (accumulates)
    reference: Callable  # () -> output array (float64)
    wrt: list
    kernels: tuple
    grad_like: dict = field(default_factory=dict)  # name -> shape of its gradient buffer, if not the input's

    def forward(self, serial=False):
        return self.run_forward(serial)

    def zero_grads(self):
        return {n: np.zeros(self.grad_like.get(n, self.inputs[n].shape), dtype=self.dtype) for n in self.wrt}

    def backward(self, dout, grads=None, serial=False):
        grads = self.zero_grads() if grads is None else grads
        self.run_backward(dout, grads, serial)
        return grads

    @property
    def dtype(self):
        return next(iter(self.inputs.values())).dtype if self.float_inputs else np.float64

    @property
    def float_inputs(self):
        return [k for k, v in self.inputs.items() if v.dtype.kind == "f"]


def _offsets(rng, B, max_t, lengths=None):
    lengths = rng.integers(0, max_t + 1, B) if lengths is None else np.asarray(lengths)
    return offsets_from_lengths(lengths)


def embedding_case(rng, dt, B=4, Vg=5, Vc=3, Dg=3, Dc=2, max_t=4):
    off = _offsets(rng, B, max_t)
    M = int(off[-1]) + B
    gid = rng.integers(0, Vg, M).astype(np.int64)
    cid = rng.integers(0, Vc, M).astype(np.int64)
    inp = {"goods_table": rng.standard_normal((Vg, Dg)).astype(dt),
           "cate_table": rng.standard_normal((Vc, Dc)).astype(dt)}

    def fwd(serial):
        out = np.empty((M, Dg + Dc), dtype=dt)
        _k(L.embedding_forward, serial)(out, gid, cid, inp["goods_table"], inp["cate_table"])
        return out

    def bwd(dout, g, serial):
        for name, ids, col0 in (("goods_table", gid, 0), ("cate_table", cid, Dg)):
            rows, inv = _k(L.unique_rows, serial)(ids)
            assert np.all(np.diff(rows) > 0) and np.array_equal(rows[inv], ids)
            values = np.zeros((rows.shape[0], inp[name].shape[1]), dtype=dt)
            _k(L.embedding_backward, serial)(values, dout, inv, col0)
            g[name][rows] += values

    return Case("embedding", inp, fwd, bwd, lambda: ref.embedding(gid, cid, inp["goods_table"].astype(float),
                                                                  inp["cate_table"].astype(float)),
                ["goods_table", "cate_table"], (L.embedding_forward, L.embedding_backward))


def embedding_bag_case(rng, dt, M=5, V=4, W=3, max_set=4, lengths=None, mean=True, col0=2):
    """Sets with repeated ids and an empty set (row 0 when lengths is not given), written at column col0 of a
    wider output whose other columns the kernel must leave alone."""
    if lengths is None:
        lengths = np.r_[0, rng.integers(0, max_set + 1, M - 1)]
    off = offsets_from_lengths(lengths)
    M = len(lengths)
    ids = rng.integers(0, V, int(off[-1])).astype(np.int64)
    if ids.shape[0] >= 2:
        ids[1] = ids[0]  # a repeated id
    inp = {"table": rng.standard_normal((V, W)).astype(dt)}
    width = col0 + W + 1

    def fwd(serial):
        out = np.full((M, width), 7.0, dtype=dt)
        _k(L.embedding_bag_forward, serial)(out, ids, off, inp["table"], col0, mean)
        assert np.all(out[:, :col0] == 7.0) and np.all(out[:, col0 + W:] == 7.0)
        return out[:, col0:col0 + W].copy()

    def bwd(dout, g, serial):
        rows, inv = _k(L.unique_rows, serial)(ids)
        values = np.zeros((rows.shape[0], W), dtype=dt)
        wide = np.zeros((M, width), dtype=dt)
        wide[:, col0:col0 + W] = dout
        _k(L.embedding_bag_backward, serial)(values, wide, inv, off, col0, mean)
        g["table"][rows] += values

    return Case("embedding_bag", inp, fwd, bwd, lambda: ref.embedding_bag(ids, off, inp["table"].astype(float), mean),
                ["table"], (L.embedding_bag_forward, L.embedding_bag_backward))


def attention_input_case(rng, dt, B=4, D=3, max_t=4, lengths=None):
    off = _offsets(rng, B, max_t, lengths)
    N = int(off[-1])
    inp = {"cand_emb": rng.standard_normal((B, D)).astype(dt), "hist_emb": rng.standard_normal((N, D)).astype(dt)}

    def fwd(serial):
        out = np.empty((N, 4 * D), dtype=dt)
        _k(L.attention_input_forward, serial)(out, inp["cand_emb"], inp["hist_emb"], off)
        return out

    def bwd(dout, g, serial):
        _k(L.attention_input_backward, serial)(g["cand_emb"], g["hist_emb"], dout, inp["cand_emb"], inp["hist_emb"],
                                               off)

    return Case("attention_input", inp, fwd, bwd,
                lambda: ref.attention_input(inp["cand_emb"].astype(float), inp["hist_emb"].astype(float), off),
                ["cand_emb", "hist_emb"], (L.attention_input_forward, L.attention_input_backward))


def attention_split_case(rng, dt, B=4, D=3, H=5, max_t=4, lengths=None):
    off = _offsets(rng, B, max_t, lengths)
    N = int(off[-1])
    inp = {"cand_emb": rng.standard_normal((B, D)).astype(dt), "hist_emb": rng.standard_normal((N, D)).astype(dt),
           "W": rng.standard_normal((4 * D, H)).astype(dt), "b": rng.standard_normal(H).astype(dt)}

    def fwd(serial):
        out = np.empty((N, H), dtype=dt)
        kx = np.empty((N, 2 * D), dtype=dt)
        _k(L.attention_split_forward, serial)(out, kx, inp["cand_emb"], inp["hist_emb"], off, inp["W"], inp["b"])
        return out

    def bwd(dout, g, serial):
        kx = np.empty((N, 2 * D), dtype=dt)
        _k(L.attention_split_forward, serial)(np.empty((N, H), dtype=dt), kx, inp["cand_emb"], inp["hist_emb"], off,
                                              inp["W"], inp["b"])
        _k(L.attention_split_backward, serial)(g["cand_emb"], g["hist_emb"], g["W"], g["b"], dout, kx,
                                               inp["cand_emb"], inp["hist_emb"], off, inp["W"])

    def reference():  # the clear composition it replaces: attention_input, then dense
        f = {k: v.astype(float) for k, v in inp.items()}
        return ref.dense(ref.attention_input(f["cand_emb"], f["hist_emb"], off), f["W"], f["b"])

    return Case("attention_split", inp, fwd, bwd, reference, ["cand_emb", "hist_emb", "W", "b"],
                (L.attention_split_forward, L.attention_split_backward))


def attention_softmax_case(rng, dt, B=4, max_t=5, lengths=None, scale=0.7):
    off = _offsets(rng, B, max_t, lengths)
    N = int(off[-1])
    inp = {"scores": (2 * rng.standard_normal(N)).astype(dt)}

    def fwd(serial):
        out = np.empty(N, dtype=dt)
        _k(L.attention_softmax_forward, serial)(out, inp["scores"], off, scale)
        return out

    def bwd(dout, g, serial):
        out = fwd(serial)
        _k(L.attention_softmax_backward, serial)(g["scores"], dout, out, off, scale)

    return Case("attention_softmax", inp, fwd, bwd,
                lambda: ref.attention_softmax(inp["scores"].astype(float), off, scale), ["scores"],
                (L.attention_softmax_forward, L.attention_softmax_backward))


def pooling_case(rng, dt, B=4, D=3, max_t=4, lengths=None):
    off = _offsets(rng, B, max_t, lengths)
    N = int(off[-1])
    inp = {"weights": rng.standard_normal(N).astype(dt), "hist_emb": rng.standard_normal((N, D)).astype(dt)}

    def fwd(serial):
        out = np.empty((B, D), dtype=dt)
        _k(L.pooling_forward, serial)(out, inp["weights"], inp["hist_emb"], off)
        return out

    def bwd(dout, g, serial):
        _k(L.pooling_backward, serial)(g["weights"], g["hist_emb"], dout, inp["weights"], inp["hist_emb"], off)

    return Case("pooling", inp, fwd, bwd,
                lambda: ref.pooling(inp["weights"].astype(float), inp["hist_emb"].astype(float), off, B),
                ["weights", "hist_emb"], (L.pooling_forward, L.pooling_backward))


def interaction_case(rng, dt, B=4, D=3):
    inp = {"interest": rng.standard_normal((B, D)).astype(dt), "cand_emb": rng.standard_normal((B, D)).astype(dt)}

    def fwd(serial):
        out = np.empty((B, 3 * D), dtype=dt)
        _k(L.interaction_forward, serial)(out, inp["interest"], inp["cand_emb"])
        return out

    def bwd(dout, g, serial):
        _k(L.interaction_backward, serial)(g["interest"], g["cand_emb"], dout, inp["interest"], inp["cand_emb"])

    return Case("interaction", inp, fwd, bwd,
                lambda: ref.interaction(inp["interest"].astype(float), inp["cand_emb"].astype(float)),
                ["interest", "cand_emb"], (L.interaction_forward, L.interaction_backward))


def dense_case(rng, dt, M=5, I=4, O=3):
    inp = {"x": rng.standard_normal((M, I)).astype(dt), "W": rng.standard_normal((I, O)).astype(dt),
           "b": rng.standard_normal(O).astype(dt)}

    def fwd(serial):
        out = np.empty((M, O), dtype=dt)
        _k(L.dense_forward, serial)(out, inp["x"], inp["W"], inp["b"])
        return out

    def bwd(dout, g, serial):
        _k(L.dense_backward, serial)(g["x"], g["W"], g["b"], dout, inp["x"], inp["W"])

    return Case("dense", inp, fwd, bwd, lambda: ref.dense(*(inp[k].astype(float) for k in ("x", "W", "b"))),
                ["x", "W", "b"], (L.dense_forward, L.dense_backward))


def prelu_case(rng, dt, M=5, H=3):
    x = rng.standard_normal((M, H))
    x = np.where(np.abs(x) < 1e-2, 0.5, x)  # keep away from the kink at 0
    inp = {"x": x.astype(dt), "alpha": rng.uniform(-0.5, 0.5, H).astype(dt)}

    def fwd(serial):
        out = np.empty((M, H), dtype=dt)
        _k(L.prelu_forward, serial)(out, inp["x"], inp["alpha"])
        return out

    def bwd(dout, g, serial):
        _k(L.prelu_backward, serial)(g["x"], g["alpha"], dout, inp["x"], inp["alpha"])

    return Case("prelu", inp, fwd, bwd, lambda: ref.prelu(inp["x"].astype(float), inp["alpha"].astype(float)),
                ["x", "alpha"], (L.prelu_forward, L.prelu_backward))


def sigmoid_case(rng, dt, M=5, H=3):
    inp = {"x": (3 * rng.standard_normal((M, H))).astype(dt)}

    def fwd(serial):
        out = np.empty((M, H), dtype=dt)
        _k(L.sigmoid_forward, serial)(out, inp["x"])
        return out

    def bwd(dout, g, serial):
        _k(L.sigmoid_backward, serial)(g["x"], dout, fwd(serial))

    return Case("sigmoid", inp, fwd, bwd, lambda: ref.sigmoid(inp["x"].astype(float)), ["x"],
                (L.sigmoid_forward, L.sigmoid_backward))


def dice_case(rng, dt, M=5, H=3, training=True, near_identical=False):
    x = rng.standard_normal((M, H))
    if near_identical:  # rows within ~1e-4 of each other: Dice's curvature scale sqrt(eps)
        x = x[:1] + 1e-4 * rng.standard_normal((M, H))
    inp = {"x": x.astype(dt), "alpha": rng.uniform(-0.5, 0.5, H).astype(dt)}
    rm, rv = rng.standard_normal(H).astype(dt), rng.uniform(0.5, 2.0, H).astype(dt)

    def fwd(serial, cache=None):
        out, xhat, p, inv_std = (np.empty((M, H), dt), np.empty((M, H), dt), np.empty((M, H), dt),
                                 np.empty(H, dt))
        _k(L.dice_forward, serial)(out, xhat, p, inv_std, inp["x"], inp["alpha"], rm.copy(), rv.copy(), training,
                                   0.0, 1e-8)
        if cache is not None:
            cache.update(xhat=xhat, p=p, inv_std=inv_std)
        return out

    def bwd(dout, g, serial):
        c = {}
        fwd(serial, c)
        _k(L.dice_backward, serial)(g["x"], g["alpha"], dout, inp["x"], c["xhat"], c["p"], c["inv_std"],
                                    inp["alpha"], training)

    return Case("dice_train" if training else "dice_infer", inp, fwd, bwd,
                lambda: ref.dice(inp["x"].astype(float), inp["alpha"].astype(float), rm.astype(float),
                                 rv.astype(float), training)[0], ["x", "alpha"], (L.dice_forward, L.dice_backward))


def bce_case(rng, dt, B=6):
    inp = {"logits": (3 * rng.standard_normal(B)).astype(dt)}
    labels = rng.integers(0, 2, B).astype(dt)

    def fwd(serial):
        return np.array([_k(L.bce_forward, serial)(inp["logits"], labels)], dtype=dt)

    def bwd(dout, g, serial):
        _k(L.bce_backward, serial)(g["logits"], inp["logits"], labels, float(dout[0]))

    return Case("bce", inp, fwd, bwd, lambda: np.array([ref.bce(inp["logits"].astype(float), labels)]), ["logits"],
                (L.bce_forward, L.bce_backward))


def goods_bias_case(rng, dt, B=6, Vg=4):
    gid = rng.integers(0, Vg, B).astype(np.int64)  # B > Vg: repeated ids
    inp = {"bias": rng.standard_normal((Vg, 1)).astype(dt), "logits": rng.standard_normal(B).astype(dt)}

    def fwd(serial):
        out = inp["logits"].copy()
        _k(L.goods_bias_forward, serial)(out, gid, inp["bias"])
        return out

    def bwd(dout, g, serial):
        rows, inv = _k(L.unique_rows, serial)(gid)
        values = np.zeros((rows.shape[0], 1), dtype=dt)
        _k(L.goods_bias_backward, serial)(values, dout, inv)
        g["bias"][rows] += values
        g["logits"] += dout  # the forward adds in place: the incoming logits pass through

    return Case("goods_bias", inp, fwd, bwd,
                lambda: inp["logits"].astype(float) + inp["bias"].astype(float)[gid, 0], ["bias", "logits"],
                (L.goods_bias_forward, L.goods_bias_backward))


ALL = {
    "embedding": embedding_case,
    "goods_bias": goods_bias_case,
    "embedding_bag_mean": embedding_bag_case,
    "embedding_bag_sum": lambda rng, dt, **kw: embedding_bag_case(rng, dt, mean=False, **kw),
    "attention_input": attention_input_case,
    "attention_softmax": attention_softmax_case,
    "attention_split": attention_split_case,  # small: loops
    "attention_split_blas": lambda rng, dt, **kw: attention_split_case(rng, dt, **dict(dict(B=12, D=16, H=30,
                                                                                            max_t=14), **kw)),
    "pooling": pooling_case,
    "interaction": interaction_case,
    "dense": dense_case,  # small: the loop path
    "dense_blas": lambda rng, dt, **kw: dense_case(rng, dt, **dict(dict(M=70, I=40, O=30), **kw)),  # BLAS path
    "prelu": prelu_case,
    "sigmoid": sigmoid_case,
    "dice_train": lambda rng, dt, **kw: dice_case(rng, dt, training=True, **kw),
    "dice_infer": lambda rng, dt, **kw: dice_case(rng, dt, training=False, **kw),
    "bce": bce_case,
}
