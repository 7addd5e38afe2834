"""sentence-transformers' Dense module: a linear layer and an activation on the pooled vector.

A Dense folder (2_Dense/ and so on) holds config.json and the layer's weights, in
model.safetensors (sentence-transformers 3 and later) or pytorch_model.bin (older), read by
checkpoint.py like any other checkpoint:

    config.json     in_features, out_features, bias, activation_function (a torch class path,
                    "torch.nn.modules.activation.Tanh"; absent means Tanh), use_residual
    linear.weight   (out_features, in_features), PyTorch's layout: y = act(x @ W.T + b)
    linear.bias     (out_features,), when bias is true
    residual.weight (out_features, in_features), when use_residual and the widths differ;
                    with use_residual, y += x (or x @ R.T)

Shapes: N vectors, C_in = in_features, C_out = out_features.
"""

from pathlib import Path

import numpy as np

from ..checkpoint import read_weights
from ..errors import CheckpointError, ConfigError
from ..functional.activations import activation_forward
from .folder import read_json

# torch.nn activation classes as sentence-transformers names them -> our activation names.
# Each is built without arguments, so GELU is the exact (erf) one.
ACTIVATIONS = {
    "torch.nn.modules.activation.Tanh": "tanh",
    "torch.nn.modules.activation.ReLU": "relu",
    "torch.nn.modules.activation.GELU": "gelu",
    "torch.nn.modules.activation.SiLU": "silu",
    "torch.nn.modules.activation.Sigmoid": "sigmoid",
    "torch.nn.modules.linear.Identity": "identity",
}
DEFAULT_ACTIVATION = "torch.nn.modules.activation.Tanh"


class Dense:
    """A Dense module read from its folder, run forward on pooled vectors (inference only)."""

    def __init__(self, folder):
        self.folder = Path(folder)
        file = self.folder / "config.json"
        if not file.is_file():
            raise ConfigError(f"the Dense module has no config: {file} is missing")
        config = read_json(file)
        self.in_features = _size(config, "in_features", file)
        self.out_features = _size(config, "out_features", file)
        for key in ("module_input_name", "module_output_name"):
            if config.get(key) not in (None, "sentence_embedding"):
                raise ConfigError(
                    f"{file}: {key} is {config[key]!r}; minibert runs Dense on the "
                    "pooled sentence vector only"
                )
        path = config.get("activation_function", DEFAULT_ACTIVATION)
        if path not in ACTIVATIONS:
            raise ConfigError(
                f"{file}: activation_function {path!r} is not one minibert knows "
                f"({', '.join(sorted(ACTIVATIONS))})"
            )
        self.activation = ACTIVATIONS[path]
        self.weight, self.bias, self.residual = self._read_weights(
            bool(config.get("bias", True)), bool(config.get("use_residual", False))
        )

    def _read_weights(self, bias: bool, use_residual: bool) -> tuple:
        """(weight, bias or None, residual): residual is None without a residual connection,
        "identity" when it adds x itself, else its matrix. Every stored tensor must be used."""
        tensors = read_weights(self.folder)
        shapes = {"linear.weight": (self.out_features, self.in_features)}
        if bias:
            shapes["linear.bias"] = (self.out_features,)
        residual = "identity" if use_residual else None
        if use_residual and self.in_features != self.out_features:
            shapes["residual.weight"] = (self.out_features, self.in_features)
        if set(tensors) != set(shapes):
            raise CheckpointError(
                f"{self.folder}: a Dense layer with this config.json holds {sorted(shapes)}, "
                f"the file has {sorted(tensors)}"
            )
        for name, shape in shapes.items():
            if tensors[name].shape != shape:
                raise CheckpointError(
                    f"{self.folder}: {name} has shape {tensors[name].shape}, config.json says "
                    f"{shape}"
                )
        weights = {name: np.asarray(t, np.float32) for name, t in tensors.items()}
        if "residual.weight" in weights:
            residual = weights["residual.weight"]
        return weights["linear.weight"], weights.get("linear.bias"), residual

    def __call__(self, x):
        """y = act(x @ W.T + b), plus x (or x @ R.T) with a residual.

        Shapes: (N, C_in) -> (N, C_out)
        """
        y = x @ self.weight.T  # (N, C_out)
        if self.bias is not None:
            y = y + self.bias
        y = _activate(self.activation, y)
        if isinstance(self.residual, str):  # same widths: the input itself
            y = y + x
        elif self.residual is not None:
            y = y + x @ self.residual.T  # (N, C_out)
        return y

    def __repr__(self):
        return f"Dense({self.in_features} -> {self.out_features}, {self.activation})"


def _activate(name: str, x):
    if name == "identity":
        return x
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * x))  # 1 / (1 + exp(-x)), without overflow
    return activation_forward(name, x)[0]


def _size(config: dict, key: str, file: Path) -> int:
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{file}: {key} should be a positive integer, got {value!r}")
    return value
