"""torch.save files (pytorch_model.bin, fairseq's model.pt) read without running pickle code.

A torch.save file of torch >= 1.6 is a zip: data.pkl, a pickle of the saved object, and
data/<key>, the raw bytes of each storage. Older torch (and `_use_new_zipfile_serialization=
False`) wrote one stream instead: four pickles (torch's magic number, the format version 1001,
a dict of system facts, the saved object), a pickled list of storage keys, then each storage
in that order as its element count (int64) and its raw bytes.

Pickle can run any code, so our unpickler rebuilds tensors as numpy arrays and refuses every
global but the few a checkpoint needs: torch's storage classes and tensor rebuilders,
OrderedDict, and for a fairseq checkpoint the inert records its training arguments come in
(argparse.Namespace, numpy scalars and the latin-1 bytes they are written with), which we
rebuild as plain data, never by calling the file's classes.
"""

import argparse
import collections
import io
import pickle
import pickletools
import zipfile
from pathlib import Path

import numpy as np

from ..errors import CheckpointError


class _Storage:
    """A storage the pickle refers to by key; its bytes live in the zip at data/<key>."""

    def __init__(self, dtype, key):
        self.dtype, self.key = dtype, key


# torch storage classes -> numpy dtype; bfloat16 is read as uint16 then widened
STORAGE_DTYPES = {
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


def _numpy_scalar(dtype, data=None):
    """numpy pickles a scalar as scalar(dtype, its bytes): rebuilt from the bytes alone."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise CheckpointError("a pickled numpy scalar that is not plain numbers")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _numpy_dtype(name, align=False, copy=False):
    if not isinstance(name, str):
        raise CheckpointError(f"a pickled numpy dtype named {name!r}")
    return np.dtype(name)


def _latin1_bytes(text, encoding="latin1"):
    """Pickle protocol 2 writes bytes as _codecs.encode(text, "latin1"): we allow that alone."""
    if not isinstance(text, str) or encoding != "latin1":
        raise CheckpointError("a pickled _codecs.encode other than bytes in latin1")
    return text.encode("latin1")


# the training records of a fairseq checkpoint: plain data once rebuilt
RECORD_GLOBALS = {
    ("argparse", "Namespace"): argparse.Namespace,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _numpy_dtype,
    ("_codecs", "encode"): _latin1_bytes,
}


class _TensorUnpickler(pickle.Unpickler):
    """Rebuilds tensors as numpy arrays; any global other than the few a state dict needs is
    refused, so a malicious pickle raises instead of running."""

    def __init__(self, file, storage_bytes, name: str, records: bool):
        super().__init__(file)
        self.storage_bytes = storage_bytes  # key -> the storage's raw bytes; None: not yet read
        self.name, self.records = name, records
        self.storages = {}  # key -> flat numpy array (shared storages are read once)
        self.storage_types = {}  # key -> dtype of every storage the pickle names

    def find_class(self, module, name):
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self._rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return lambda data, requires_grad, hooks, *rest: data
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if self.records and (module, name) in RECORD_GLOBALS:
            return RECORD_GLOBALS[module, name]
        raise CheckpointError(
            f"refusing to load the global {module}.{name} from {self.name}: a weights file "
            f"should hold only tensors, and unpickling it could run code"
        )

    def persistent_load(self, pid):
        # ("storage", storage type, key, location, number of elements[, view: legacy only])
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise CheckpointError(f"unexpected persistent id in {self.name}: {pid!r}")
        if len(pid) == 6 and pid[5] is not None:
            raise CheckpointError(f"{self.name} holds a storage view, which is not read")
        dtype, key = pid[1], pid[2]
        if dtype not in STORAGE_DTYPES.values():
            raise CheckpointError(f"unexpected storage type in {self.name}: {dtype!r}")
        self.storage_types[str(key)] = dtype
        return _Storage(dtype, str(key))

    def _flat(self, storage: _Storage):
        if storage.key not in self.storages:
            if self.storage_bytes is None:  # the legacy format's first pass
                return np.zeros(0, np.float32)
            try:
                raw = self.storage_bytes(storage.key)
            except KeyError:
                raise CheckpointError(f"{self.name} lacks the storage {storage.key}") from None
            if storage.dtype == "bfloat16":
                flat = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                flat = np.frombuffer(raw, np.dtype(storage.dtype).newbyteorder("<"))
            self.storages[storage.key] = flat
        return self.storages[storage.key]

    def _rebuild_tensor(self, storage, offset, size, stride, *unused):
        flat = self._flat(storage)
        if self.storage_bytes is None:
            return None
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


def read_torch_file(file: Path, records: bool = False):
    """The object a torch.save file holds, tensors as numpy arrays, without running pickle code.

    records=True also rebuilds the inert training records a fairseq checkpoint carries."""
    file = Path(file)
    try:
        if not zipfile.is_zipfile(file):
            return _read_legacy(file, records)
        with zipfile.ZipFile(file) as zf:
            pickles = [n for n in zf.namelist() if n.endswith("data.pkl")]
            if len(pickles) != 1:
                raise CheckpointError(f"{file} holds {len(pickles)} data.pkl entries, expected 1")
            prefix = pickles[0][: -len("data.pkl")]

            def storage_bytes(key):
                return zf.read(f"{prefix}data/{key}")

            with zf.open(pickles[0]) as fh:
                return _TensorUnpickler(fh, storage_bytes, file.name, records).load()
    except CheckpointError:
        raise
    except Exception as exc:  # truncated or corrupt stream
        raise CheckpointError(f"cannot unpickle {file}: {exc}") from None


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch's first pickle in a pre-zip torch.save file
LEGACY_VERSION = 1001


def _read_legacy(file: Path, records: bool):
    """The pre-zip torch.save stream: the object is unpickled twice, once to find where its
    pickle ends (and the storages begin), then with the storages read."""
    stream = io.BytesIO(file.read_bytes())
    plain = _TensorUnpickler(stream, None, file.name, False)  # refuses every global
    try:
        magic = plain.load()
    except CheckpointError:
        raise
    except Exception:
        magic = None
    if magic != LEGACY_MAGIC:
        raise CheckpointError(
            f"{file} is not a zip archive (torch >= 1.6) nor a torch.save file of an older "
            f"torch (it does not start with torch's magic number)"
        )
    if _TensorUnpickler(stream, None, file.name, False).load() != LEGACY_VERSION:
        raise CheckpointError(f"{file}: an older torch.save format than version 1001")
    _TensorUnpickler(stream, None, file.name, False).load()  # system facts (endianness, sizes)
    start = stream.tell()
    first = _TensorUnpickler(stream, None, file.name, records)
    first.load()  # tensors come back as None: only the storages' types are gathered
    keys = _TensorUnpickler(stream, None, file.name, False).load()
    if not isinstance(keys, list):
        raise CheckpointError(f"{file}: the list of storages is missing")
    raw = {}
    for key in map(str, keys):
        if key not in first.storage_types:
            raise CheckpointError(f"{file} stores {key}, which no tensor uses")
        dtype = first.storage_types[key]
        itemsize = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
        count = int.from_bytes(stream.read(8), "little")
        raw[key] = stream.read(count * itemsize)
        if len(raw[key]) != count * itemsize:
            raise CheckpointError(f"{file} ends inside the storage {key}")
    stream.seek(start)
    return _TensorUnpickler(stream, raw.__getitem__, file.name, records).load()


def read_pytorch_bin(file: Path) -> dict:
    """Tensors of a pytorch_model.bin (zip format of torch >= 1.6), without running pickle code."""
    state = read_torch_file(file)
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise CheckpointError(f"{file} does not hold a state dict of tensors")
    return dict(state)


def pytorch_bin_dtypes(file: Path) -> dict:
    """Count tensors per storage type in a torch.save zip by reading the pickle's opcodes (never
    running it): each tensor names its storage class once, the first time as a GLOBAL that is
    memoised, afterwards as a GET of that memo slot."""
    if zipfile.is_zipfile(file):
        with zipfile.ZipFile(file) as zf:
            entry = next(n for n in zf.namelist() if n.endswith("data.pkl"))  # load() checked it
            opcodes = list(pickletools.genops(zf.read(entry)))
    else:  # the legacy stream: the saved object is its fourth pickle
        stream = io.BytesIO(Path(file).read_bytes())
        for _ in range(3):
            for _ in pickletools.genops(stream):  # each genops stops at its pickle's STOP
                pass
        opcodes = list(pickletools.genops(stream))
    counts, memo, top = {}, {}, None  # top: the storage class on top of the stack, if any
    for op, arg, _ in opcodes:
        if op.name in ("BINPUT", "LONG_BINPUT", "PUT"):  # memoise the top; the stack is unchanged
            if top is not None:
                memo[arg] = top
            continue
        top = None
        if op.name == "GLOBAL" and arg.startswith("torch ") and arg.endswith("Storage"):
            storage = arg.split()[1]
            top = _dtype_name(STORAGE_DTYPES[storage]) if storage in STORAGE_DTYPES else storage
        elif op.name in ("BINGET", "LONG_BINGET", "GET"):
            top = memo.get(arg)
        if top is not None:
            counts[top] = counts.get(top, 0) + 1
    return counts


def _dtype_name(dtype) -> str:
    return dtype if isinstance(dtype, str) else np.dtype(dtype).name
