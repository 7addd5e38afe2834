"""Checkpoint files: the formats only, never a model.

A Hugging Face model folder holds config.json and its weights in one of three forms, and
load() takes the first that is there:

    model.safetensors                                  read with the safetensors library
    model.safetensors.index.json + the shards it names
    pytorch_model.bin                                  a zip of a pickle plus raw storages

Pickle can run any code, so .bin files go through an unpickler that rebuilds tensors as numpy
arrays and refuses every other global. Writes are atomic: a temporary file, then a rename, so
a folder never holds half a file. io.py turns the tensors into a model.
"""

import collections
import json
import mmap
import os
import pickle
import pickletools
import zipfile
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from .errors import CheckpointError

CONFIG_NAME = "config.json"
SAFETENSORS_NAME = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH_NAME = "pytorch_model.bin"


def weight_files(folder) -> list[Path]:
    """The files read_weights reads, in its order of preference (an index, then its shards)."""
    folder = Path(folder)
    if (folder / SAFETENSORS_NAME).is_file():
        return [folder / SAFETENSORS_NAME]
    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        return [index] + [folder / shard for shard in _shards(index)]
    if (folder / PYTORCH_NAME).is_file():
        return [folder / PYTORCH_NAME]
    return []


def weight_bytes(folder) -> int:
    """Size on disk of a model's weights (weight_files), what `info` and `compare` report."""
    return sum(f.stat().st_size for f in weight_files(folder))


def _shards(index: Path) -> list[str]:
    return sorted(set(json.loads(index.read_text()).get("weight_map", {}).values()))


def read_weights(folder) -> dict:
    """{name: numpy array} from the folder's safetensors (one file or shards) or .bin."""
    folder = Path(folder)
    if (folder / SAFETENSORS_NAME).is_file():
        return read_safetensors(folder / SAFETENSORS_NAME)
    if (folder / SAFETENSORS_INDEX).is_file():
        tensors = {}
        for shard in _shards(folder / SAFETENSORS_INDEX):
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


# --- what a file stores, without loading it ---------------------------------------------------
def stored_dtypes(files) -> dict:
    """{dtype name: number of tensors} as stored on disk (before any widening on load)."""
    counts = {}
    for file in files:
        if file.suffix == ".safetensors":
            found = _safetensors_dtypes(file)
        elif file.suffix == ".bin":
            found = _pytorch_bin_dtypes(file)
        else:
            continue
        for name, n in found.items():
            counts[name] = counts.get(name, 0) + n
    return counts


def _dtype_name(dtype) -> str:
    return dtype if isinstance(dtype, str) else np.dtype(dtype).name


def _safetensors_dtypes(file: Path) -> dict:
    header, _ = safetensors_header(file)
    counts = {}
    for name, entry in header.items():
        if name != "__metadata__":
            code = entry["dtype"]
            dtype = "bfloat16" if code == "BF16" else SAFETENSORS_NUMPY.get(code, code)
            counts[_dtype_name(dtype)] = counts.get(_dtype_name(dtype), 0) + 1
    return counts


def _pytorch_bin_dtypes(file: Path) -> dict:
    """Count tensors per storage type in a torch.save zip by reading the pickle's opcodes (never
    running it): each tensor names its storage class once, the first time as a GLOBAL that is
    memoised, afterwards as a GET of that memo slot."""
    with zipfile.ZipFile(file) as zf:
        entry = next(n for n in zf.namelist() if n.endswith("data.pkl"))  # load() checked it
        data = zf.read(entry)
    counts, memo, top = {}, {}, None  # top: the storage class on top of the stack, if any
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("BINPUT", "LONG_BINPUT", "PUT"):  # memoise the top; the stack is unchanged
            if top is not None:
                memo[arg] = top
            continue
        top = None
        if op.name == "GLOBAL" and arg.startswith("torch ") and arg.endswith("Storage"):
            storage = arg.split()[1]
            top = _dtype_name(_STORAGE_DTYPES[storage]) if storage in _STORAGE_DTYPES else storage
        elif op.name in ("BINGET", "LONG_BINGET", "GET"):
            top = memo.get(arg)
        if top is not None:
            counts[top] = counts.get(top, 0) + 1
    return counts


# --- writing ----------------------------------------------------------------------------------
def write_safetensors(tensors: dict, file, metadata: dict | None = None) -> None:
    """{name: array} into a .safetensors file, atomically (metadata {"format": "pt"} by
    default, which transformers expects)."""
    file = Path(file)
    tmp = file.with_name(file.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata or {"format": "pt"})
    os.replace(tmp, file)


def write_json(data, file) -> None:
    """Indented, key-sorted JSON with a final newline, written atomically."""
    file = Path(file)
    tmp = file.with_name(file.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, file)
