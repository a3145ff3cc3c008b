"""Figures (optional extra ``plot``: ``pip install 'minidin[plot]'``, which brings matplotlib)."""
from __future__ import annotations


def pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("plot: matplotlib is not installed; install the extra with "
                         "pip install 'minidin[plot]'") from None
    return plt


def plot_history(history, path, title=None, best_epoch=None):
    """Train/validation loss and validation AUC/GAUC per epoch, as a PNG; ``title`` (the run's settings) on
    top, and the epoch selected on validation GAUC marked."""
    plt = pyplot()
    from .io import atomic_write

    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.8))
    a.plot(ep, [h["train_loss"] for h in history], "o-", label="train loss")
    a.plot(ep, [h["valid"]["logloss"] for h in history], "s-", label="valid logloss")
    a.set_xlabel("epoch"), a.set_ylabel("binary cross-entropy")
    for key, style in (("auc", "o-"), ("gauc", "s--")):
        b.plot(ep, [h["valid"][key] for h in history], style, label=f"valid {key.upper()}")
    b.set_xlabel("epoch"), b.set_ylabel("AUC")
    if best_epoch is not None:
        for ax in (a, b):
            ax.axvline(best_epoch, color="tab:green", ls=":", lw=1.5, label=f"selected: epoch {best_epoch}")
    a.legend(fontsize=8), b.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def plot_attention(info, path):
    """One sample's attention weights over its history, in time order (paper Fig. 5): one axis for the weight;
    on synthetic data a marker above each bar gives the behaviour's true relevance."""
    plt = pyplot()
    from .io import atomic_write

    rows = info["history"]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(rows) + 2.5), 3.8))
    pos = [r["position"] for r in rows]
    weights = [r["weight"] for r in rows]
    same = [r["cate"] == info["candidate_cate"] for r in rows]
    ax.bar(pos, weights, color=["tab:red" if s else "tab:gray" for s in same])
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(pos, [f"{r['goods']}\nc{r['cate']}" for r in rows], fontsize=7)
    ax.set_xlabel("behaviour (goods id / category), oldest first")
    ax.set_ylabel("attention weight")
    if rows and "true_relevance" in rows[0]:
        top = max(max(weights), 0) * 1.08 + 0.05
        for rel, marker, label in ((2, "*", "the candidate good itself"), (1, "^", "same category")):
            xs = [p for p, r in zip(pos, rows) if r["true_relevance"] == rel]
            if xs:
                ax.plot(xs, [top] * len(xs), marker, color="k", ms=9 if rel == 2 else 6, ls="none",
                        label=f"true relevance {rel}: {label}")
        ax.set_ylim(min(0, min(weights)) * 1.1, top * 1.12)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", fontsize=7)
    ax.set_title(f"test sample {info['sample']}: candidate goods {info['candidate_goods']} (category "
                 f"c{info['candidate_cate']}), predicted CTR {info['predicted']:.2f}; sum of weights "
                 f"{sum(weights):.2f}\nred bars: behaviours in the candidate's category", fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def plot_embedding_map(xy, ctr, good_cate, history_cates, cand_cate, path, title=""):
    """Scatter of 2-D goods embeddings coloured by predicted CTR; the history's categories get markers."""
    plt = pyplot()
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
