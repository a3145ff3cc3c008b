"""DIN and the paper's BaseModel, composed only from the kernels in ``minidin.layers``: one class,
``DeepInterestModel``, built from a ``ModelConfig`` and branching on ``config.model`` (attention-weighted or
fixed pooling); ``DIN(...)`` and ``BaseModel(...)`` build the config from keyword arguments.

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
not parameters. Parameters are a ``Params`` (the tables, and one flat buffer that
every dense parameter is a view into, as in llm.c), gradients a ``Grads`` laid out
the same way, so the optimizer updates every dense parameter in one kernel call.
``forward`` returns one named tuple per layer (``ForwardCache``, ``LayerCache``);
``backward`` takes it and returns ``Grads``.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import os
from typing import NamedTuple

import numba
import numpy as np

from . import compile_helper
from .batch import Bag, Batch
from .layers import (
    embedding_bag_backward,
    embedding_bag_forward,
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
from .config import ModelConfig
from .layers.fused import (ACT_DICE, ACT_PRELU, ACT_SIGMOID, POOL_ATTENTION, POOL_MEAN, POOL_SUM, FusedArch,
                           FusedParams, din_infer_forward)
from .params import Grads, Params
from .sparse import SparseGrad


class LayerCache(NamedTuple):
    """What one dense layer (and its activation) keeps for its backward."""

    x: np.ndarray | None  # (M, in) layer input; None for DIN's split first attention layer (see att_kx)
    z: np.ndarray  # (M, out) pre-activation
    a: np.ndarray  # (M, out) activation output (z itself for the one-unit output layer)
    xhat: np.ndarray | None  # Dice only: (M, out) normalised pre-activation
    p: np.ndarray | None  # Dice only: (M, out) gate σ(x̂)
    inv_std: np.ndarray | None  # Dice only: (out,) 1/sqrt(var + ε)
    training: bool


class ForwardCache(NamedTuple):
    """Everything ``forward`` computed that ``backward`` needs, by layer (no state on the model).

    The arrays live in the model's workspace: valid until the next forward on this model.
    """

    batch: Batch
    training: bool
    hist_emb: np.ndarray  # (N, D) behaviour embeddings
    cand_emb: np.ndarray  # (B, D) candidate embeddings
    att_in: np.ndarray | None  # (N, 4D) [q, k, q−k, q⊙k]: DIN with attention_split=False only
    att_kx: np.ndarray | None  # (N, 2D) [k, q⊙k]: DIN with attention_split=True only
    att_layers: tuple  # LayerCache per attention layer (DIN), the score layer last
    scores: np.ndarray | None  # (N,) attention scores (DIN)
    weights: np.ndarray  # (N,) pooling weights
    interest: np.ndarray  # (B, D) pooled user interest v_U
    mlp_in: np.ndarray  # (B, 3D) [v_U, v_A, v_U ⊙ v_A]
    mlp_layers: tuple  # LayerCache per MLP layer, the logit layer last
    logits: np.ndarray  # (B,)


class DeepInterestModel:
    """DIN or the BaseModel, by ``config.model``: one class, branching on the pooling.

    ``minidin.DIN(...)`` / ``minidin.BaseModel(...)`` build it from keyword arguments;
    ``DeepInterestModel(ModelConfig(...))`` builds it from a config. Config fields
    read as attributes (``model.n_goods``, ``model.activation``, ...).
    """

    def __init__(self, config: ModelConfig):
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config: expected a minidin.ModelConfig, got {type(config).__name__}")
        self.cfg = config
        # the config's fields read as attributes (model.n_goods, model.activation, ...), copied once: the
        # step reads them dozens of times
        for name in _CONFIG_FIELDS:
            setattr(self, name, getattr(config, name))
        self.attention_activation = config.att_activation  # resolved: None follows ``activation``
        self.dtype = np.dtype(config.dtype)
        self.D = config.D  # width of one behaviour / candidate embedding: goods_dim + cate_dim + item fields
        self.uses_attention = config.uses_attention
        # schema fields: (FieldSpec, first column) of each, where it is written: item fields into the
        # behaviour and candidate embeddings after goods and category, user fields into the MLP input before
        # [v_U, v_A, v_U ⊙ v_A], context fields after it
        col = self.goods_dim + self.cate_dim
        self._item_cols = []
        for f in config.fields_of("item"):
            self._item_cols.append((f, col))
            col += f.dim
        self._user_width = sum(f.dim for f in config.fields_of("user"))
        self._sample_cols, col = [], 0
        for f in config.fields_of("user") + config.fields_of("context"):
            self._sample_cols.append((f, col if f.kind == "user" else col + 3 * self.D))
            col += f.dim
        self.mlp_width = config.mlp_width
        self._build()

    # ------------------------------------------------------------------ construction
    def _blocks(self):
        """(prefix, input width, hidden units, activation) of each MLP, in parameter order."""
        mlp = [("mlp", self.mlp_width, self.hidden_units, self.activation)]
        if self.uses_attention:
            return [("att", 4 * self.D, self.attention_units, self.attention_activation)] + mlp
        return mlp

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
        cfg, dt = self.cfg, self.dtype
        rng = np.random.default_rng(cfg.seed)
        self._workspace = {}  # step intermediates, reused across steps (``_buf``)
        self._arch = None  # the fused kernel's FusedArch as a plain tuple (``_fused_arch``)
        self._scratch = np.empty(0, dtype=dt)  # the fused kernel's intermediates, kept across calls
        self._no_extra = np.zeros((0, 0), dtype=dt)  # FusedBatch.extra without user or context fields
        self._no_cate = np.zeros((1, 0), dtype=dt)  # the zero-width category table of the schema path
        need = dt.itemsize * (cfg.n_goods * (cfg.goods_dim + cfg.goods_bias) + cfg.n_cates * cfg.cate_dim
                              + sum(f.vocab * f.dim for f in cfg.fields))
        if need * (1 + 8 // dt.itemsize) > _physical_memory():  # with the float64 draw it is initialised from
            raise ValueError(f"n_goods / n_cates: embedding tables of {need / 2**30:.0f} GiB ({cfg.n_goods} x "
                             f"{cfg.goods_dim} + {cfg.n_cates} x {cfg.cate_dim} {dt.name}) exceed this machine's "
                             f"{_physical_memory() / 2**30:.0f} GiB of memory")
        tables = {"goods_emb": (rng.standard_normal((cfg.n_goods, cfg.goods_dim)) * cfg.emb_std).astype(dt),
                  "cate_emb": (rng.standard_normal((cfg.n_cates, cfg.cate_dim)) * cfg.emb_std).astype(dt)}
        if cfg.goods_bias:
            tables["goods_bias"] = np.zeros((cfg.n_goods, 1), dtype=dt)
        for f in cfg.fields:  # drawn after the two default tables: the default model's draws are unchanged
            tables[f.table] = (rng.standard_normal((f.vocab, f.dim)) * cfg.emb_std).astype(dt)
        self.params = Params(tables, self._param_shapes(), dt)
        for name, shape in self.params.layout:
            kind = name.rsplit(".", 1)[1]
            if kind == "W":  # Xavier/Glorot normal
                self.params[name][...] = rng.standard_normal(shape) * math.sqrt(2.0 / (shape[0] + shape[1]))
            elif kind == "alpha":
                self.params[name][...] = 0.25
        if self.uses_attention:
            # The score layer's bias starts at 1, so an untrained DIN pools like the BaseModel (every
            # weight ≈ 1) and attention learns to deviate from there. Started at 0, the weights are all
            # near 0 and the pooled interest carries little signal at first: 0.010 validation GAUC behind
            # after the first epoch on the synthetic data (docs/results.md, bench/score_bias.py).
            self.params["att.out.b"][...] = 1.0
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
        # what the fused kernel reads, built once: the arrays never move, only their contents change (one
        # tuple per call would be garbage-collected every few hundred calls, a multi-ms pause in latency)
        P = self.params
        self._fused_params = tuple(FusedParams(P["goods_emb"], P["cate_emb"],
                                               P["goods_bias"] if cfg.goods_bias else np.zeros((0, 1), dtype=dt),
                                               P.dense, self.state_flat))  # a plain tuple: see din_infer_forward

    @property
    def dense_flat(self):
        """Every dense parameter, one buffer (``params.dense``)."""
        return self.params.dense

    @property
    def dense_names(self):
        return self.params.dense_names

    def num_params(self) -> int:
        return self.params.num_params()

    # ------------------------------------------------------------------ input checks
    def _check_batch(self, batch, need_labels):
        if not isinstance(batch, Batch):
            raise TypeError(f"batch: expected minidin.Batch, got {type(batch).__name__}")
        batch.check_vocab(self.n_goods, self.n_cates)
        if self.fields or batch.item_fields or batch.sample_fields:
            batch.check_fields(self.cfg)
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
        """Dense + activation layers, then the one-unit output layer; returns (out (M, 1), LayerCaches).
        With ``first_z``, the first layer's pre-activation was computed by the caller (DIN's split
        attention layer) and x is None."""
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
            xhat = p = inv_std = None
            if act == "prelu":
                prelu_forward(a, z, P[f"{prefix}.{i}.alpha"])
            elif act == "sigmoid":
                sigmoid_forward(a, z)
            else:  # dice
                xhat, p = self._buf(f"{prefix}.{i}.xhat", z.shape), self._buf(f"{prefix}.{i}.p", z.shape)
                inv_std = self._buf(f"{prefix}.{i}.inv_std", (h,))
                dice_forward(a, xhat, p, inv_std, z, P[f"{prefix}.{i}.alpha"],
                             self.state[f"{prefix}.{i}.running_mean"], self.state[f"{prefix}.{i}.running_var"],
                             training, momentum, self.dice_eps)
            caches.append(LayerCache(x, z, a, xhat, p, inv_std, training))
            x = a
        z = self._buf(f"{prefix}.out.z", (x.shape[0], 1))
        dense_forward(z, x, P[f"{prefix}.out.W"], P[f"{prefix}.out.b"])
        caches.append(LayerCache(x, z, z, None, None, None, training))
        return z, tuple(caches)

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

    # ------------------------------------------------------------------ the attention unit (DIN)
    @property
    def _softmax_scale(self):
        return 1.0 / math.sqrt(self.D)

    def _attention_forward(self, batch, cand_emb, hist_emb, training, momentum):
        """(att_in, att_kx, att_layers, scores, weights): the local activation unit, Eq. (3)'s a(e_j, v_A)."""
        N, D = batch.hist_goods.shape[0], self.D
        att_in = att_kx = None
        if self.attention_split:
            # [q, k, q−k, q⊙k]·W split algebraically: the q term once per sample (attention_split_forward)
            z0 = self._buf("att.0.z", (N, self.attention_units[0]))
            att_kx = self._buf("att_kx", (N, 2 * D))
            attention_split_forward(z0, att_kx, cand_emb, hist_emb, batch.hist_offsets, self.params["att.0.W"],
                                    self.params["att.0.b"])
            out, layers = self._stack_forward("att", None, self.attention_units, self.attention_activation,
                                              training, momentum, first_z=z0)
        else:  # the clear reference: build the (N, 4D) input, then the dense layer
            att_in = self._buf("att_in", (N, 4 * D))
            attention_input_forward(att_in, cand_emb, hist_emb, batch.hist_offsets)
            out, layers = self._stack_forward("att", att_in, self.attention_units, self.attention_activation,
                                              training, momentum)
        scores = np.ascontiguousarray(out[:, 0])
        weights = scores
        if self.attention_softmax:
            weights = np.empty_like(scores)
            attention_softmax_forward(weights, scores, batch.hist_offsets, self._softmax_scale)
        return att_in, att_kx, layers, scores, weights

    def _attention_backward(self, cache, dweights, G, dcand_emb, dhist_emb):
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

    # ------------------------------------------------------------------ forward / backward
    def forward(self, batch: Batch, training: bool = False, update_stats: bool = False) -> ForwardCache:
        """The whole forward with the per-layer kernels; returns the named cache (logits in ``.logits``).

        training:     Dice uses batch statistics (else its running averages)
        update_stats: in training mode, move Dice's running averages (as a training step does)
        """
        self._check_batch(batch, need_labels=False)
        return self._forward(batch, training, update_stats)

    def _forward(self, batch, training, update_stats):
        """``forward`` on a batch its caller has checked."""
        momentum = self.dice_momentum if training and update_stats else 0.0
        P, B, N = self.params, batch.size, batch.hist_goods.shape[0]
        hist_emb = self._buf("hist_emb", (N, self.D))
        cand_emb = self._buf("cand_emb", (B, self.D))
        self._item_embeddings(batch, hist_emb, cand_emb)
        if self.uses_attention:
            att_in, att_kx, att_layers, scores, weights = self._attention_forward(batch, cand_emb, hist_emb,
                                                                                  training, momentum)
        else:  # BaseModel: fixed weights, 1 (sum pooling) or 1/T (mean pooling)
            att_in = att_kx = scores = None
            att_layers = ()
            if self.pooling == "sum":
                weights = np.ones(N, dtype=self.dtype)
            else:
                weights = np.repeat(1.0 / np.maximum(batch.lengths, 1), batch.lengths).astype(self.dtype)
        interest = self._buf("interest", (B, self.D))
        pooling_forward(interest, weights, hist_emb, batch.hist_offsets)
        if self._sample_cols:  # [user fields, v_U, v_A, v_U ⊙ v_A, context fields]
            mlp_in = self._buf("mlp_in", (B, self.mlp_width))
            inter = self._buf("interaction", (B, 3 * self.D))
            interaction_forward(inter, interest, cand_emb)
            mlp_in[:, self._user_width:self._user_width + 3 * self.D] = inter
            self._sample_embeddings(batch, mlp_in)
        else:
            mlp_in = self._buf("mlp_in", (B, 3 * self.D))
            interaction_forward(mlp_in, interest, cand_emb)
        out, mlp_layers = self._stack_forward("mlp", mlp_in, self.hidden_units, self.activation, training, momentum)
        logits = np.ascontiguousarray(out[:, 0])
        if self.goods_bias:
            goods_bias_forward(logits, batch.cand_goods, P["goods_bias"])
        return ForwardCache(batch, training, hist_emb, cand_emb, att_in, att_kx, att_layers, scores, weights,
                            interest, mlp_in, mlp_layers, logits)

    def _item_embeddings(self, batch, hist_emb, cand_emb):
        """Behaviour and candidate embeddings: [goods, category, item field, ...] per row (paper §4.2)."""
        P = self.params
        embedding_forward(hist_emb, batch.hist_goods, batch.hist_cates, P["goods_emb"], P["cate_emb"])
        embedding_forward(cand_emb, batch.cand_goods, batch.cand_cates, P["goods_emb"], P["cate_emb"])
        for f, col in self._item_cols:
            hist, cand = batch.item_fields[f.name]
            mean = f.multi_hot and f.pooling == "mean"
            embedding_bag_forward(hist_emb, hist.ids, hist.offsets, P[f.table], col, mean)
            embedding_bag_forward(cand_emb, cand.ids, cand.offsets, P[f.table], col, mean)

    def _sample_embeddings(self, batch, out):
        """The user and context fields' embeddings, into their columns of ``out`` (the MLP input)."""
        for f, col in self._sample_cols:
            bag = batch.sample_fields[f.name]
            embedding_bag_forward(out, bag.ids, bag.offsets, self.params[f.table], col, f.multi_hot and
                                  f.pooling == "mean")

    def backward(self, cache: ForwardCache) -> Grads:
        """Gradients of the mean BCE of ``cache.batch`` (its labels) w.r.t. every parameter."""
        batch, dt = cache.batch, self.dtype
        if batch.labels is None:
            raise ValueError("labels: backward needs a batch with labels")
        compile_helper.adopt(dt)  # the helper's compiled kernels, if one was started (loaded, not compiled)
        G = Grads(self.params, tables={})  # fresh: returned to the caller; every table's gradient set below
        B = batch.size
        dlogits = self._buf("dlogits", (B,), zero=True)
        bce_backward(dlogits, cache.logits, batch.labels.astype(dt), 1.0)
        dmlp_in = self._stack_backward("mlp", dlogits.reshape(B, 1), cache.mlp_layers, self.hidden_units,
                                       self.activation, G)
        dinterest = self._buf("dinterest", cache.interest.shape, zero=True)
        dcand_emb = self._buf("dcand_emb", cache.cand_emb.shape, zero=True)
        for f, col in self._sample_cols:  # user and context fields: their columns of the MLP input
            bag = batch.sample_fields[f.name]
            self._bag_grad(G, f, dmlp_in, col, (bag,))
        if self._sample_cols:
            dmlp_in = np.ascontiguousarray(dmlp_in[:, self._user_width:self._user_width + 3 * self.D])
        interaction_backward(dinterest, dcand_emb, dmlp_in, cache.interest, cache.cand_emb)
        dweights = self._buf("dweights", cache.weights.shape, zero=True)
        dhist_emb = self._buf("dhist_emb", cache.hist_emb.shape, zero=True)
        pooling_backward(dweights, dhist_emb, dinterest, cache.weights, cache.hist_emb, batch.hist_offsets)
        if self.uses_attention:  # the BaseModel's weights are constants: nothing to propagate
            self._attention_backward(cache, dweights, G, dcand_emb, dhist_emb)
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
        for f, col in self._item_cols:  # history and candidate rows into one SparseGrad per table
            hist, cand = batch.item_fields[f.name]
            self._bag_grad(G, f, (dhist_emb, dcand_emb), col, (hist, cand))
        if self.goods_bias:
            rows, inverse = unique_rows(batch.cand_goods)
            values = np.zeros((rows.shape[0], 1), dtype=dt)
            goods_bias_backward(values, dlogits, inverse)
            G["goods_bias"] = SparseGrad(rows=rows, values=values, n_rows=self.n_goods)
        return G

    def _bag_grad(self, G, f, douts, col, bags):
        """G[f.table]: the SparseGrad of a field's table from the bags that looked it up (with ``douts``, the
        gradients of the arrays they were pooled into: one per bag, or one array for all)."""
        douts = douts if isinstance(douts, tuple) else (douts,) * len(bags)
        ids = bags[0].ids if len(bags) == 1 else np.concatenate([b.ids for b in bags])
        rows, inverse = unique_rows(ids)
        values = np.zeros((rows.shape[0], f.dim), dtype=self.dtype)
        mean, lo = f.multi_hot and f.pooling == "mean", 0
        for bag, dout in zip(bags, douts):
            hi = lo + bag.ids.shape[0]
            embedding_bag_backward(values, dout, inverse[lo:hi], bag.offsets, col, mean)
            lo = hi
        G[f.table] = SparseGrad(rows=rows, values=values, n_rows=f.vocab)

    # ------------------------------------------------------------------ fused inference
    _ACTS = {"dice": ACT_DICE, "prelu": ACT_PRELU, "sigmoid": ACT_SIGMOID}

    def _fused_arch(self) -> tuple:
        """The fused kernel's ``FusedArch``, derived from ``params.layout`` / ``params.offsets`` and built once:
        one layout row per dense layer locating it in params.dense and state_flat (W offset, in, out,
        b offset, alpha offset or -1, Dice state offset or -1). Kept as a plain tuple, which crosses into
        Numba fastest (see din_infer_forward)."""
        if self._arch is None:
            shapes, off = dict(self.params.layout), self.params.offsets
            rows = []
            for prefix, _, units, act in self._blocks():
                for i in [*range(len(units)), "out"]:
                    n_in, n_out = shapes[f"{prefix}.{i}.W"]
                    rows.append([off[f"{prefix}.{i}.W"], n_in, n_out, off[f"{prefix}.{i}.b"],
                                 off.get(f"{prefix}.{i}.alpha", -1), self._state_offsets.get(f"{prefix}.{i}", -1)])
            att = self.uses_attention
            self._arch = tuple(FusedArch(
                layout=np.array(rows, dtype=np.int64), n_att=len(self.attention_units) if att else 0,
                att_act=self._ACTS[self.attention_activation] if att else ACT_DICE,
                mlp_act=self._ACTS[self.activation],
                pool=POOL_ATTENTION if att else (POOL_SUM if self.pooling == "sum" else POOL_MEAN),
                softmax=bool(att and self.attention_softmax), softmax_scale=float(self._softmax_scale),
                eps=float(self.dice_eps), n_user=self._user_width))
        return self._arch

    def _fused_inputs(self, batch):
        """(FusedBatch, FusedParams) as plain tuples. Without schema fields: the batch's ids and the tables.
        With them: the embeddings are gathered first (``_item_embeddings``, ``_sample_embeddings``) and the
        kernel reads them as a table of N + B rows (behaviours, then candidates) with a zero-width category
        table, the per-goods bias gathered the same way."""
        if not self.fields:
            return batch.fused_arrays(self._no_extra), self._fused_params
        B, N, dt = batch.size, batch.hist_goods.shape[0], self.dtype
        emb = np.empty((N + B, self.D), dtype=dt)
        self._item_embeddings(batch, emb[:N], emb[N:])
        extra = self._sample_extra(batch)
        rows = np.arange(N + B, dtype=np.int64)
        bias = np.zeros((0, 1), dtype=dt)
        if self.goods_bias:
            bias = np.zeros((N + B, 1), dtype=dt)
            bias[N:] = self.params["goods_bias"][batch.cand_goods]
        fb = (rows[:N], np.zeros(N, np.int64), batch.hist_offsets, rows[N:], np.zeros(B, np.int64), extra)
        return fb, (emb, self._no_cate, bias, self.params.dense, self.state_flat)

    def _sample_extra(self, batch):
        """(B, E): the user fields' then the context fields' pooled embeddings, the MLP input's columns around
        [v_U, v_A, v_U ⊙ v_A] without them (``FusedBatch.extra``)."""
        extra = np.zeros((batch.size, self.mlp_width - 3 * self.D), dtype=self.dtype)
        for f, col in self._sample_cols:
            bag = batch.sample_fields[f.name]
            embedding_bag_forward(extra, bag.ids, bag.offsets, self.params[f.table],
                                  col if f.kind == "user" else col - 3 * self.D, f.multi_hot and f.pooling == "mean")
        return extra

    def _fused_logits(self, batch, probabilities=False):
        out = np.empty(batch.size, dtype=self.dtype)
        arch = self._fused_arch()
        threads = numba.config.NUMBA_NUM_THREADS  # groups of chunks: at most one per thread Numba can run
        fb, fp = self._fused_inputs(batch)
        need = din_infer_forward(out, fb, fp, arch, probabilities, self._scratch, threads)
        if need:  # the scratch grows to what the largest batch needed, then is reused
            self._scratch = np.empty(need, dtype=self.dtype)
            din_infer_forward(out, fb, fp, arch, probabilities, self._scratch, threads)
        return out

    # ------------------------------------------------------------------ public API
    def loss_and_grad(self, batch: Batch, update_stats: bool = True):
        """Training-mode loss (mean BCE, a Python float) and gradients (``Grads``, keyed like ``params``).

        Dice layers use batch statistics; their running averages are updated
        (as a training step does) unless ``update_stats=False``. Embedding
        gradients are ``SparseGrad``; every other gradient is a dense array.
        """
        self._check_batch(batch, need_labels=True)
        compile_helper.start(self)  # on a cold Numba cache: the backward kernels compile in a second process
        cache = self._forward(batch, training=True, update_stats=update_stats)
        loss = float(bce_forward(cache.logits, batch.labels.astype(self.dtype)))
        return loss, self.backward(cache)

    def loss(self, batch: Batch, training: bool = True) -> float:
        """Mean BCE only, without gradients or any state update (used by gradient checks)."""
        self._check_batch(batch, need_labels=True)
        cache = self._forward(batch, training=training, update_stats=False)
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
        return self._forward(batch, training, update_stats=False).logits.copy()  # not the workspace

    def predict(self, batch: Batch, fused: bool = True) -> np.ndarray:
        """(B,) click probabilities in inference mode (Dice uses its running averages); ``fused`` as in logits."""
        if fused:
            self._check_batch(batch, need_labels=False)
            return self._fused_logits(batch, probabilities=True)
        z = self.logits(batch, training=False, fused=False)
        p = np.empty((z.shape[0], 1), dtype=self.dtype)
        sigmoid_forward(p, z.reshape(-1, 1))
        return p[:, 0]

    def score(self, batch: Batch, candidates, probabilities=True, fused=True) -> np.ndarray:
        """(K,) scores of every (history, candidate) pair, in inference mode: candidate j of history b at
        ``candidates.offsets[b] + j``. Probabilities by default, logits with ``probabilities=False``.

        batch:      B histories (with their user and context fields); its own candidates are not scored
        candidates: ``minidin.batch.Candidates``, per history a CSR list of candidate items (with the model's
                    item fields)
        What depends on the history alone (its embeddings, k·(Wk − Wd)) is computed once per history, what
        depends on a candidate alone once per distinct item (``layers.score``); ``fused=False`` runs the
        per-layer kernels on the expanded pairs instead (``candidates.expand(batch)``, the clear reference).
        """
        from .batch import Candidates

        if not isinstance(candidates, Candidates):
            raise TypeError(f"candidates: expected minidin.batch.Candidates, got {type(candidates).__name__}")
        self._check_batch(batch, need_labels=False)
        if candidates.offsets.shape[0] != batch.size + 1:
            raise ValueError(f"candidates.offsets: {candidates.offsets.shape[0] - 1} histories, but the batch has "
                             f"{batch.size}")
        if candidates.size == 0:
            return np.zeros(0, dtype=self.dtype)
        if not fused:
            pairs = candidates.expand(batch)
            return self.predict(pairs, fused=False) if probabilities else self.logits(pairs, fused=False)
        return self._score(batch, candidates, probabilities)

    def _score(self, batch, candidates, probabilities):
        from .layers.score import din_score_forward

        dt, D, P = self.dtype, self.D, self.params
        candidates.check(self.cfg)
        hist_emb = np.empty((batch.hist_goods.shape[0], D), dtype=dt)
        embedding_forward(hist_emb, batch.hist_goods, batch.hist_cates, P["goods_emb"], P["cate_emb"])
        if self.fields:  # item attributes may differ between rows of one goods id: one row per candidate
            index = np.arange(candidates.size, dtype=np.int64)
            Q = np.empty((candidates.size, D), dtype=dt)
            embedding_forward(Q, candidates.goods, candidates.cates, P["goods_emb"], P["cate_emb"])
            for f, col in self._item_cols:
                hist, _ = batch.item_fields[f.name]
                cand = candidates.item_fields[f.name]
                mean = f.multi_hot and f.pooling == "mean"
                embedding_bag_forward(hist_emb, hist.ids, hist.offsets, P[f.table], col, mean)
                embedding_bag_forward(Q, cand.ids, cand.offsets, P[f.table], col, mean)
        else:  # one row per distinct (goods, category) pair: an item that many histories rank pays once
            uniq, index = np.unique(candidates.goods * self.n_cates + candidates.cates, return_inverse=True)
            index = index.astype(np.int64).ravel()
            Q = np.empty((uniq.shape[0], D), dtype=dt)
            embedding_forward(Q, uniq // self.n_cates, uniq % self.n_cates, P["goods_emb"], P["cate_emb"])
        Uw = self._user_width
        W0 = P["mlp.0.W"]
        Wu, Wq, Wuq = (np.ascontiguousarray(W0[Uw + i * D:Uw + (i + 1) * D]) for i in range(3))
        QM = Q @ Wq
        extra = self._sample_extra(batch)
        W_extra = np.concatenate([W0[:Uw], W0[Uw + 3 * D:]]) if extra.shape[1] else np.zeros((0, W0.shape[1]), dt)
        HM = np.ascontiguousarray(extra @ W_extra + P["mlp.0.b"], dtype=dt)
        if self.uses_attention:
            W1 = P["att.0.W"]
            QA = np.ascontiguousarray(Q @ (W1[:D] + W1[2 * D:3 * D]) + P["att.0.b"], dtype=dt)
            Wkd = np.ascontiguousarray(W1[D:2 * D] - W1[2 * D:3 * D])
            Wp = np.ascontiguousarray(W1[3 * D:])
        else:
            QA = Wkd = Wp = np.zeros((0, 0), dtype=dt)
        bias = (P["goods_bias"][candidates.goods, 0].astype(dt) if self.goods_bias
                else np.zeros(candidates.size, dtype=dt))
        out = np.empty(candidates.size, dtype=dt)
        din_score_forward(out, hist_emb, batch.hist_offsets, index, candidates.offsets, Q, QA,
                          np.ascontiguousarray(QM, dtype=dt), HM, bias, Wkd, Wp, Wu, Wuq,
                          self._fused_params, self._fused_arch(), probabilities, numba.config.NUMBA_NUM_THREADS)
        return out

    def attention(self, batch: Batch) -> np.ndarray:
        """(N,) the pooling weight of every behaviour, aligned with ``hist_goods`` (inference mode).

        These are the weights actually used for pooling: raw scores by default,
        softmax-normalised within each history when ``attention_softmax=True``;
        the BaseModel's fixed weights (1, or 1/T for mean pooling).
        """
        return self.forward(batch, training=False).weights.copy()

    def zero_grads(self) -> Grads:
        """A ``Grads`` of zeros shaped like ``params`` (embeddings as empty SparseGrads)."""
        return Grads(self.params)

    def config(self) -> dict:
        """The ``ModelConfig`` as JSON (used by checkpoints); ``model.cfg`` is the object."""
        return self.cfg.to_json()

    def save(self, path):
        """Write the weights, Dice running averages and config to ``path`` (.npz, atomically):
        ``minidin.save(self, path)``."""
        from .checkpoint import save

        save(self, path)

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.config().items())})"


