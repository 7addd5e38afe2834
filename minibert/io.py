"""Reading and writing checkpoints in Hugging Face layout.

A model folder holds config.json and its weights in model.safetensors (read with the safetensors
library, tensor by tensor from a memory map), a sharded model.safetensors.index.json, or a
pytorch_model.bin. The .bin format is a zip of a pickle plus raw storages; pickle can run any
code, so we read it with an unpickler that knows how to rebuild tensors and refuses every other
global.

Loading is a renaming (weights keep PyTorch's (out, in) layout): each family's table maps our
parameter paths to Hugging Face names, every parameter must be found with the shape the config
implies, and tensors left over are reported.
"""

import json
import mmap
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .config import EncoderConfig
from .errors import CheckpointError, ConfigError, LoadWarning
from .quant import quantization_of, quantized_skeleton

CONFIG_NAME = "config.json"
SAFETENSORS_NAME = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH_NAME = "pytorch_model.bin"
DTYPES = {"float32": np.float32, "float64": np.float64}
# buffers transformers keeps in some checkpoints; they hold no weights we need
IGNORED_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids")


def load(
    path,
    dtype: str = "float32",
    architecture: str | None = None,
    num_labels: int | None = None,
    seed: int = 0,
):
    """Load a model folder in Hugging Face layout (config.json + weights).

    The class comes from config.json (architectures[0], else model_type). dtype="float64" gives a
    float64 model for gradient checks. `architecture` (and `num_labels`) load the body into
    another class of the same family, e.g. a BertModel checkpoint as
    BertForSequenceClassification to fine-tune: head weights the checkpoint lacks are drawn
    fresh (seeded) and listed in model.load_report["initialized"].
    """
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
    from .models import model_class

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
    if report["initialized"]:  # a new head starts from transformers' initialisation
        model.init_weights(np.random.default_rng(seed), only=report["initialized"])
    return model


def _folder(path) -> Path:
    folder = Path(path)
    if not folder.exists():
        raise CheckpointError(f"no such model folder: {folder}")
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is a file; pass the folder holding config.json")
    return folder


def read_config(folder: Path) -> EncoderConfig:
    file = folder / CONFIG_NAME
    if not file.is_file():
        raise CheckpointError(f"{folder} has no {CONFIG_NAME}")
    try:
        d = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file} is not valid JSON: {exc}") from None
    return EncoderConfig.from_hf(d)


# --- reading tensors ----------------------------------------------------------------------
def read_weights(folder: Path) -> dict:
    """{name: numpy array} from the folder's safetensors (one file or shards) or .bin."""
    if (folder / SAFETENSORS_NAME).is_file():
        return read_safetensors(folder / SAFETENSORS_NAME)
    if (folder / SAFETENSORS_INDEX).is_file():
        index = json.loads((folder / SAFETENSORS_INDEX).read_text())
        tensors = {}
        for shard in sorted(set(index.get("weight_map", {}).values())):
            tensors.update(read_safetensors(folder / shard))
        return tensors
    if (folder / PYTORCH_NAME).is_file():
        return read_pytorch_bin(folder / PYTORCH_NAME)
    raise CheckpointError(
        f"{folder} has no weights: expected {SAFETENSORS_NAME}, {SAFETENSORS_INDEX} or "
        f"{PYTORCH_NAME}"
    )


