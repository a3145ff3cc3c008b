"""DIN and the paper's BaseModel, composed only from the kernels in ``minidin.layers``.

Data flow for one batch (B samples, N behaviours, D = goods_dim + cate_dim):

    hist_emb (N, D), cand_emb (B, D)      embedding_forward          (§4.2)
    att_in   (N, 4D) = [q, k, q−k, q⊙k]   attention_input_forward    (§4.3; attention_split=False)
             DIN's default never builds it: attention_split_forward computes the first attention
             layer as q·(Wq+Wd) once per sample + [k, q⊙k]·[Wk−Wd; Wp], half the multiply-adds
    scores   (N,)  = MLP_att(att_in)      dense + activation, ..., dense → 1
    weights  (N,)  = scores               (or softmax per history, option)
    interest (B, D) = Σ_j w_j e_j         pooling_forward            Eq. (3)
    mlp_in   (B, 3D) = [u, i, u⊙i]        interaction_forward
    logits   (B,)  = MLP(mlp_in)          dense + activation, ..., dense → 1
    loss           = mean BCE             bce_forward                Eq. (2)

BaseModel replaces the attention unit with fixed weights: 1 (sum pooling, the
paper's Fig. 2) or 1/T (mean pooling, the official code's base model).

Parameter names (one scheme, built in ``_param_shapes`` only):

    goods_emb (n_goods, goods_dim), cate_emb (n_cates, cate_dim)
    goods_bias (n_goods, 1)                                        per-goods logit bias (goods_bias=True only)
    att.{i}.W (in, out), att.{i}.b (out,), att.{i}.alpha (out,)   attention hidden layer i (DIN)
    att.out.W (A_last, 1), att.out.b (1,)                          attention score layer (DIN)
    mlp.{i}.W, mlp.{i}.b, mlp.{i}.alpha                            main MLP hidden layer i
    mlp.out.W (H_last, 1), mlp.out.b (1,)                          logit layer

``alpha`` exists for PReLU and Dice layers only. Dice running averages live in
``model.state`` as ``{att,mlp}.{i}.running_mean`` / ``.running_var``: they are
not parameters. Dense parameters are views into one flat buffer (as in llm.c),
so the optimizer updates them in one loop.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .batch import Batch
from .layers import (
    attention_input_backward,
    attention_input_forward,
    attention_softmax_backward,
    attention_softmax_forward,
    attention_split_backward,
    attention_split_forward,
    bce_backward,
    bce_forward,
    dense_backward,
    dense_forward,
    dice_backward,
    dice_forward,
    embedding_backward,
    embedding_forward,
    goods_bias_backward,
    goods_bias_forward,
    interaction_backward,
    interaction_forward,
    pooling_backward,
    pooling_forward,
    prelu_backward,
    prelu_forward,
    sigmoid_backward,
    sigmoid_forward,
    unique_rows,
)
from .layers.fused import (ACT_DICE, ACT_PRELU, ACT_SIGMOID, POOL_ATTENTION, POOL_MEAN, POOL_SUM,
                           din_infer_forward)
from .sparse import SPARSE_TABLES, SparseGrad

ACTIVATIONS = ("dice", "prelu", "sigmoid")
POOLINGS = ("sum", "mean")


@dataclass
class _LayerCache:
    """What one hidden layer's forward keeps for its backward."""

    x: np.ndarray  # (M, in)  layer input
    z: np.ndarray  # (M, out) pre-activation
    a: np.ndarray  # (M, out) activation output (z itself for the output layer)
    xhat: np.ndarray | None = None  # Dice only
    p: np.ndarray | None = None  # Dice only
    inv_std: np.ndarray | None = None  # Dice only
    training: bool = True


