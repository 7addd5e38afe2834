"""Weight-name tables: the helpers each family builds its {our path: Hugging Face name} table
with (models/bert.py's EMBEDDING_NAMES, LAYER_NAMES, HEAD_NAMES, and the others')."""

from ..config import EncoderConfig


def linear_names(ours: str, hf: str, bias: bool = True) -> dict:
    """{ours.weight: hf.weight, ours.bias: hf.bias}: one row of a weight-name table per layer."""
    keys = ("weight", "bias") if bias else ("weight",)
    return {f"{ours}.{k}": f"{hf}.{k}" for k in keys}


def per_layer(config: EncoderConfig, layer_names: dict, ours: str, hf: str) -> dict:
    """Expand a per-layer table for every unique layer i: {ours.i.x: hf.i.y}."""
    names = {}
    for i in range(config.num_unique_layers):
        for o, h in layer_names.items():
            names[f"{ours}.{i}.{o}"] = f"{hf}.{i}.{h}"
    return names
