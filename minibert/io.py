"""A model folder in Hugging Face layout -> a model: minibert.load.

config.json picks the family and the class; the checkpoint package reads the tensors (for a
Google TF1 or fairseq folder it also implies the config.json); load_state puts them into the
model's parameters. Loading is a renaming (weights keep PyTorch's (out, in)
layout): each family's table maps our parameter paths to Hugging Face names, every parameter
must be found with the shape the config implies, and tensors left over are reported.
The other direction, a model -> a folder, is the model's own save_pretrained (models/base.py).
"""

import json
import warnings
from pathlib import Path

import numpy as np

from .backend import check_device, cupy_module
from .checkpoint import (
    CONFIG_NAME,
    checkpoint_format,
    hf_config_of,
    list_tensors,
    read_weights,
)
from .config import EncoderConfig
from .errors import CheckpointError, ConfigError, LoadWarning
from .models.auto import model_class
from .quant import quantization_of, quantized_skeleton

DTYPES = {"float32": np.float32, "float64": np.float64}
# buffers transformers keeps in some checkpoints; they hold no weights we need
IGNORED_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids")


def load(
    path,
    dtype: str = "float32",
    architecture: str | None = None,
    num_labels: int | None = None,
    seed: int = 0,
    device: str = "cpu",
):
    """Load a model folder in Hugging Face layout (config.json + weights).

    The class comes from config.json (architectures[0], else model_type). dtype="float64" gives a
    float64 model for gradient checks. `architecture` (and `num_labels`) load the body into
    another class of the same family, e.g. a BertModel checkpoint as
    BertForSequenceClassification to fine-tune: head weights the checkpoint lacks are drawn
    fresh (seeded) and listed in model.load_report["initialized"]. device="cuda" moves the
    loaded model to the GPU (model.to; cupy: pip install "minibert[gpu]").
    """
    check_device(device)
    if device != "cpu":
        cupy_module()  # DeviceError naming the gpu extra before any file is read
    if dtype not in DTYPES and np.dtype(dtype).name not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    np_dtype = DTYPES[np.dtype(dtype).name]
    folder = _folder(path)
    config = read_config(folder)
    changes = {
        k: v
        for k, v in (("architecture", architecture), ("num_labels", num_labels))
        if v is not None
    }
    if changes:
        config = config.replace(**changes)
    model = model_class(config)(config)
    quantization = quantization_of(config)
    if quantization is not None:  # an int8 checkpoint (minibert.quantize, then save_pretrained)
        if np_dtype != np.float32:
            raise ValueError(f"{folder} holds an int8 model, which computes in float32 only")
        quantized_skeleton(model, bool(quantization.get("embeddings", True)))
    tensors = read_weights(folder)
    # loading into another class on purpose: the old head's tensors are expected to go unused
    # (they are still listed in load_report["unexpected"])
    report = load_state(
        model,
        tensors,
        np_dtype,
        allow_missing_heads=architecture is not None,
        warn_unexpected=architecture is None,
    )
    # a TF1 or fairseq folder also stores training state, which read_weights leaves out
    if checkpoint_format(folder) in ("tf1", "fairseq"):
        report["ignored"] += [t.name for t in list_tensors(folder) if t.status == "ignored"]
    if report["initialized"]:  # a new head starts from transformers' initialisation
        model.init_weights(np.random.default_rng(seed), only=report["initialized"])
    return model if device == "cpu" else model.to(device)


def _folder(path) -> Path:
    folder = Path(path)
    if not folder.exists():
        raise CheckpointError(f"no such model folder: {folder}")
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is a file; pass the folder holding config.json")
    return folder


def read_config(folder: Path) -> EncoderConfig:
    """The folder's config.json; a Google TF1 folder's bert_config.json / albert_config.json
    or a fairseq model.pt's args, as the config.json they imply, when there is none."""
    file = folder / CONFIG_NAME
    if not file.is_file():
        implied = hf_config_of(folder)
        if implied is None:
            raise CheckpointError(f"{folder} has no {CONFIG_NAME}")
        return EncoderConfig.from_hf(implied)
    try:
        d = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file} is not valid JSON: {exc}") from None
    return EncoderConfig.from_hf(d)


# --- matching tensors to parameters -------------------------------------------------------
def _normalise_names(tensors: dict) -> dict:
    """Old checkpoints call LayerNorm parameters gamma/beta."""
    out = {}
    for name, array in tensors.items():
        if name.endswith(".gamma"):
            name = name[: -len("gamma")] + "weight"
        elif name.endswith(".beta"):
            name = name[: -len("beta")] + "bias"
        out[name] = array
    return out