@dataclass
class _Cache:
    """Everything ``_forward`` computed that ``_backward`` needs (no state on the model)."""

    batch: Batch
    labels: np.ndarray | None
    hist_emb: np.ndarray
    cand_emb: np.ndarray
    weights: np.ndarray
    interest: np.ndarray
    mlp_in: np.ndarray
    logits: np.ndarray
    att_in: np.ndarray | None = None  # (N, 4D), attention_split=False only
    att_kx: np.ndarray | None = None  # (N, 2D) [k, q⊙k], attention_split=True (default)
    scores: np.ndarray | None = None
    att_layers: list = field(default_factory=list)
    mlp_layers: list = field(default_factory=list)


def _check_activation(name, value):
    if value not in ACTIVATIONS:
        raise ValueError(f"{name}: must be one of {ACTIVATIONS}, got {value!r}")


def _check_units(name, units):
    units = tuple(int(u) for u in units)
    if any(u < 1 for u in units):
        raise ValueError(f"{name}: every layer needs at least 1 unit, got {units}")
    return units


class _DeepInterestModel:
    """Shared machinery of DIN and BaseModel; use one of those."""

    uses_attention = False

    def __init__(self, n_goods, n_cates, goods_dim=64, cate_dim=64, hidden_units=(200, 80),
                 activation="dice", dtype=np.float32, seed=0, dice_momentum=0.1, dice_eps=1e-8, emb_std=0.1,
                 goods_bias=False):
        for name, v in (("n_goods", n_goods), ("n_cates", n_cates), ("goods_dim", goods_dim), ("cate_dim", cate_dim)):
            if int(v) != v or v < 1:
                raise ValueError(f"{name}: must be a positive integer, got {v!r}")
        _check_activation("activation", activation)
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype: must be float32 or float64, got {dtype}")
        if not 0.0 <= dice_momentum <= 1.0:
            raise ValueError(f"dice_momentum: must be in [0, 1], got {dice_momentum}")
        self.n_goods, self.n_cates = int(n_goods), int(n_cates)
        self.goods_dim, self.cate_dim = int(goods_dim), int(cate_dim)
        self.hidden_units = _check_units("hidden_units", hidden_units)
        self.activation = activation
        self.dtype = dtype
        self.seed = seed
        self.dice_momentum = float(dice_momentum)
        self.dice_eps = float(dice_eps)
        if not (emb_std >= 0 and math.isfinite(emb_std)):
            raise ValueError(f"emb_std: must be a non-negative finite number, got {emb_std!r}")
        self.emb_std = float(emb_std)
        self.goods_bias = bool(goods_bias)

    # ------------------------------------------------------------------ construction
    @property
    def D(self):
        """Width of one behaviour / candidate embedding: goods_dim + cate_dim."""
        return self.goods_dim + self.cate_dim

    def _blocks(self):
        """(prefix, input width, hidden units, activation) of each MLP."""
        return [("mlp", 3 * self.D, self.hidden_units, self.activation)]

    def _param_shapes(self):
        """Dense parameter names and shapes, in flat-buffer order: the one naming scheme."""
        shapes = []
        for prefix, width, units, act in self._blocks():
            for i, h in enumerate(units):
                shapes.append((f"{prefix}.{i}.W", (width, h)))
                shapes.append((f"{prefix}.{i}.b", (h,)))
                if act in ("prelu", "dice"):
                    shapes.append((f"{prefix}.{i}.alpha", (h,)))
                width = h
            shapes.append((f"{prefix}.out.W", (width, 1)))
            shapes.append((f"{prefix}.out.b", (1,)))
        return shapes

    def _build(self):
        rng = np.random.default_rng(self.seed)
        dt = self.dtype
        self._workspace = {}  # step intermediates, reused across steps (``_buf``)
        self._static = None  # the fused kernel's architecture arguments (``_fused_static``)
        self._no_bias = np.zeros((0, 1), dtype=dt)  # the fused kernel's goods_bias argument when there is none
        self.params = {
            "goods_emb": (rng.standard_normal((self.n_goods, self.goods_dim)) * self.emb_std).astype(dt),
            "cate_emb": (rng.standard_normal((self.n_cates, self.cate_dim)) * self.emb_std).astype(dt),
        }
        if self.goods_bias:
            self.params["goods_bias"] = np.zeros((self.n_goods, 1), dtype=dt)
        shapes = self._param_shapes()
        total = sum(int(np.prod(s)) for _, s in shapes)
        self.dense_flat = np.zeros(total, dtype=dt)  # every dense parameter, one buffer
        self._dense_slices = {}
        pos = 0
        for name, shape in shapes:
            size = int(np.prod(shape))
            self._dense_slices[name] = (pos, pos + size, shape)
            view = self.dense_flat[pos:pos + size].reshape(shape)
            kind = name.rsplit(".", 1)[1]
            if kind == "W":  # Xavier/Glorot normal
                view[...] = rng.standard_normal(shape) * math.sqrt(2.0 / (shape[0] + shape[1]))
            elif kind == "alpha":
                view[...] = 0.25
            self.params[name] = view
            pos += size
        # Dice running averages: views into one flat buffer too (the fused inference kernel reads it whole)
        dice_units = [h for _, _, units, act in self._blocks() if act == "dice" for h in units]
        self.state_flat = np.zeros(2 * sum(dice_units), dtype=dt)
        self.state, self._state_offsets, pos = {}, {}, 0
        for prefix, _, units, act in self._blocks():
            if act == "dice":
                for i, h in enumerate(units):
                    self._state_offsets[f"{prefix}.{i}"] = pos
                    self.state[f"{prefix}.{i}.running_mean"] = self.state_flat[pos:pos + h]
                    self.state[f"{prefix}.{i}.running_var"] = self.state_flat[pos + h:pos + 2 * h]
                    self.state[f"{prefix}.{i}.running_var"][...] = 1.0
                    pos += 2 * h

    @property
    def dense_names(self):
        return list(self._dense_slices)

    def num_params(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    # ------------------------------------------------------------------ input checks
    def _check_batch(self, batch, need_labels):
        if not isinstance(batch, Batch):
            raise ValueError(f"batch: expected minidin.Batch, got {type(batch).__name__}")
        batch.check_vocab(self.n_goods, self.n_cates)
        if need_labels and batch.labels is None:
            raise ValueError("labels: required for loss_and_grad, but the batch has none")

    # ------------------------------------------------------------------ workspace
    def _buf(self, key, shape, zero=False):
        """A scratch array for one forward/backward intermediate, reused across steps.

        Every activation, cache and upstream-gradient buffer of a step lives here, so a training step
        allocates only what it returns (the gradients); the arrays grow to the largest batch seen.
        What ``_forward`` returns is only valid until the next call on this model.
        """
        size = 1
        for n in shape:
            size *= n
        ws = self._workspace
        flat = ws.get(key)
        if flat is None or flat.size < size:
            flat = ws[key] = np.empty(max(size, 1), dtype=self.dtype)
        out = flat[:size].reshape(shape)
        if zero:
            out.fill(0)
        return out

    # ------------------------------------------------------------------ MLP stacks
    def _stack_forward(self, prefix, x, units, act, training, momentum, first_z=None):
        """Dense + activation layers, then the one-unit output layer. With ``first_z``, the first
        layer's pre-activation was computed by the caller (DIN's split attention layer) and x is None."""
        P, dt = self.params, self.dtype
        caches = []
        for i, h in enumerate(units):
            W, b = P[f"{prefix}.{i}.W"], P[f"{prefix}.{i}.b"]
            if i == 0 and first_z is not None:
                z = first_z
            else:
                z = self._buf(f"{prefix}.{i}.z", (x.shape[0], h))
                dense_forward(z, x, W, b)
            a = self._buf(f"{prefix}.{i}.a", z.shape)
            c = _LayerCache(x=x, z=z, a=a, training=training)
            if act == "prelu":
                prelu_forward(a, z, P[f"{prefix}.{i}.alpha"])
            elif act == "sigmoid":
                sigmoid_forward(a, z)
            else:  # dice
                c.xhat, c.p = self._buf(f"{prefix}.{i}.xhat", z.shape), self._buf(f"{prefix}.{i}.p", z.shape)
                c.inv_std = self._buf(f"{prefix}.{i}.inv_std", (h,))
                dice_forward(a, c.xhat, c.p, c.inv_std, z, P[f"{prefix}.{i}.alpha"],
                             self.state[f"{prefix}.{i}.running_mean"], self.state[f"{prefix}.{i}.running_var"],
                             training, momentum, self.dice_eps)
            caches.append(c)
            x = a
        z = self._buf(f"{prefix}.out.z", (x.shape[0], 1))
        dense_forward(z, x, P[f"{prefix}.out.W"], P[f"{prefix}.out.b"])
        caches.append(_LayerCache(x=x, z=z, a=z))
        return z, caches

    def _stack_backward(self, prefix, dout, caches, units, act, G):
        """Backward through one MLP in reverse layer order; returns d(input), or d(first z) when
        the forward was given ``first_z`` (the caller back-propagates the first layer)."""
        P = self.params
        last = caches[-1]
        dx = self._buf(f"{prefix}.out.dx", last.x.shape, zero=True)
        dense_backward(dx, G[f"{prefix}.out.W"], G[f"{prefix}.out.b"], dout, last.x, P[f"{prefix}.out.W"])
        for i in range(len(units) - 1, -1, -1):
            c = caches[i]
            dz = self._buf(f"{prefix}.{i}.dz", c.z.shape, zero=True)
            if act == "prelu":
                prelu_backward(dz, G[f"{prefix}.{i}.alpha"], dx, c.z, P[f"{prefix}.{i}.alpha"])
            elif act == "sigmoid":
                sigmoid_backward(dz, dx, c.a)
            else:
                dice_backward(dz, G[f"{prefix}.{i}.alpha"], dx, c.z, c.xhat, c.p, c.inv_std,
                              P[f"{prefix}.{i}.alpha"], c.training)
            if c.x is None:
                return dz
            dx = self._buf(f"{prefix}.{i}.dx", c.x.shape, zero=True)
            dense_backward(dx, G[f"{prefix}.{i}.W"], G[f"{prefix}.{i}.b"], dz, c.x, P[f"{prefix}.{i}.W"])
        return dx

    # ------------------------------------------------------------------ pooling weights
    def _pool_weights(self, batch, cache, training, momentum):
        """(N,) pooling weights; DIN overrides this with the attention unit."""
        lengths = batch.lengths
        if self.pooling == "sum":
            return np.ones(batch.hist_goods.shape[0], dtype=self.dtype)
        return np.repeat(1.0 / np.maximum(lengths, 1), lengths).astype(self.dtype)

    def _pool_weights_backward(self, cache, dweights, G, dcand_emb, dhist_emb):
        """BaseModel's weights are constants: nothing to propagate."""

    # ------------------------------------------------------------------ forward / backward
    def _forward(self, batch, training, momentum):
        dt, P = self.dtype, self.params
        B, N = batch.size, batch.hist_goods.shape[0]
        hist_emb = self._buf("hist_emb", (N, self.D))
        cand_emb = self._buf("cand_emb", (B, self.D))
        embedding_forward(hist_emb, batch.hist_goods, batch.hist_cates, P["goods_emb"], P["cate_emb"])
        embedding_forward(cand_emb, batch.cand_goods, batch.cand_cates, P["goods_emb"], P["cate_emb"])
        cache = _Cache(batch=batch, labels=None, hist_emb=hist_emb, cand_emb=cand_emb, weights=None,
                       interest=None, mlp_in=None, logits=None)
        cache.weights = self._pool_weights(batch, cache, training, momentum)
        interest = self._buf("interest", (B, self.D))
        pooling_forward(interest, cache.weights, hist_emb, batch.hist_offsets)
        mlp_in = self._buf("mlp_in", (B, 3 * self.D))
        interaction_forward(mlp_in, interest, cand_emb)
        out, cache.mlp_layers = self._stack_forward("mlp", mlp_in, self.hidden_units, self.activation,
                                                    training, momentum)
        cache.interest, cache.mlp_in, cache.logits = interest, mlp_in, np.ascontiguousarray(out[:, 0])
        if self.goods_bias:
            goods_bias_forward(cache.logits, batch.cand_goods, P["goods_bias"])
        return cache

    def _backward(self, cache):
        batch, dt = cache.batch, self.dtype
        gflat = np.zeros_like(self.dense_flat)  # one buffer, laid out like dense_flat; returned, so fresh
        G = {name: gflat[lo:hi].reshape(shape) for name, (lo, hi, shape) in self._dense_slices.items()}
        B = batch.size
        dlogits = self._buf("dlogits", (B,), zero=True)
        bce_backward(dlogits, cache.logits, cache.labels, 1.0)
        dmlp_in = self._stack_backward("mlp", dlogits.reshape(B, 1), cache.mlp_layers, self.hidden_units,
                                       self.activation, G)
        dinterest = self._buf("dinterest", cache.interest.shape, zero=True)
        dcand_emb = self._buf("dcand_emb", cache.cand_emb.shape, zero=True)
        interaction_backward(dinterest, dcand_emb, dmlp_in, cache.interest, cache.cand_emb)
        dweights = self._buf("dweights", cache.weights.shape, zero=True)
        dhist_emb = self._buf("dhist_emb", cache.hist_emb.shape, zero=True)
        pooling_backward(dweights, dhist_emb, dinterest, cache.weights, cache.hist_emb, batch.hist_offsets)
        self._pool_weights_backward(cache, dweights, G, dcand_emb, dhist_emb)
        N = batch.hist_goods.shape[0]
        for table, ids_h, ids_c, col0, width in (
            ("goods_emb", batch.hist_goods, batch.cand_goods, 0, self.goods_dim),
            ("cate_emb", batch.hist_cates, batch.cand_cates, self.goods_dim, self.cate_dim),
        ):
            rows, inverse = unique_rows(np.concatenate((ids_h, ids_c)))
            values = np.zeros((rows.shape[0], width), dtype=dt)
            embedding_backward(values, dhist_emb, inverse[:N], col0)
            embedding_backward(values, dcand_emb, inverse[N:], col0)
            G[table] = SparseGrad(rows=rows, values=values, n_rows=self.params[table].shape[0])
        if self.goods_bias:
            rows, inverse = unique_rows(batch.cand_goods)
            values = np.zeros((rows.shape[0], 1), dtype=dt)
            goods_bias_backward(values, dlogits, inverse)
            G["goods_bias"] = SparseGrad(rows=rows, values=values, n_rows=self.n_goods)
        return G

    # ------------------------------------------------------------------ fused inference
    _ACTS = {"dice": ACT_DICE, "prelu": ACT_PRELU, "sigmoid": ACT_SIGMOID}

    def _fused_static(self):
        """The fused kernel's arguments that only change with the architecture (built once).

        The first is the (L, 6) int64 layout: one row per dense layer locating it in dense_flat and
        state_flat (W offset, in, out, b offset, alpha offset or -1, Dice state offset or -1).
        """
        if self._static is None:
            rows = []
            for prefix, _, units, act in self._blocks():
                for i in [*range(len(units)), "out"]:
                    w0, _, (n_in, n_out) = self._dense_slices[f"{prefix}.{i}.W"]
                    b0 = self._dense_slices[f"{prefix}.{i}.b"][0]
                    a = self._dense_slices.get(f"{prefix}.{i}.alpha")
                    rows.append([w0, n_in, n_out, b0, a[0] if a else -1, self._state_offsets.get(f"{prefix}.{i}", -1)])
            att = self.uses_attention
            self._static = (np.array(rows, dtype=np.int64), len(self.attention_units) if att else 0,
                            self._ACTS[self.attention_activation] if att else ACT_DICE, self._ACTS[self.activation],
                            POOL_ATTENTION if att else (POOL_SUM if self.pooling == "sum" else POOL_MEAN),
                            self._softmax_scale if att and self.attention_softmax else 0.0, self.dice_eps)
        return self._static

    def _fused_logits(self, batch, probabilities=False):
        P = self.params
        out = np.empty(batch.size, dtype=self.dtype)
        bias = P["goods_bias"] if self.goods_bias else self._no_bias
        din_infer_forward(out, batch.hist_goods, batch.hist_cates, batch.hist_offsets, batch.cand_goods,
                          batch.cand_cates, P["goods_emb"], P["cate_emb"], bias, self.dense_flat, self.state_flat,
                          *self._fused_static(), probabilities)
        return out

    # ------------------------------------------------------------------ public API
    def loss_and_grad(self, batch: Batch, update_stats: bool = True):
        """Training-mode loss (mean BCE, a Python float) and gradients keyed like ``params``.

        Dice layers use batch statistics; their running averages are updated
        (as a training step does) unless ``update_stats=False``. Embedding
        gradients are ``SparseGrad``; every other gradient is a dense array.
        """
        self._check_batch(batch, need_labels=True)
        cache = self._forward(batch, training=True, momentum=self.dice_momentum if update_stats else 0.0)
        cache.labels = batch.labels.astype(self.dtype)
        loss = float(bce_forward(cache.logits, cache.labels))
        return loss, self._backward(cache)

    def loss(self, batch: Batch, training: bool = True) -> float:
        """Mean BCE only, without gradients or any state update (used by gradient checks)."""
        self._check_batch(batch, need_labels=True)
        cache = self._forward(batch, training=training, momentum=0.0)
        return float(bce_forward(cache.logits, batch.labels.astype(self.dtype)))

    def logits(self, batch: Batch, training: bool = False, fused: bool = True) -> np.ndarray:
        """(B,) logits; inference mode by default. Never updates running averages.

        In inference mode the whole forward runs as one fused kernel (``din_infer_forward``);
        ``fused=False`` composes the per-layer kernels instead (the clear reference; same result up
        to rounding). Training mode always uses the per-layer kernels (Dice needs batch statistics).
        """
        self._check_batch(batch, need_labels=False)
        if fused and not training:
            return self._fused_logits(batch)
        return self._forward(batch, training=training, momentum=0.0).logits.copy()  # not the workspace

    def predict(self, batch: Batch, fused: bool = True) -> np.ndarray:
        """(B,) click probabilities in inference mode (Dice uses its running averages); ``fused`` as in logits."""
        if fused:
            self._check_batch(batch, need_labels=False)
            return self._fused_logits(batch, probabilities=True)
        z = self.logits(batch, training=False, fused=False)
        p = np.empty((z.shape[0], 1), dtype=self.dtype)
        sigmoid_forward(p, z.reshape(-1, 1))
        return p[:, 0]

    def zero_grads(self):
        """A gradient dict of zeros shaped like ``params`` (embeddings as empty SparseGrads)."""
        G = {n: np.zeros(s, dtype=self.dtype) for n, (_, _, s) in self._dense_slices.items()}
        for t in (t for t in SPARSE_TABLES if t in self.params):
            G[t] = SparseGrad(np.zeros(0, np.int64), np.zeros((0, self.params[t].shape[1]), self.dtype),
                              self.params[t].shape[0])
        return G

    def config(self) -> dict:
        """The constructor arguments, JSON-serialisable (used by checkpoints)."""
        cfg = dict(n_goods=self.n_goods, n_cates=self.n_cates, goods_dim=self.goods_dim, cate_dim=self.cate_dim,
                   hidden_units=list(self.hidden_units), activation=self.activation,
                   dtype=self.dtype.name, seed=self.seed, dice_momentum=self.dice_momentum, dice_eps=self.dice_eps,
                   emb_std=self.emb_std, goods_bias=self.goods_bias)
        return cfg

    def save(self, path):
        """Write the weights, Dice running averages and config to ``path`` (.npz, atomically)."""
        from .checkpoint import save_checkpoint

        save_checkpoint(path, self, {"kind": "model"})

    def _prelu_inputs(self, cache):
        """Flat pre-activations of every PReLU layer (for kink detection in gradient checks)."""
        parts = []
        for prefix, layers, act in (("att", cache.att_layers, getattr(self, "attention_activation", None)),
                                    ("mlp", cache.mlp_layers, self.activation)):
            if act == "prelu":
                parts += [c.z.ravel() for c in layers[:-1]]
        return np.concatenate(parts) if parts else np.zeros(0)

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.config().items())})"


