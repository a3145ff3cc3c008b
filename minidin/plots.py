"""Figures (optional extra ``plot``: ``pip install 'minidin[plot]'``, which brings matplotlib)."""
from __future__ import annotations


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("plot: matplotlib is not installed; install the extra with "
                         "pip install 'minidin[plot]'") from None
    return plt


def plot_history(history, path):
    """Train/validation loss and validation/test AUC per epoch, as a PNG."""
    plt = _pyplot()
    from .io import atomic_write

    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(ep, [h["train_loss"] for h in history], "o-", label="train loss")
    a.plot(ep, [h["valid"]["logloss"] for h in history], "s-", label="valid logloss")
    a.set_xlabel("epoch"), a.set_ylabel("binary cross-entropy"), a.legend()
    for key, style in (("auc", "o-"), ("gauc", "s--")):
        b.plot(ep, [h["valid"][key] for h in history], style, label=f"valid {key.upper()}")
    b.set_xlabel("epoch"), b.set_ylabel("AUC"), b.legend()
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def plot_attention(info, path):
    """Bar chart of one sample's attention weights over its history, in time order (paper Fig. 5)."""
    plt = _pyplot()
    from .io import atomic_write

    rows = info["history"]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(rows) + 2), 3.6))
    pos = [r["position"] for r in rows]
    same = [r["cate"] == info["candidate_cate"] for r in rows]
    colours = ["tab:red" if s else "tab:gray" for s in same]
    ax.bar(pos, [r["weight"] for r in rows], color=colours)
    ax.set_xticks(pos, [f"{r['goods']}\nc{r['cate']}" for r in rows], fontsize=7)
    ax.set_xlabel("behaviour (goods id / category), oldest first")
    ax.set_ylabel("attention weight")
    if rows and "true_relevance" in rows[0]:
        ax2 = ax.twinx()
        ax2.plot(pos, [r["true_relevance"] for r in rows], "k.", label="true relevance")
        ax2.set_ylabel("true relevance (synthetic)")
        ax2.set_ylim(-0.1, 2.5)
        ax2.legend(loc="upper right", fontsize=8)
    ax.set_title(f"test sample {info['sample']}: candidate goods {info['candidate_goods']} (category "
                 f"c{info['candidate_cate']}), predicted CTR {info['predicted']:.2f}\n"
                 f"red bars: behaviours in the candidate's category", fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def plot_embedding_map(xy, ctr, good_cate, history_cates, cand_cate, path, title=""):
    """Scatter of 2-D goods embeddings coloured by predicted CTR; the history's categories get markers."""
    plt = _pyplot()
    import numpy as np

    from .io import atomic_write

    fig, ax = plt.subplots(figsize=(7, 5.5))
    markers = ["o", "s", "^", "D", "v", "P", "X", "*"]
    shown = [c for c in sorted(history_cates | {cand_cate})][: len(markers)]
    other = ~np.isin(good_cate, shown)
    sc = ax.scatter(xy[other, 0], xy[other, 1], c=ctr[other], cmap="viridis", vmin=0, vmax=1, s=8, marker=".",
                    alpha=0.6, label="other categories")
    for m, c in zip(markers, shown):
        sel = good_cate == c
        ax.scatter(xy[sel, 0], xy[sel, 1], c=ctr[sel], cmap="viridis", vmin=0, vmax=1, s=36, marker=m,
                   edgecolors="k", linewidths=0.4,
                   label=f"category {c}" + (" (candidate's)" if c == cand_cate else " (in history)"))
    fig.colorbar(sc, ax=ax, label="predicted CTR as the candidate")
    ax.legend(fontsize=7, loc="best")
    ax.set_xlabel("PC 1"), ax.set_ylabel("PC 2")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
