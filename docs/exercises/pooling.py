"""Exercise pooling: write the backward of attention-weighted pooling over ragged histories.
Check it: minidin exercise check pooling docs/exercises/pooling.py

forward: out[b] = sum over n in [offsets[b], offsets[b+1]) of weights[n] * hist[n]      (B, D)
"""
import numpy as np


def backward(dout, weights, hist, offsets):
    """dout (B, D). Return {"weights": (N,), "hist": (N, D)}."""
    raise NotImplementedError("write dweights and dhist")
