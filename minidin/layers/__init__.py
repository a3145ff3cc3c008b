"""The DIN layers, each a pair of pure ``@njit`` kernels ``<layer>_forward`` / ``<layer>_backward``.

Every kernel takes explicit arrays (outputs, then cached buffers, then inputs,
then parameters), compiles for float32 and float64 from one source, and its
backward *accumulates* (``+=``) into the ``d*`` buffers it is given.
"""
from .attention import (
    attention_input_backward,
    attention_input_forward,
    attention_softmax_backward,
    attention_softmax_forward,
    attention_split_backward,
    attention_split_forward,
)
from .bag import embedding_bag_backward, embedding_bag_forward, gather_sets
from .dense import dense_backward, dense_forward
from .dice import dice_backward, dice_forward
from .embedding import embedding_backward, embedding_forward, goods_bias_backward, goods_bias_forward, unique_rows
from .loss import bce_backward, bce_forward
from .pooling import interaction_backward, interaction_forward, pooling_backward, pooling_forward
from .prelu import prelu_backward, prelu_forward
from .sigmoid import sigmoid_backward, sigmoid_forward

__all__ = [
    "attention_input_forward", "attention_input_backward",
    "attention_softmax_forward", "attention_softmax_backward",
    "attention_split_forward", "attention_split_backward",
    "dense_forward", "dense_backward",
    "dice_forward", "dice_backward",
    "embedding_forward", "embedding_backward", "unique_rows",
    "embedding_bag_forward", "embedding_bag_backward", "gather_sets",
    "goods_bias_forward", "goods_bias_backward",
    "bce_forward", "bce_backward",
    "pooling_forward", "pooling_backward",
    "interaction_forward", "interaction_backward",
    "prelu_forward", "prelu_backward",
    "sigmoid_forward", "sigmoid_backward",
]