# safetensors dtype codes numpy reads directly (BF16 is widened to float32 separately)
SAFETENSORS_NUMPY = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def read_safetensors(file: Path) -> dict:
    """Every tensor of a .safetensors file as numpy arrays over a memory map of the file.

    The safetensors library checks the file (header, dtypes, offsets within the file); the
    tensors are then numpy views of one copy-on-write mapping, so loading copies nothing and
    pages come in as they are used, and a training step that updates a weight in place changes
    the process's copy, never the file. bfloat16 (which numpy lacks) is widened to float32.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="numpy") as f:  # validates the whole header
            names = list(f.keys())  # noqa: SIM118 (safe_open is not a dict)
        header, start = safetensors_header(file)
        with open(file, "rb") as fh:
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {file}: {exc}") from None
    tensors = {}
    for name in names:
        info = header[name]
        if info["dtype"] == "BF16":  # numpy has no bfloat16
            tensors[name] = _read_bf16(file, name)
            continue
        if info["dtype"] not in SAFETENSORS_NUMPY:
            raise CheckpointError(
                f"{file}: tensor {name} has dtype {info['dtype']}, which minibert does not read"
            )
        dtype = np.dtype(SAFETENSORS_NUMPY[info["dtype"]]).newbyteorder("<")
        begin, _ = info["data_offsets"]
        count = int(np.prod(info["shape"], dtype=np.int64))
        array = np.frombuffer(mapped, dtype=dtype, count=count, offset=start + begin)
        array = array.reshape(info["shape"])
        tensors[name] = array if array.flags.aligned else array.copy()  # BLAS wants alignment
    return tensors


def safetensors_header(file: Path) -> tuple[dict, int]:
    """(header, where the data starts): a safetensors file opens with an 8-byte little-endian
    length and that many bytes of JSON."""
    with open(file, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        return json.loads(fh.read(n)), 8 + n


def _read_bf16(file: Path, name: str):
    """bfloat16 is the top half of a float32: widen by shifting the 16 bits up."""
    header, start = safetensors_header(file)
    info = header[name]
    begin, end = info["data_offsets"]
    raw = np.fromfile(file, dtype="<u2", count=(end - begin) // 2, offset=start + begin)
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(info["shape"])


class _Storage:
    """A storage the pickle refers to by key; its bytes live in the zip at data/<key>."""

    def __init__(self, dtype, key):
        self.dtype, self.key = dtype, key


# torch storage classes -> numpy dtype; bfloat16 is read as uint16 then widened
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _TensorUnpickler(pickle.Unpickler):
    """Rebuilds tensors as numpy arrays; any global other than the few a state dict needs is
    refused, so a malicious pickle raises instead of running."""

    def __init__(self, file, zf: zipfile.ZipFile, prefix: str):
        super().__init__(file)
        self.zf, self.prefix = zf, prefix
        self.storages = {}  # key -> flat numpy array (shared storages are read once)

    def find_class(self, module, name):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self._rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return lambda data, requires_grad, hooks, *rest: data
        if (module, name) == ("collections", "OrderedDict"):
            import collections

            return collections.OrderedDict
        raise CheckpointError(
            f"refusing to load the global {module}.{name} from {PYTORCH_NAME}: a weights file "
            f"should hold only tensors, and unpickling it could run code"
        )

    def persistent_load(self, pid):
        # ("storage", storage type, key, location, number of elements)
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise CheckpointError(f"unexpected persistent id in {PYTORCH_NAME}: {pid!r}")
        _, dtype, key, _, _ = pid
        return _Storage(dtype, str(key))

    def _flat(self, storage: _Storage):
        if storage.key not in self.storages:
            raw = self.zf.read(f"{self.prefix}data/{storage.key}")
            if storage.dtype == "bfloat16":
                flat = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                flat = np.frombuffer(raw, np.dtype(storage.dtype).newbyteorder("<"))
            self.storages[storage.key] = flat
        return self.storages[storage.key]

    def _rebuild_tensor(self, storage, offset, size, stride, *unused):
        flat = self._flat(storage)
        itemsize = flat.dtype.itemsize
        if (
            size
            and (offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))) >= flat.size
        ):
            raise CheckpointError(f"tensor of shape {tuple(size)} runs past its storage")
        view = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride)
        )
        return np.array(view)  # a copy: contiguous, writable, independent of shared storages


def read_pytorch_bin(file: Path) -> dict:
    """Tensors of a pytorch_model.bin (zip format of torch >= 1.6), without running pickle code."""
    if not zipfile.is_zipfile(file):
        raise CheckpointError(
            f"{file} is not a zip archive: only the zip format of torch.save (torch >= 1.6) is "
            f"read; re-save it with safetensors or a newer torch"
        )
    with zipfile.ZipFile(file) as zf:
        pickles = [n for n in zf.namelist() if n.endswith("data.pkl")]
        if len(pickles) != 1:
            raise CheckpointError(f"{file} holds {len(pickles)} data.pkl entries, expected 1")
        prefix = pickles[0][: -len("data.pkl")]
        with zf.open(pickles[0]) as fh:
            try:
                state = _TensorUnpickler(fh, zf, prefix).load()
            except CheckpointError:
                raise
            except Exception as exc:  # truncated or corrupt stream
                raise CheckpointError(f"cannot unpickle {file}: {exc}") from None
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise CheckpointError(f"{file} does not hold a state dict of tensors")
    return dict(state)


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
    prefix = model.spec.prefix + "."
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
        if current == np.int8:  # a quantized model's int8 weight (quant.py): kept as stored
            if array.dtype != np.int8:
                raise CheckpointError(f"tensor {key} has dtype {array.dtype}, expected int8")
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
    for alias, name in model.spec.aliases.items():  # older files store a tied bias twice
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


# --- writing ------------------------------------------------------------------------------
def state_dict(model) -> dict:
    """{Hugging Face name: array} as transformers saves it: tied weights stored once."""
    out = {}
    tied = model.tied
    for ours, hf_name in model.hf_weight_names().items():
        if ours in tied:
            continue
        out[hf_name] = np.ascontiguousarray(model.get_parameter(ours))
    return out


def save_pretrained(model, path) -> None:
    """Write config.json + model.safetensors (float32 unless the model is float64)."""
    from safetensors.numpy import save_file

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    config = model.config.to_hf()
    config["torch_dtype"] = "float32" if model.dtype == np.float32 else "float64"
    _atomic_write(folder / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True) + "\n")
    tmp = folder / (SAFETENSORS_NAME + ".tmp")
    save_file(state_dict(model), str(tmp), metadata={"format": "pt"})
    os.replace(tmp, folder / SAFETENSORS_NAME)


def _atomic_write(file: Path, text: str) -> None:
    tmp = file.with_suffix(file.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, file)