_CONFIG_FIELDS = frozenset(f for f in ModelConfig.__dataclass_fields__ if f not in ("attention_activation", "dtype"))


def _physical_memory() -> int:
    """Bytes of physical memory (no limit where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def _keyword_options(cls_name, options, excluded):
    """The keyword arguments of DIN(...) / BaseModel(...), checked against ModelConfig's fields."""
    for name in options:
        if name in excluded or name not in ModelConfig.__dataclass_fields__ or name in ("n_goods", "n_cates"):
            raise TypeError(f"{cls_name}() got an unexpected keyword argument {name!r}")
    return options


def _signature(excluded):
    """``(self, n_goods, n_cates, *, option=default, ...)`` from ModelConfig's fields, for help() and
    introspection: the defaults live in ModelConfig only."""
    P = inspect.Parameter
    params = [P("self", P.POSITIONAL_OR_KEYWORD), P("n_goods", P.POSITIONAL_OR_KEYWORD),
              P("n_cates", P.POSITIONAL_OR_KEYWORD)]
    params += [P(f.name, P.KEYWORD_ONLY, default=f.default) for f in dataclasses.fields(ModelConfig)
               if f.name not in excluded and f.name not in ("n_goods", "n_cates")]
    return inspect.Signature(params)


_BASE_EXCLUDED = frozenset({"model", "attention_units", "attention_activation", "attention_softmax",
                            "attention_split"})
