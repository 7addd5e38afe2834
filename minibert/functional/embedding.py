"""Embedding lookup and DistilBERT's fixed sinusoidal position table.

Shapes: ids (B, T) integers, table (V, C) -> (B, T, C)
"""

import numpy as np

from ..backend import scatter_add, xp_of


def embedding_forward(ids, table):
    """Row lookup table[ids]. ids must already be checked to lie in [0, V).

    Shapes: ids (B, T), table (V, C) -> (B, T, C). The cache keeps ids and V for the
    scatter-add of the backward pass; ids get no gradient.
    """
    return table[ids], (ids, table.shape[0])  # (B, T, C)


def sinusoidal_table(num_positions, dim, dtype=np.float32):
    """The fixed table of Vaswani et al. that DistilBERT uses with sinusoidal_pos_embds.

    angle[p, j] = p / 10000^(2 * (j // 2) / dim); even columns take sin, odd columns cos.
    Shapes: -> (P, dim)
    """
    pos = np.arange(num_positions, dtype=np.float64)[:, None]  # (P, 1)
    j = np.arange(dim)  # (dim,)
    angle = pos / np.power(10000.0, 2 * (j // 2) / dim)  # (P, dim)
    table = np.empty((num_positions, dim), dtype=np.float64)  # (P, dim)
    table[:, 0::2] = np.sin(angle[:, 0::2])
    table[:, 1::2] = np.cos(angle[:, 1::2])
    return table.astype(dtype)


def embedding_backward(dy, cache, padding_idx=None):
    """Scatter-add each token's gradient into its table row; ids get no gradient.

    Shapes: dy (B, T, C) -> dtable (V, C). A row equal to padding_idx gets zero gradient, as
    torch's nn.Embedding(padding_idx=...) does (transformers builds word embeddings that way).
    """
    ids, V = cache
    C = dy.shape[-1]
    dtable = xp_of(dy).zeros((V, C), dy.dtype)  # (V, C)
    scatter_add(dtable, ids.reshape(-1), dy.reshape(-1, C))  # a token repeated adds up
    if padding_idx is not None:
        dtable[padding_idx] = 0
    return dtable