def load_state(
    model,
    tensors: dict,
    dtype=np.float32,
    allow_missing_heads: bool = False,
    warn_unexpected: bool = True,
) -> dict:
    """Put checkpoint tensors into the model's parameters by its family's name table.

    Raises CheckpointError for a missing tensor or a shape the config contradicts; returns (and
    warns about) the tensors that were not used. Sets model.load_report. With
    allow_missing_heads, head and pooler parameters the checkpoint lacks keep their current
    (freshly initialised) values instead.
    """
    tensors = _normalise_names(tensors)
    prefix = model.prefix + "."
    used, missing, initialized = set(), [], []
    tied = model.tied
    optional = {"embeddings.position.weight"} if model.config.sinusoidal_pos_embds else set()

    def find(hf_name):
        # base-model checkpoints lack the prefix head models use, and the other way round
        for candidate in (hf_name, hf_name.removeprefix(prefix), prefix + hf_name):
            if candidate in tensors:
                return candidate
        return None

    for ours, hf_name in model.hf_weight_names().items():
        key = find(hf_name)
        if ours in tied:  # the checkpoint may or may not store a tied copy
            if key is not None:
                used.add(key)
            continue
        if key is None:
            if allow_missing_heads and not ours.startswith(("embeddings.", "encoder.")):
                initialized.append(ours)
            elif ours not in optional:
                missing.append(hf_name)
            continue
        array = tensors[key]
        expected = model.get_parameter(ours).shape
        if tuple(array.shape) != tuple(expected):
            raise CheckpointError(
                f"tensor {key} has shape {tuple(array.shape)}, but config.json implies "
                f"{tuple(expected)}: the config contradicts the weights"
            )
        current = model.get_parameter(ours).dtype
        if current in (np.int8, np.uint8):  # quantized codes (quant/): kept as stored
            if array.dtype != current:
                raise CheckpointError(f"tensor {key} has dtype {array.dtype}, expected {current}")
            model.set_parameter(ours, array)
            used.add(key)
            continue
        if not np.issubdtype(array.dtype, np.floating):
            raise CheckpointError(f"tensor {key} has dtype {array.dtype}, expected floats")
        model.set_parameter(ours, np.ascontiguousarray(array, dtype=dtype))
        used.add(key)
    if missing:
        shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
        raise CheckpointError(
            f"the checkpoint lacks {len(missing)} tensor(s) that {model.config.architecture} "
            f"needs: {shown}"
        )
    for alias, name in model.weight_aliases.items():  # older files store a tied bias twice
        for key in (alias, prefix + alias):
            if key in tensors and find(name) is not None:
                used.add(key)
    model.tie_weights()
    if dtype != np.float32:
        model.astype(dtype)
    ignored = sorted(k for k in tensors if k not in used and k.endswith(IGNORED_SUFFIXES))
    unexpected = sorted(k for k in tensors if k not in used and k not in ignored)
    model.load_report = {
        "used": len(used),
        "ignored": ignored,
        "unexpected": unexpected,
        "initialized": initialized,
    }
    if unexpected and warn_unexpected:
        shown = ", ".join(unexpected[:8]) + (" ..." if len(unexpected) > 8 else "")
        warnings.warn(
            f"{len(unexpected)} checkpoint tensor(s) were not used by "
            f"{model.config.architecture}: {shown}",
            LoadWarning,
            stacklevel=3,
        )
    return model.load_report


def checkpoint_status(model, names) -> tuple[dict, list]:
    """How load_state would treat checkpoint tensors named `names` (Hugging Face names):
    ({name: "mapped" | "ignored" | "unused head"}, [names the model needs and lacks]).
    What `minibert inspect` reports; the name matching is load_state's."""
    names = list(names)
    normalised = {_normalise_names({n: None}).popitem()[0]: n for n in names}
    prefix = model.prefix + "."
    status, missing = {}, []
    optional = {"embeddings.position.weight"} if model.config.sinusoidal_pos_embds else set()
    for ours, hf_name in model.hf_weight_names().items():
        for candidate in (hf_name, hf_name.removeprefix(prefix), prefix + hf_name):
            if candidate in normalised:
                status[normalised[candidate]] = "mapped"
                break
        else:
            if ours not in model.tied and ours not in optional:
                missing.append(hf_name)
    for alias in model.weight_aliases:
        for key in (alias, prefix + alias):
            if key in normalised:
                status[normalised[key]] = "mapped"
    for name in names:
        if name in status:
            continue
        body = name.removeprefix(prefix).startswith(("embeddings.", "encoder."))
        status[name] = (
            "ignored" if name.endswith(IGNORED_SUFFIXES) else "unused" if body else "unused head"
        )
    return status, missing
