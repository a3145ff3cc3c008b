"""Mean binary cross-entropy on logits (paper Eq. 2 with a sigmoid output).

    L = −(1/B) Σ_b [ y_b log σ(z_b) + (1 − y_b) log(1 − σ(z_b)) ]
      =  (1/B) Σ_b [ max(z_b, 0) − z_b y_b + log(1 + exp(−|z_b|)) ]

The second form never overflows, so the loss is exact for |z| up to 1e4 and
beyond. Deviation: the paper writes a 2-way softmax output; a 1-logit sigmoid is
the same model with one fewer redundant logit (and is what the official code uses).

Docs: docs/layers/loss.md
"""
import numpy as np
from numba import njit

from .sigmoid import sigmoid_exact


@njit(cache=True)
def bce_forward(logits, labels):
    """Mean BCE with logits.

    logits: (B,) float, z
    labels: (B,) float, y in {0, 1}
    returns: float, L (a 0-d scalar of logits' dtype)
    Docs: docs/layers/loss.md
    """
    B = logits.shape[0]
    total = 0.0
    for b in range(B):
        z = logits[b]
        total += max(z, 0.0) - z * labels[b] + np.log1p(np.exp(-abs(z)))
    return total / B


@njit(cache=True)
def bce_backward(dlogits, logits, labels, dloss):
    """Backward of ``bce_forward``; accumulates into dlogits.

    dlogits: (B,) float, accumulates
    dloss:   float, upstream gradient of L (1 for the training loss)

    forward was: L = (1/B) Σ_b [max(z,0) − z y + log(1 + e^{−|z|})]
    so now:      dz_b += dloss · (σ(z_b) − y_b) / B
    Docs: docs/layers/loss.md
    """
    B = logits.shape[0]
    for b in range(B):
        dlogits[b] += dloss * (sigmoid_exact(logits[b]) - labels[b]) / B
