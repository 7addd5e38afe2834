"""Array backend: the device follows the data (einops' get_backend, cupy.get_array_module).

This is the only module that knows cupy exists. It looks at an array's type to tell a cupy
array from a numpy one, and so never imports cupy for that: if a cupy array is passed in, cupy
is already in sys.modules. Only moving data to "cuda" imports it, on first use.

    xp_of(*arrays)          numpy, or cupy if any argument lives on the GPU
    device_of(a)            "cpu" or "cuda"
    to_device(a, device)    one host <-> device copy (an array already there is not copied)
    to_numpy(a)             an array on the host: how the outputs of a model on "cuda" come back
    erf, scatter_add        two operations numpy and cupy spell differently
    random_generator        a Generator that draws on the device (dropout on the GPU)
    as_scalar               a loss as a number of its dtype, without leaving the device
"""

import sys

import numpy as np

from .errors import DeviceError

DEVICES = ("cpu", "cuda")
GPU_EXTRA = 'pip install "minibert[gpu]"'  # cupy-cuda12x: pyproject's gpu extra


def _on_gpu(a) -> bool:
    return type(a).__module__.startswith("cupy")


def xp_of(*arrays):
    """cupy if any argument is a cupy array, else numpy. Never imports cupy itself."""
    for a in arrays:
        if _on_gpu(a):
            return sys.modules["cupy"]
    return np


def device_of(a) -> str:
    """ "cuda" for a cupy array, "cpu" for anything else."""
    return "cuda" if _on_gpu(a) else "cpu"


def check_device(device) -> str:
    """device itself when it is "cpu" or "cuda", else DeviceError."""
    if device not in DEVICES:
        raise DeviceError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return device


def cupy_module():
    """cupy, imported on first use, or DeviceError saying how to get it: the gpu extra and a
    CUDA device it can see."""
    try:
        import cupy  # optional extra: pip install "minibert[gpu]"
    except ImportError as exc:
        raise DeviceError(
            f'device "cuda" needs cupy, which is not installed ({exc}); install it with '
            f"{GPU_EXTRA} on a machine with an NVIDIA GPU and CUDA 12"
        ) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # cupy's CUDARuntimeError: no driver, or no device
        raise DeviceError(f'device "cuda": cupy finds no CUDA device ({exc})') from None
    if count < 1:
        raise DeviceError('device "cuda": cupy finds no CUDA device')
    return cupy


def cuda_available() -> tuple[bool, str]:
    """(whether "cuda" can be used here, and why not when it cannot): for skipping GPU tests."""
    try:
        cupy_module()
    except DeviceError as exc:
        return False, str(exc)
    return True, ""


def to_numpy(a):
    """A numpy copy of a cupy array; a numpy array (or anything else) as np.asarray gives it."""
    if _on_gpu(a):
        return a.get()
    return np.asarray(a)


def to_device(a, device: str):
    """Move an array to "cpu" (numpy) or "cuda" (cupy). An array already on that device is
    returned as it is; anything else costs one copy between host and device."""
    if check_device(device) == "cpu":
        return to_numpy(a)
    if _on_gpu(a):
        return a
    return cupy_module().asarray(a)


def erf(x):
    """The error function of a cupy array (cupyx.scipy.special.erf). numpy has none: on the
    CPU, kernels/gelu.py computes GELU's erf."""
    if not _on_gpu(x):
        raise TypeError("backend.erf is for cupy arrays; numpy arrays use kernels/gelu.py")
    from cupyx.scipy.special import erf as cupy_erf

    return cupy_erf(x)


def scatter_add(table, index, values) -> None:
    """table[index] += values, adding every repeated index (np.add.at; cupyx.scatter_add)."""
    if _on_gpu(table):
        import cupyx

        cupyx.scatter_add(table, index, values)
    else:
        np.add.at(table, index, values)


def random_generator(device: str, seed_from: np.random.Generator):
    """A Generator on `device` seeded by one draw from a numpy Generator: seed_from itself on the
    CPU, cupy's own generator on the GPU (so that dropout masks are drawn where they are used;
    they are not the CPU's masks)."""
    if check_device(device) == "cpu":
        return seed_from
    return cupy_module().random.default_rng(int(seed_from.integers(2**63)))


def as_scalar(value, dtype):
    """A reduction's result as a number of `dtype`: a numpy scalar on the CPU, a 0-d array on
    the GPU (converting it to a Python number would wait for the device and copy it back)."""
    if _on_gpu(value):
        return value.astype(dtype)
    return np.dtype(dtype).type(value)
