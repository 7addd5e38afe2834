"""safetensors files: an 8-byte header length, a JSON header, then raw little-endian tensors.

The safetensors library checks the header; the tensors are then numpy views of one
copy-on-write memory map, so loading copies nothing and pages come in as they are used.
"""

import json
import mmap
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open

from ..errors import CheckpointError

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


def safetensors_entries(file: Path) -> list[tuple[str, str, tuple]]:
    """(name, dtype name, shape) of every tensor, from the header alone (nothing is read)."""
    header, _ = safetensors_header(file)
    entries = []
    for name, entry in header.items():
        if name != "__metadata__":
            code = entry["dtype"]
            dtype = "bfloat16" if code == "BF16" else SAFETENSORS_NUMPY.get(code, code)
            entries.append((name, _dtype_name(dtype), tuple(entry["shape"])))
    return entries


def _dtype_name(dtype) -> str:
    return dtype if isinstance(dtype, str) else np.dtype(dtype).name
