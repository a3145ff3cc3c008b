"""Exercise attention_input: write the backward of the local activation unit's input.
Check it: minidin exercise check attention_input docs/exercises/attention_input.py

forward: for behaviour n of sample b, with q = cand[b] and k = hist[n]:
         out[n] = [q, k, q - k, q * k]                                                  (N, 4D)
"""
import numpy as np


def backward(dout, cand, hist, offsets):
    """dout (N, 4D). Return {"cand": (B, D), "hist": (N, D)}: q is shared by all of its sample's behaviours."""
    raise NotImplementedError("write dcand and dhist")
