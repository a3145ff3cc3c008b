"""The same DIN in PyTorch, for the side-by-side benchmark (``minidin bench``; optional extra ``compare``).

Torch's best CPU layout for this model: histories packed (only real behaviours,
no padding), pooling by ``index_add_``, embeddings with ``sparse=True`` gradients and
``torch.optim.Adagrad`` (which takes sparse gradients; it has no weight decay
for them, so the comparison runs ``reg="none"``). Weights are stored ``(in, out)``
as in minidin, so ``load_from`` copies them one to one, and Dice is minidin's:
batch mean and biased variance over the rows present in training, running
averages at inference, ε = 1e-8.

Two twins (``TorchDIN(model, split=...)``), the same function and parameters:

- ``split=True``, the like-for-like one: minidin's split first attention layer, ``q·(Wq+Wd)`` once per sample
  and ``[k, q⊙k]·[Wk−Wd; Wp]`` per behaviour (an exact reparametrisation of ``[q, k, q−k, q⊙k]·W``, computed
  in autograd from the same ``att.0.W``, so its gradient is the full layer's);
- ``split=False``: the attention MLP on the (N, 4D) rows ``[q, k, q−k, q⊙k]``, twice the multiply-adds of
  that layer, as the official code and most implementations build it.

Nothing in minidin imports this module unless torch is installed and a
comparison is asked for.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

# torch's sparse Adagrad asks for an explicit opt-in or -out of its sparse invariant checks on every step
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")


def _dice(z, alpha, rm, rv, training, momentum, eps):
    if training:
        mean = z.mean(0)
        var = z.var(0, unbiased=False)
        if momentum:
            with torch.no_grad():
                rm.mul_(1 - momentum).add_(momentum * mean)
                rv.mul_(1 - momentum).add_(momentum * var)
    else:
        mean, var = rm, rv
    p = torch.sigmoid((z - mean) / torch.sqrt(var + eps))
    return p * z + (1 - p) * alpha * z


class TorchDIN(nn.Module):
    """minidin.DIN (sum pooling of attention scores, no softmax) with the same parameter layout."""

    def __init__(self, model, split=True):
        super().__init__()
        self.split = split
        if model.attention_softmax or model.goods_bias:
            raise ValueError("model: the torch twin covers attention_softmax=False, goods_bias=False")
        self.cfg = model
        self.goods = nn.Embedding(model.n_goods, model.goods_dim, sparse=True)
        self.cates = nn.Embedding(model.n_cates, model.cate_dim, sparse=True)
        self.dense = nn.ParameterDict()
        for name in model.dense_names:
            self.dense[name.replace(".", "_")] = nn.Parameter(torch.zeros(model.params[name].shape))
        self.stats = {k: torch.zeros(v.shape) for k, v in model.state.items()}
        self.load_from(model)

    def load_from(self, model):
        """Copy minidin's parameters and Dice running averages (float32)."""
        with torch.no_grad():
            self.goods.weight.copy_(torch.from_numpy(np.asarray(model.params["goods_emb"], np.float32)))
            self.cates.weight.copy_(torch.from_numpy(np.asarray(model.params["cate_emb"], np.float32)))
            for name in model.dense_names:
                self.dense[name.replace(".", "_")].copy_(torch.from_numpy(np.asarray(model.params[name], np.float32)))
            for k, v in model.state.items():
                self.stats[k] = torch.from_numpy(np.asarray(v, np.float32)).clone()

    def _p(self, name):
        return self.dense[name.replace(".", "_")]

    def _mlp(self, prefix, x, units, act, training, momentum, z0=None):
        """The MLP ``prefix`` on ``x`` (z0: its first layer's pre-activation, computed by the caller)."""
        for i in range(len(units)):
            z = z0 if i == 0 and z0 is not None else x @ self._p(f"{prefix}.{i}.W") + self._p(f"{prefix}.{i}.b")
            if act == "dice":
                x = _dice(z, self._p(f"{prefix}.{i}.alpha"), self.stats[f"{prefix}.{i}.running_mean"],
                          self.stats[f"{prefix}.{i}.running_var"], training, momentum, self.cfg.dice_eps)
            elif act == "prelu":
                x = torch.where(z > 0, z, self._p(f"{prefix}.{i}.alpha") * z)
            else:
                x = torch.sigmoid(z)
        return (x @ self._p(f"{prefix}.out.W") + self._p(f"{prefix}.out.b"))[:, 0]

    def forward(self, t, training=True, momentum=0.1):
        """Logits (B,) of a batch converted by ``tensors``."""
        hist = torch.cat([self.goods(t["hist_goods"]), self.cates(t["hist_cates"])], 1)
        cand = torch.cat([self.goods(t["cand_goods"]), self.cates(t["cand_cates"])], 1)
        return self.dense_part(hist, cand, t["seg"], training, momentum)

    def dense_part(self, hist, cand, seg, training=True, momentum=0.1):
        """Everything after the (sparse) embedding lookups: what ``torch.compile`` compiles."""
        m = self.cfg
        q = cand[seg]
        if self.split:  # [q, k, q−k, q⊙k]·W = q·(Wq+Wd) + [k, q⊙k]·[Wk−Wd; Wp]
            W, D = self._p("att.0.W"), cand.shape[1]
            Wq, Wk, Wd, Wp = W[:D], W[D:2 * D], W[2 * D:3 * D], W[3 * D:]
            z0 = ((cand @ (Wq + Wd))[seg] + torch.cat([hist, q * hist], 1) @ torch.cat([Wk - Wd, Wp], 0)
                  + self._p("att.0.b"))
            w = self._mlp("att", None, m.attention_units, m.attention_activation, training, momentum, z0=z0)
        else:
            att_in = torch.cat([q, hist, q - hist, q * hist], 1)
            w = self._mlp("att", att_in, m.attention_units, m.attention_activation, training, momentum)
        interest = torch.zeros_like(cand).index_add_(0, seg, w[:, None] * hist)
        x = torch.cat([interest, cand, interest * cand], 1)
        return self._mlp("mlp", x, m.hidden_units, m.activation, training, momentum)


