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
    from .checkpoint import atomic_write

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
