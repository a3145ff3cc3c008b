"""DIN in one screen: the whole model, forward and backward, in plain NumPy (float64, no Numba, no speed paths).

This is what the kernels in ``minidin/layers`` compute, written the clear way and independently of them: the
tests use it as their oracle (every kernel's forward, the whole model's logits and gradients), and its own
backward is checked against finite differences. Read it top to bottom: forward, then backward in reverse.

    loss, grads = reference.loss_and_grad(model, batch)   # the model's parameters, Dice in training mode

Names follow docs/index.md: B samples, N behaviours, D embedding width, q the candidate, k a behaviour,
w the pooling weights, u the pooled interest. ``grads`` maps every parameter name to a dense array.
"""
import numpy as np


# ---------------------------------------------------------------------------- layers, forward
def segments(offsets):
    """(N,) the sample each behaviour belongs to."""
    return np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))


def embedding(goods_ids, cate_ids, goods_table, cate_table):
    """[goods_emb[g], cate_emb[c]] per id pair: (n, D)."""
    return np.concatenate([goods_table[goods_ids], cate_table[cate_ids]], axis=1)


def embedding_bag(ids, offsets, table, mean):
    """Sum (or mean) of each row's set of table rows: (M, W); an empty set gives zeros."""
    out = np.zeros((len(offsets) - 1, table.shape[1]))
    for m in range(len(offsets) - 1):
        rows = table[ids[offsets[m]:offsets[m + 1]]]
        if rows.shape[0]:
            out[m] = rows.mean(axis=0) if mean else rows.sum(axis=0)
    return out


def attention_input(cand_emb, hist_emb, offsets):
    """[q, k, q − k, q ⊙ k] per behaviour: (N, 4D)."""
    q = cand_emb[segments(offsets)]
    k = hist_emb
    return np.concatenate([q, k, q - k, q * k], axis=1)


def attention_softmax(scores, offsets, scale):
    """softmax(scale · scores) within each history (the official code's option)."""
    out = np.zeros_like(scores)
    for b in range(len(offsets) - 1):
        s = scale * scores[offsets[b]:offsets[b + 1]]
        if s.size:
            e = np.exp(s - s.max())
            out[offsets[b]:offsets[b + 1]] = e / e.sum()
    return out


def pooling(weights, hist_emb, offsets, B):
    """u_b = Σ_{n in b} w_n e_n (Eq. 3): (B, D)."""
    out = np.zeros((B, hist_emb.shape[1]), dtype=hist_emb.dtype)
    np.add.at(out, segments(offsets), weights[:, None] * hist_emb)
    return out


def interaction(u, q):
    """[u, q, u ⊙ q]: (B, 3D)."""
    return np.concatenate([u, q, u * q], axis=1)


def dense(x, W, b):
    return x @ W + b


def prelu(x, alpha):
    return np.where(x > 0, x, alpha * x)


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def dice(x, alpha, running_mean, running_var, training, eps=1e-8):
    """Eq. (9): x (α + (1 − α) σ(x̂)), x̂ = (x − mean) / sqrt(var + ε); batch statistics in training."""
    if training:
        mean = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
        var = x.var(axis=0) if len(x) else np.zeros(x.shape[1])
    else:
        mean, var = running_mean, running_var
    p = sigmoid((x - mean) / np.sqrt(var + eps))
    return x * (alpha + (1 - alpha) * p), mean, var


def bce(logits, labels):
    """Mean binary cross-entropy of sigmoid(logits) (Eq. 2), computed stably."""
    z = logits.astype(np.float64)
    return float(np.mean(np.logaddexp(0.0, z) - z * labels))


# ---------------------------------------------------------------------------- the model, forward
def _mlp(prefix, x, units, act, P, S, training, eps, tape=None):
    """Hidden layers (dense, activation), then the one-unit output layer: (M,)."""
    for i in range(len(units)):
        z = dense(x, P[f"{prefix}.{i}.W"], P[f"{prefix}.{i}.b"])
        if act == "prelu":
            a = prelu(z, P[f"{prefix}.{i}.alpha"])
        elif act == "sigmoid":
            a = sigmoid(z)
        else:
            a = dice(z, P[f"{prefix}.{i}.alpha"], S[f"{prefix}.{i}.running_mean"], S[f"{prefix}.{i}.running_var"],
                     training, eps)[0]
        if tape is not None:
            tape.append((f"{prefix}.{i}", x, z, a))
        x = a
    if tape is not None:
        tape.append((f"{prefix}.out", x, None, None))
    return dense(x, P[f"{prefix}.out.W"], P[f"{prefix}.out.b"])[:, 0]


def _forward(model, batch, training, P, S, tape=None):
    off = batch.hist_offsets
    hist = embedding(batch.hist_goods, batch.hist_cates, P["goods_emb"], P["cate_emb"])
    cand = embedding(batch.cand_goods, batch.cand_cates, P["goods_emb"], P["cate_emb"])
    eps, scores = model.dice_eps, None
    if model.uses_attention:
        att = [] if tape is not None else None
        scores = _mlp("att", attention_input(cand, hist, off), model.attention_units, model.attention_activation,
                      P, S, training, eps, att)
        w = attention_softmax(scores, off, 1 / np.sqrt(model.D)) if model.attention_softmax else scores
    elif model.pooling == "sum":
        w, att = np.ones(len(hist)), None
    else:
        lens = np.diff(off)
        w, att = np.repeat(1.0 / np.maximum(lens, 1), lens), None
    u = pooling(w, hist, off, batch.size)
    mlp = [] if tape is not None else None
    z = _mlp("mlp", interaction(u, cand), model.hidden_units, model.activation, P, S, training, eps, mlp)
    if model.goods_bias:
        z = z + P["goods_bias"][batch.cand_goods, 0]
    if tape is not None:
        tape.update(hist=hist, cand=cand, att=att, scores=scores, w=w, u=u, mlp=mlp)
    return z


