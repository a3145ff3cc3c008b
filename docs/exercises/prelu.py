"""Exercise prelu: write the backward of PReLU. Check it: minidin exercise check prelu docs/exercises/prelu.py

forward: out[m, h] = x[m, h] if x[m, h] > 0 else alpha[h] * x[m, h]
"""
import numpy as np


def backward(dout, x, alpha):
    """dout (M, H): gradient of the output. Return {"x": (M, H), "alpha": (H,)}."""
    raise NotImplementedError("write dx and dalpha")
