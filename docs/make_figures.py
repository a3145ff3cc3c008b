"""Regenerate every figure in docs/figures from the code (needs the plot extra: pip install '.[plot]').

    python docs/make_figures.py [--out docs/figures] [--epochs 6]

- architecture.png: the paper's Fig. 2 as minidin runs it, BaseModel beside DIN, kernel names on the boxes
  and shapes on the arrows (drawn, not computed);
- dice_vs_prelu.png: Dice against PReLU (Fig. 3), with the batch mean and standard deviation marked;
- training_curves.png, attention_sample.png, embedding_map.png: from DIN-Dice trained on the default synthetic
  data with the default settings (seed 0): the curves with the run's settings and the selected epoch, one test
  sample's weights next to the true relevance (a sample whose history holds the candidate good), and the
  goods embeddings coloured by predicted CTR (Fig. 6).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from minidin import explain  # noqa: E402
from minidin.data import make_synthetic  # noqa: E402
from minidin.io import atomic_write  # noqa: E402
from minidin.plots import pyplot, plot_attention, plot_history  # noqa: E402
from minidin.train import TrainConfig, train  # noqa: E402


def _save(fig, path):
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))


def architecture(path):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 7.2))
    for ax, din in zip(axes, (False, True)):
        ax.set_xlim(0, 10), ax.set_ylim(0, 13), ax.axis("off")
        ax.set_title("DIN (paper Fig. 2, right)" if din else "BaseModel (paper Fig. 2, left)", fontsize=11)

        def box(x, y, w, h, text, colour="#dde8f5"):
            ax.add_patch(plt.Rectangle((x, y), w, h, facecolor=colour, edgecolor="k", lw=0.8))
            ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=7.5)

        def arrow(x0, y0, x1, y1, text=""):
            ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="->", lw=0.9))
            if text:
                ax.text((x0 + x1) / 2 + 0.1, (y0 + y1) / 2, text, fontsize=6.5, color="tab:blue")

        box(0.3, 0.3, 4.2, 1.0, "user history: goods + category ids\n(CSR: hist_offsets)", "#f3f3f3")
        box(5.5, 0.3, 4.2, 1.0, "candidate ad: goods + category id", "#f3f3f3")
        box(0.3, 2.0, 4.2, 1.0, "embedding_forward\ngoods_emb ‖ cate_emb")
        box(5.5, 2.0, 4.2, 1.0, "embedding_forward")
        arrow(2.4, 1.3, 2.4, 2.0), arrow(7.6, 1.3, 7.6, 2.0)
        if din:
            box(0.3, 3.8, 9.4, 1.6, "local activation unit: attention_split_forward\n"
                                    "[q, k, q−k, q⊙k]·W as q·(Wq+Wd) + [k, q⊙k]·[Wk−Wd; Wp]\n"
                                    "→ dense_forward + dice_forward (80, 40) → dense_forward → score",
                "#fbe3d6")
            arrow(2.4, 3.0, 2.4, 3.8, "hist_emb (N, D)"), arrow(7.6, 3.0, 7.6, 3.8, "cand_emb (B, D)")
            box(0.3, 6.1, 4.2, 1.0, "pooling_forward\nu = Σ_n w_n e_n  (Eq. 3)")
            arrow(2.4, 5.4, 2.4, 6.1, "weights w (N,)")
            ax.annotate("", (0.15, 6.6), (0.15, 2.5), arrowprops=dict(arrowstyle="->", lw=0.9,
                                                                      connectionstyle="arc3,rad=0"))
            ax.plot([0.3, 0.15], [2.5, 2.5], color="k", lw=0.9)
            ax.plot([0.15, 0.3], [6.6, 6.6], color="k", lw=0.9)
            ax.text(0.0, 4.6, "e_n", fontsize=6.5, color="tab:blue", rotation=90)
        else:
            box(0.3, 6.1, 4.2, 1.0, "pooling_forward\nsum pooling: w_n = 1")
            arrow(2.4, 3.0, 2.4, 6.1, "hist_emb (N, D)")
        box(0.3, 7.8, 9.4, 1.0, "interaction_forward: [u, q, u⊙q]")
        arrow(2.4, 7.1, 2.4, 7.8, "u (B, D)")
        arrow(7.6, 3.0 if not din else 5.4, 7.6, 7.8, "q (B, D)")
        box(0.3, 9.5, 9.4, 1.3, "MLP: dense_forward + dice_forward (200) → (80) → dense_forward (1)\n"
                                "(+ goods_bias_forward)")
        arrow(5.0, 8.8, 5.0, 9.5, "mlp_in (B, 3D)")
        box(2.8, 11.5, 4.4, 1.0, "bce_forward: mean BCE of σ(logit)", "#e4f2df")
        arrow(5.0, 10.8, 5.0, 11.5, "logits (B,)")
    fig.suptitle("minidin's forward, kernel by kernel (B samples, N behaviours, D = goods_dim + cate_dim); "
                 "inference runs it as one fused kernel", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def dice_vs_prelu(path):
    plt = pyplot()
    rng = np.random.default_rng(0)
    batch = rng.normal(1.0, 1.5, 400)  # one unit's pre-activations over a batch
    mean, std = batch.mean(), batch.std()
    s = np.linspace(-5, 6, 400)
    alpha = 0.25
    prelu = np.where(s > 0, s, alpha * s)
    p = 1 / (1 + np.exp(-(s - mean) / np.sqrt(std ** 2 + 1e-8)))
    dice = s * (alpha + (1 - alpha) * p)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.plot(s, prelu, label="PReLU (α = 0.25)")
    a.plot(s, dice, label="Dice (α = 0.25)")
    a.set_xlabel("s"), a.set_ylabel("f(s)")
    b.plot(s, (s > 0).astype(float), label="PReLU: a hard switch at 0")
    b.plot(s, p, label="Dice: p(s) = σ((s − E[s]) / √(Var[s] + ε))")
    b.set_xlabel("s"), b.set_ylabel("the switch p(s)")
    for ax in (a, b):
        ax.axvline(mean, color="tab:green", ls=":", lw=1.2, label=f"batch mean E[s] = {mean:.2f}")
        ax.axvspan(mean - std, mean + std, color="tab:green", alpha=0.08, label=f"± one std ({std:.2f})")
        ax.legend(fontsize=7)
    fig.suptitle("Dice against PReLU (paper Fig. 3): Dice switches smoothly, around the batch's own mean, "
                 "over a width set by its spread", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def trained_figures(out, epochs):
    data = make_synthetic()
    cfg = TrainConfig(epochs=epochs, patience=epochs, seed=0)
    summary, model = train(data, cfg, log=lambda *a: None, progress=None)
    plot_history(summary["history"], os.path.join(out, "training_curves.png"),
                 title=f"DIN (dice) on the default synthetic data: lr {cfg.lr} ×{cfg.lr_decay}/epoch, batch "
                       f"{cfg.batch_size}, reg {cfg.reg}, seed {cfg.seed}; best valid GAUC "
                       f"{summary['valid']['gauc']:.4f}", best_epoch=summary["best_epoch"])
    # a test sample whose history holds the candidate good, among several behaviours
    s = data.splits["test"]
    k = next(i for i in range(len(s)) if (lambda b: (b.hist_goods == b.cand_goods[0]).any() and b.size
                                          and len(b.hist_goods) >= 8)(data.batch("test", [i])))
    plot_attention(explain.sample_table(model, data, k), os.path.join(out, "attention_sample.png"))
    explain.embedding_map(model, data, k, os.path.join(out, "embedding_map.png"))
    return summary, k


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "figures"))
    ap.add_argument("--epochs", type=int, default=6)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    architecture(os.path.join(args.out, "architecture.png"))
    dice_vs_prelu(os.path.join(args.out, "dice_vs_prelu.png"))
    summary, k = trained_figures(args.out, args.epochs)
    print(f"wrote {args.out}: architecture, dice_vs_prelu, training_curves (best epoch {summary['best_epoch']}), "
          f"attention_sample (test sample {k}), embedding_map")


if __name__ == "__main__":
    main()
