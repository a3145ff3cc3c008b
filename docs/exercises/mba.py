"""Exercise mba: write the gradient of one batch's mini-batch aware (MBA) penalty.
Check it: minidin exercise check mba docs/exercises/mba.py

forward: penalty = sum over j in rows of lam / (2 * counts[j]) * ||table[j]||^2         (shape (1,))
(rows: the ids present in the batch, each once; counts[j]: training samples that contain id j)
"""
import numpy as np


def backward(dout, table, rows, counts, lam):
    """dout (1,). Return {"table": (V, D)}: zero on every row the batch does not contain."""
    raise NotImplementedError("write dtable")
