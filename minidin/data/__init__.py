"""Datasets: the compact per-user layout, the synthetic generator, loaders."""
from .dataset import SPLITS, Dataset, Split
from ..config import SYNTHETIC_TRAIN  # the synthetic protocol's training settings (declared with the others)
from .synthetic import SyntheticConfig, SyntheticTruth, make_synthetic

__all__ = ["Dataset", "Split", "SPLITS", "SYNTHETIC_TRAIN", "SyntheticConfig", "SyntheticTruth", "make_synthetic"]