def tensors(batch):
    """A minidin.Batch as torch tensors (done once, outside the timed loop, as minidin's batches are)."""
    lengths = np.diff(batch.hist_offsets)
    return {"hist_goods": torch.from_numpy(batch.hist_goods), "hist_cates": torch.from_numpy(batch.hist_cates),
            "cand_goods": torch.from_numpy(batch.cand_goods), "cand_cates": torch.from_numpy(batch.cand_cates),
            "seg": torch.from_numpy(np.repeat(np.arange(batch.size), lengths)),
            "labels": torch.from_numpy(np.asarray(batch.labels, np.float32))}


def agreement(model, batch, split=True):
    """Loss and every gradient of minidin vs the torch twin with the same weights, in float32.

    Returns {"loss": |Δ|/|loss|, "grads": max over parameters of max|Δ| / max|g|}; no state is updated.
    """
    tw = TorchDIN(model, split)
    t = tensors(batch)
    loss_t = nn.functional.binary_cross_entropy_with_logits(tw(t, training=True, momentum=0.0), t["labels"])
    loss_t.backward()
    loss_m, g = model.loss_and_grad(batch, update_stats=False)
    worst = 0.0
    for name, gm in g.items():
        gm = gm.to_dense() if hasattr(gm, "to_dense") else gm
        if name == "goods_emb":
            gt = tw.goods.weight.grad.to_dense()
        elif name == "cate_emb":
            gt = tw.cates.weight.grad.to_dense()
        else:
            gt = tw._p(name).grad
        gt = gt.numpy()
        scale = max(float(np.abs(gt).max()), 1e-12)
        worst = max(worst, float(np.abs(gt - gm).max()) / scale)
    return {"loss": abs(loss_t.item() - loss_m) / abs(loss_m), "grads": worst}


def gemm_gflops(shape, repeats=5):
    """torch's own float32 GEMM rate (GFLOP/s) on an (M, K) @ (K, N) product of ``shape``, at torch's current
    thread count, best of ``repeats``: the BLAS the twins' dense layers run on (MKL in the x86 CPU wheel)."""
    from .bench import _best_seconds

    M, K, N = shape
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(M, K, generator=g), torch.rand(K, N, generator=g)
    out = torch.empty(M, N)
    return 2.0 * M * K * N / _best_seconds(lambda: torch.mm(a, b, out=out), repeats) / 1e9


def train_step_fn(model, lr, initial_accumulator_value, split=True, compile=False):
    """Closures doing one torch training step (forward, backward, sparse Adagrad) and one inference on converted
    tensors; ``compile``: everything after the embedding lookups through ``torch.compile(dynamic=True)``
    (compiled on the first calls, outside the timing)."""
    tw = TorchDIN(model, split)
    if compile:  # the dense part only: inductor does not take the sparse-gradient embedding lookups
        tw.dense_part = torch.compile(tw.dense_part, dynamic=True)
    opt_sparse = torch.optim.Adagrad([tw.goods.weight, tw.cates.weight], lr=lr,
                                     initial_accumulator_value=initial_accumulator_value, eps=1e-10)
    opt_dense = torch.optim.Adagrad(list(tw.dense.parameters()), lr=lr,
                                    initial_accumulator_value=initial_accumulator_value, eps=1e-10)

    def step(t):
        opt_sparse.zero_grad(set_to_none=True)
        opt_dense.zero_grad(set_to_none=True)
        loss = nn.functional.binary_cross_entropy_with_logits(tw(t, training=True), t["labels"])
        loss.backward()
        opt_sparse.step()
        opt_dense.step()

    def infer(t):
        with torch.inference_mode():
            return torch.sigmoid(tw(t, training=False))

    return step, infer
