"""Layer dropping: keep a chosen subset of a trained model's encoder layers.

Fan et al. 2019 ("Reducing Transformer Depth on Demand with Structured Dropout", LayerDrop) show
that a transformer can run with some of its layers left out; here the layers are removed from a
loaded model outright. The kept layers run in their original order, their weights unchanged, and
the config follows: num_hidden_layers becomes the number kept and pruned_heads is renumbered. A
transformers model whose encoder layer list is cut the same way gives the same outputs
(tests/fixtures/generate_pruning.py).

ALBERT is refused: its layers are not separate weights but a few shared ones run at every step,
so a subset of steps is a different num_hidden_layers, not a cut (set it in config.json).
"""

import copy

import numpy as np

from ..errors import InputError
from ..nn import ModuleList


def keep_layers(model, layers):
    """A copy of `model` with only the encoder layers listed (indices, increasing, no repeats).

    Shapes: a model of L layers -> one of len(layers); everything but the encoder is shared in
    value (copied), so the original model is left as it was."""
    if model.config.model_type == "albert":
        raise InputError(
            "keep_layers cannot cut ALBERT: its steps share weights (num_hidden_groups groups); "
            "to run fewer steps, load it with a smaller num_hidden_layers"
        )
    L = len(model.encoder.layers)
    indices = _check_layers(layers, L)
    pruned = model.config.pruned_heads
    smaller = copy.deepcopy(model)
    smaller.encoder.layers = ModuleList(smaller.encoder.layers[i] for i in indices)
    smaller.encoder.schedule = list(range(len(indices)))
    smaller.config = model.config.replace(
        num_hidden_layers=len(indices),
        pruned_heads={new: pruned[old] for new, old in enumerate(indices) if old in pruned},
    )
    smaller.clear_caches()
    return smaller


def _check_layers(layers, L: int) -> list:
    if isinstance(layers, (int, np.integer)) or not hasattr(layers, "__iter__"):
        raise InputError(f"keep_layers takes a list of layer indices, got {layers!r}")
    indices = list(layers)
    if not indices:
        raise InputError("keep_layers needs at least one layer to keep")
    for i in indices:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise InputError(f"a layer index must be an integer, got {i!r}")
        if not 0 <= i < L:
            raise InputError(f"layer {i} is out of range: the model has {L} (0 to {L - 1})")
    if any(b <= a for a, b in zip(indices, indices[1:], strict=False)):
        raise InputError(f"layers to keep must be increasing, without repeats: got {indices}")
    return [int(i) for i in indices]
