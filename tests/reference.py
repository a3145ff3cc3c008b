"""Plain NumPy references for every forward kernel and for a whole DIN / BaseModel forward.

Written independently of the kernels (vectorised, no loops over rows where
NumPy can avoid them) so that a kernel bug cannot hide in a shared helper.
"""
import numpy as np


def segments(offsets):
    """(N,) sample index of every behaviour."""
    return np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))


def embedding(goods_ids, cate_ids, goods_table, cate_table):
    return np.concatenate([goods_table[goods_ids], cate_table[cate_ids]], axis=1)


def attention_input(cand_emb, hist_emb, offsets):
    q = cand_emb[segments(offsets)]
    k = hist_emb
    return np.concatenate([q, k, q - k, q * k], axis=1)


def attention_softmax(scores, offsets, scale):
    out = np.zeros_like(scores)
    for b in range(len(offsets) - 1):
        s = scale * scores[offsets[b]:offsets[b + 1]]
        if s.size:
            e = np.exp(s - s.max())
            out[offsets[b]:offsets[b + 1]] = e / e.sum()
    return out


def pooling(weights, hist_emb, offsets, B):
    out = np.zeros((B, hist_emb.shape[1]), dtype=hist_emb.dtype)
    np.add.at(out, segments(offsets), weights[:, None] * hist_emb)
    return out


def interaction(u, i):
    return np.concatenate([u, i, u * i], axis=1)


def dense(x, W, b):
    return x @ W + b


def prelu(x, alpha):
    return np.where(x > 0, x, alpha * x)


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def dice(x, alpha, running_mean, running_var, training, eps=1e-8):
    if training:
        mean = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
        var = x.var(axis=0) if len(x) else np.zeros(x.shape[1])
    else:
        mean, var = running_mean, running_var
    p = sigmoid((x - mean) / np.sqrt(var + eps))
    return x * (alpha + (1 - alpha) * p), mean, var


def bce(logits, labels):
    z = logits.astype(np.float64)
    return float(np.mean(np.logaddexp(0.0, z) - z * labels))


def _mlp(prefix, x, units, act, P, S, training):
    for i in range(len(units)):
        z = dense(x, P[f"{prefix}.{i}.W"], P[f"{prefix}.{i}.b"])
        if act == "prelu":
            x = prelu(z, P[f"{prefix}.{i}.alpha"])
        elif act == "sigmoid":
            x = sigmoid(z)
        else:
            x = dice(z, P[f"{prefix}.{i}.alpha"], S[f"{prefix}.{i}.running_mean"],
                     S[f"{prefix}.{i}.running_var"], training)[0]
    return dense(x, P[f"{prefix}.out.W"], P[f"{prefix}.out.b"])[:, 0]


def model_logits(model, batch, training):
    """Whole-model forward in NumPy, reading the model's parameters and running averages."""
    P = {k: v.astype(np.float64) for k, v in model.params.items()}
    S = {k: v.astype(np.float64) for k, v in model.state.items()}
    off = batch.hist_offsets
    hist = embedding(batch.hist_goods, batch.hist_cates, P["goods_emb"], P["cate_emb"])
    cand = embedding(batch.cand_goods, batch.cand_cates, P["goods_emb"], P["cate_emb"])
    if model.uses_attention:
        scores = _mlp("att", attention_input(cand, hist, off), model.attention_units,
                      model.attention_activation, P, S, training)
        w = attention_softmax(scores, off, 1 / np.sqrt(model.D)) if model.attention_softmax else scores
    elif model.pooling == "sum":
        w = np.ones(len(hist))
    else:
        lens = np.diff(off)
        w = np.repeat(1.0 / np.maximum(lens, 1), lens)
    u = pooling(w, hist, off, batch.size)
    z = _mlp("mlp", interaction(u, cand), model.hidden_units, model.activation, P, S, training)
    return z + P["goods_bias"][batch.cand_goods, 0] if model.goods_bias else z
