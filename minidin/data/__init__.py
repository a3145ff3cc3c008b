"""Datasets: the compact per-user layout, the synthetic generator, loaders."""
from .dataset import SPLITS, Dataset, Split
from .synthetic import SYNTHETIC_TRAIN, SyntheticConfig, SyntheticTruth, make_synthetic

__all__ = ["Dataset", "Split", "SPLITS", "SYNTHETIC_TRAIN", "SyntheticConfig", "SyntheticTruth", "make_synthetic"]
