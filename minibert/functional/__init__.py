"""Pure forward/backward pairs, no state, one op per file.

Every `<op>_forward` returns `(out, cache)`: the cache holds exactly what the backward pass will
need, and modules keep it only in training mode. Shapes: B batch, T tokens, C hidden, H heads,
D head width, F feed-forward width, V vocabulary.
"""

from .activations import (
    ACTIVATION_BACKWARD,
    ACTIVATION_FORWARD,
    activation_backward,
    activation_forward,
)
from .attention import (
    attention_backward,
    attention_forward,
    merge_heads,
    padding_mask_bias,
    split_heads,
)
from .distill_losses import (
    attention_mse_backward,
    attention_mse_forward,
    attention_pair_mask,
    cosine_backward,
    cosine_forward,
    hidden_mse_backward,
    hidden_mse_forward,
    masked_mse_backward,
    masked_mse_forward,
    sentence_cosine_backward,
    sentence_cosine_forward,
    soft_target_backward,
    soft_target_forward,
)
from .dropout import dropout_backward, dropout_forward
from .embedding import embedding_backward, embedding_forward, sinusoidal_table
from .layernorm import layernorm_backward, layernorm_forward
from .linear import linear_backward, linear_forward
from .losses import (
    bce_with_logits_backward,
    bce_with_logits_forward,
    cross_entropy_backward,
    cross_entropy_backward_rows,
    cross_entropy_forward,
    log_softmax,
    mse_backward,
    mse_forward,
)
from .pooling import POOLINGS, l2_normalize, mean_pool_backward, mean_pool_forward, pool
from .quantize import (
    dequantize,
    fake_quant_backward,
    fake_quant_forward,
    fake_quantize,
    quantize_symmetric,
)
from .softmax import softmax_backward, softmax_forward

__all__ = [
    "POOLINGS",
    "ACTIVATION_BACKWARD",
    "ACTIVATION_FORWARD",
    "activation_backward",
    "activation_forward",
    "attention_backward",
    "attention_forward",
    "attention_mse_backward",
    "attention_mse_forward",
    "attention_pair_mask",
    "bce_with_logits_backward",
    "bce_with_logits_forward",
    "cosine_backward",
    "cosine_forward",
    "cross_entropy_backward",
    "cross_entropy_backward_rows",
    "cross_entropy_forward",
    "dequantize",
    "dropout_backward",
    "dropout_forward",
    "embedding_backward",
    "embedding_forward",
    "fake_quant_backward",
    "fake_quant_forward",
    "fake_quantize",
    "hidden_mse_backward",
    "hidden_mse_forward",
    "layernorm_backward",
    "layernorm_forward",
    "linear_backward",
    "l2_normalize",
    "linear_forward",
    "log_softmax",
    "masked_mse_backward",
    "masked_mse_forward",
    "mean_pool_backward",
    "mean_pool_forward",
    "merge_heads",
    "mse_backward",
    "mse_forward",
    "padding_mask_bias",
    "pool",
    "quantize_symmetric",
    "sentence_cosine_backward",
    "sentence_cosine_forward",
    "sinusoidal_table",
    "soft_target_backward",
    "soft_target_forward",
    "softmax_backward",
    "softmax_forward",
    "split_heads",
]
