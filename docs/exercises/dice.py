"""Exercise dice: write the backward of Dice in training mode, through the batch mean and variance.
Check it: minidin exercise check dice docs/exercises/dice.py

forward (per column h, over the M rows, eps = 1e-8):
    mean = x.mean(axis=0);  var = x.var(axis=0);  r = 1 / sqrt(var + eps)
    xhat = (x - mean) * r;  p = sigmoid(xhat);    out = x * (alpha + (1 - alpha) * p)
"""
import numpy as np


def backward(dout, x, alpha):
    """dout (M, H). Return {"x": (M, H), "alpha": (H,)}. Every row's x moves the mean and the variance."""
    raise NotImplementedError("write dx and dalpha")