_DIN_EXCLUDED = frozenset({"model", "pooling"})


class BaseModel(DeepInterestModel):
    """The paper's base model (Fig. 2, left): embeddings, sum (or mean) pooling, MLP.

    Keyword arguments: ``minidin.ModelConfig``'s fields (their defaults, allowed values and meaning are
    there) except the ``attention_*`` ones; ``pooling="sum"`` (paper) or ``"mean"`` (the official code's
    base model).
    """

    def __init__(self, n_goods, n_cates, **options):
        super().__init__(ModelConfig(model="base", n_goods=n_goods, n_cates=n_cates,
                                     **_keyword_options("BaseModel", options, _BASE_EXCLUDED)))


class DIN(DeepInterestModel):
    """Deep Interest Network (paper §4.3): attention-weighted pooling of the history.

    Keyword arguments: ``minidin.ModelConfig``'s fields (their defaults, allowed values and meaning are
    there): goods_dim, cate_dim, attention_units, hidden_units, activation, attention_activation (None
    follows ``activation``), attention_softmax, attention_split, dtype, seed, dice_momentum, dice_eps,
    emb_std, goods_bias.
    """

    def __init__(self, n_goods, n_cates, **options):
        super().__init__(ModelConfig(model="din", n_goods=n_goods, n_cates=n_cates,
                                     **_keyword_options("DIN", options, _DIN_EXCLUDED)))


BaseModel.__init__.__signature__ = _signature(_BASE_EXCLUDED)
DIN.__init__.__signature__ = _signature(_DIN_EXCLUDED)


def from_config(config: ModelConfig) -> DeepInterestModel:
    """The model a config describes, as ``DIN`` or ``BaseModel`` (so isinstance checks keep working)."""
    cls = DIN if config.model == "din" else BaseModel
    model = cls.__new__(cls)
    DeepInterestModel.__init__(model, config)
    return model
