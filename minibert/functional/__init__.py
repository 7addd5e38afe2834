"""Pure forward functions, each the first half of a forward/backward pair.

Every `<op>_forward` returns `(out, cache)`: the cache holds exactly what the backward pass will
need, and modules keep it only in training mode. Shapes: B batch, T tokens, C hidden, H heads,
D head width, F feed-forward width, V vocabulary.
"""

from .activations import ACTIVATION_FORWARD, activation_forward
from .attention import attention_forward, merge_heads, padding_mask_bias, split_heads
from .embedding import embedding_forward, sinusoidal_table
from .layernorm import layernorm_forward
from .linear import linear_forward
from .softmax import softmax_forward

__all__ = [
    "ACTIVATION_FORWARD",
    "activation_forward",
    "attention_forward",
    "embedding_forward",
    "layernorm_forward",
    "linear_forward",
    "merge_heads",
    "padding_mask_bias",
    "sinusoidal_table",
    "softmax_forward",
    "split_heads",
]