def _arrays(model):
    P = {k: v.astype(np.float64) for k, v in model.params.items()}
    S = {k: v.astype(np.float64) for k, v in model.state.items()}
    return P, S


def model_logits(model, batch, training):
    """Whole-model forward, reading the model's parameters and running averages: (B,) logits."""
    return _forward(model, batch, training, *_arrays(model))


# ---------------------------------------------------------------------------- the model, backward
def _mlp_backward(dout, tape, act, P, G, eps):
    """Reverse of ``_mlp``: fills G[prefix.*] and returns the gradient of the MLP's input."""
    name, x, _, _ = tape[-1]
    d = dout[:, None]
    G[f"{name}.W"], G[f"{name}.b"] = x.T @ d, d.sum(axis=0)
    da = d @ P[f"{name}.W"].T
    for name, x, z, a in reversed(tape[:-1]):
        if act == "prelu":
            alpha = P[f"{name}.alpha"]
            G[f"{name}.alpha"] = (da * np.where(z > 0, 0.0, z)).sum(axis=0)
            dz = da * np.where(z > 0, 1.0, alpha)
        elif act == "sigmoid":
            dz = da * a * (1 - a)
        else:  # Dice: through p = σ(x̂), and in training through the batch mean and variance
            alpha = P[f"{name}.alpha"]
            mean = z.mean(axis=0) if len(z) else np.zeros(z.shape[1])  # batch statistics (training mode)
            var = z.var(axis=0) if len(z) else np.zeros(z.shape[1])
            r = 1 / np.sqrt(var + eps)
            xhat = (z - mean) * r
            p = sigmoid(xhat)
            G[f"{name}.alpha"] = (da * z * (1 - p)).sum(axis=0)
            dxhat = da * z * (1 - alpha) * p * (1 - p)
            m1 = dxhat.mean(axis=0) if len(z) else 0.0
            m2 = (dxhat * xhat).mean(axis=0) if len(z) else 0.0
            dz = da * (alpha + (1 - alpha) * p) + r * (dxhat - m1 - xhat * m2)
        G[f"{name}.W"], G[f"{name}.b"] = x.T @ dz, dz.sum(axis=0)
        da = dz @ P[f"{name}.W"].T
    return da


def loss_and_grad(model, batch):
    """Training-mode loss and the gradient of every parameter (dense arrays), in float64. Dice uses batch
    statistics; nothing on the model changes."""
    P, S = _arrays(model)
    tape = {}
    z = _forward(model, batch, True, P, S, tape)
    y = batch.labels.astype(np.float64)
    loss = bce(z, y)
    G = {}
    B, D, off, seg = batch.size, model.D, batch.hist_offsets, segments(batch.hist_offsets)
    dz = (sigmoid(z) - y) / B  # d mean-BCE / d logit
    if model.goods_bias:
        G["goods_bias"] = np.zeros_like(P["goods_bias"])
        np.add.at(G["goods_bias"][:, 0], batch.cand_goods, dz)
    dx = _mlp_backward(dz, tape["mlp"], model.activation, P, G, model.dice_eps)
    u, cand, hist, w = tape["u"], tape["cand"], tape["hist"], tape["w"]
    du = dx[:, :D] + dx[:, 2 * D:] * cand  # x = [u, q, u ⊙ q]
    dcand = dx[:, D:2 * D] + dx[:, 2 * D:] * u
    dw = (du[seg] * hist).sum(axis=1)  # u_b = Σ w_n e_n
    dhist = w[:, None] * du[seg]
    if model.uses_attention:
        if model.attention_softmax:  # w = softmax(scale · s) per history
            scale, ds = 1 / np.sqrt(D), np.zeros_like(dw)
            for b in range(B):
                lo, hi = off[b], off[b + 1]
                ds[lo:hi] = scale * w[lo:hi] * (dw[lo:hi] - np.dot(w[lo:hi], dw[lo:hi]))
        else:
            ds = dw
        datt = _mlp_backward(ds, tape["att"], model.attention_activation, P, G, model.dice_eps)
        q, k = cand[seg], hist
        g0, g1, g2, g3 = (datt[:, j * D:(j + 1) * D] for j in range(4))  # input [q, k, q − k, q ⊙ k]
        np.add.at(dcand, seg, g0 + g2 + g3 * k)
        dhist += g1 - g2 + g3 * q
    Dg = model.goods_dim
    for table, ids_h, ids_c, cols in (("goods_emb", batch.hist_goods, batch.cand_goods, slice(0, Dg)),
                                      ("cate_emb", batch.hist_cates, batch.cand_cates, slice(Dg, D))):
        G[table] = np.zeros_like(P[table])
        np.add.at(G[table], ids_h, dhist[:, cols])
        np.add.at(G[table], ids_c, dcand[:, cols])
    return loss, {name: G[name] for name in model.params}