class BaseModel(_DeepInterestModel):
    """The paper's base model (Fig. 2, left): embeddings, sum (or mean) pooling, MLP.

    Same arguments as ``DIN`` without the ``attention_*`` ones, plus
    ``pooling="sum"`` (paper) or ``"mean"`` (the official code's base model).
    """

    def __init__(self, n_goods, n_cates, goods_dim=64, cate_dim=64, hidden_units=(200, 80), activation="dice",
                 dtype=np.float32, seed=0, pooling="sum", dice_momentum=0.1, dice_eps=1e-8, emb_std=0.1,
                 goods_bias=False):
        super().__init__(n_goods, n_cates, goods_dim, cate_dim, hidden_units, activation, dtype, seed,
                         dice_momentum, dice_eps, emb_std, goods_bias)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling: must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self._build()

    def config(self):
        return dict(super().config(), model="base", pooling=self.pooling)


class DIN(_DeepInterestModel):
    """Deep Interest Network (paper §4.3): attention-weighted pooling of the history.

    n_goods, n_cates:      vocabulary sizes (ids are 0-based; no padding id)
    goods_dim, cate_dim:   embedding widths; D = goods_dim + cate_dim
    attention_units:       hidden sizes of the local activation unit (default (80, 40))
    hidden_units:          hidden sizes of the main MLP (default (200, 80))
    activation:            "dice", "prelu" or "sigmoid" for the main MLP
    attention_activation:  the same for the attention MLP; None follows ``activation``
    attention_softmax:     False (paper: raw weights) or True (official code: softmax of scores / sqrt(D))
    dtype:                 np.float32 (default) or np.float64
    seed:                  initialisation seed
    dice_momentum:         running-average momentum of Dice layers (0.1)
    dice_eps:              Dice's ε (1e-8)
    emb_std:               std of the N(0, emb_std²) embedding initialisation (0.1)
    goods_bias:            add a learned per-goods bias to the logit (the official code's item_b; False)
    attention_split:       True (default): the first attention layer as q·(Wq+Wd) once per sample plus
                           [k, q⊙k]·[Wk−Wd; Wp] (``attention_split_*``, half the multiply-adds); False: the
                           clear reference, ``attention_input_*`` then ``dense_*``. Same function, same
                           parameters; results agree to rounding.
    """

    uses_attention = True

    def __init__(self, n_goods, n_cates, goods_dim=64, cate_dim=64, attention_units=(80, 40),
                 hidden_units=(200, 80), activation="dice", attention_activation=None, attention_softmax=False,
                 dtype=np.float32, seed=0, dice_momentum=0.1, dice_eps=1e-8, emb_std=0.1, goods_bias=False,
                 attention_split=True):
        super().__init__(n_goods, n_cates, goods_dim, cate_dim, hidden_units, activation, dtype, seed,
                         dice_momentum, dice_eps, emb_std, goods_bias)
        self.attention_split = bool(attention_split)
        self.attention_units = _check_units("attention_units", attention_units)
        self.attention_activation = activation if attention_activation is None else attention_activation
        _check_activation("attention_activation", self.attention_activation)
        self.attention_softmax = bool(attention_softmax)
        self._build()
        # The score layer's bias starts at 1, so an untrained DIN pools like the BaseModel (every
        # weight ≈ 1) and attention learns to deviate from there. Started at 0, the weights are all
        # near 0, the pooled interest carries no signal and training stalls for epochs (docs/results.md).
        self.params["att.out.b"][...] = 1.0

    def _blocks(self):
        return [("att", 4 * self.D, self.attention_units, self.attention_activation)] + super()._blocks()

    def config(self):
        return dict(super().config(), model="din", attention_units=list(self.attention_units),
                    attention_activation=self.attention_activation, attention_softmax=self.attention_softmax)

    def _pool_weights(self, batch, cache, training, momentum):
        N, D, dt = batch.hist_goods.shape[0], self.D, self.dtype
        if self.attention_split:
            # [q, k, q−k, q⊙k]·W split algebraically: the q term once per sample (attention_split_forward)
            z0 = self._buf("att.0.z", (N, self.attention_units[0]))
            cache.att_kx = self._buf("att_kx", (N, 2 * D))
            attention_split_forward(z0, cache.att_kx, cache.cand_emb, cache.hist_emb, batch.hist_offsets,
                                    self.params["att.0.W"], self.params["att.0.b"])
            out, cache.att_layers = self._stack_forward("att", None, self.attention_units,
                                                        self.attention_activation, training, momentum, first_z=z0)
        else:  # the clear reference: build the (N, 4D) input, then the dense layer
            cache.att_in = self._buf("att_in", (N, 4 * D))
            attention_input_forward(cache.att_in, cache.cand_emb, cache.hist_emb, batch.hist_offsets)
            out, cache.att_layers = self._stack_forward("att", cache.att_in, self.attention_units,
                                                        self.attention_activation, training, momentum)
        cache.scores = np.ascontiguousarray(out[:, 0])
        if not self.attention_softmax:
            return cache.scores
        weights = np.empty_like(cache.scores)
        attention_softmax_forward(weights, cache.scores, batch.hist_offsets, self._softmax_scale)
        return weights

    @property
    def _softmax_scale(self):
        return 1.0 / math.sqrt(self.D)

    def _pool_weights_backward(self, cache, dweights, G, dcand_emb, dhist_emb):
        if self.attention_softmax:
            dscores = self._buf("dscores", cache.scores.shape, zero=True)
            attention_softmax_backward(dscores, dweights, cache.weights, cache.batch.hist_offsets,
                                       self._softmax_scale)
        else:
            dscores = dweights
        d = self._stack_backward("att", dscores.reshape(-1, 1), cache.att_layers, self.attention_units,
                                 self.attention_activation, G)
        if self.attention_split:  # d is the gradient of the first layer's pre-activation
            attention_split_backward(dcand_emb, dhist_emb, G["att.0.W"], G["att.0.b"], d, cache.att_kx,
                                     cache.cand_emb, cache.hist_emb, cache.batch.hist_offsets,
                                     self.params["att.0.W"])
        else:  # d is the gradient of the (N, 4D) attention input
            attention_input_backward(dcand_emb, dhist_emb, d, cache.cand_emb, cache.hist_emb,
                                     cache.batch.hist_offsets)

    def attention(self, batch: Batch) -> np.ndarray:
        """(N,) the pooling weight of every behaviour, aligned with ``hist_goods`` (inference mode).

        These are the weights actually used for pooling: raw scores by default,
        softmax-normalised within each history when ``attention_softmax=True``.
        """
        self._check_batch(batch, need_labels=False)
        return self._forward(batch, training=False, momentum=0.0).weights.copy()
