"""Array backend: the device follows the data (einops' get_backend, cupy.get_array_module).

This is the only module that knows cupy exists, and it never imports it: if a cupy array is
passed in, cupy is already in sys.modules.
"""

import sys

import numpy as np


def xp_of(*arrays):
    """cupy if any argument is a cupy array, else numpy. Never imports cupy itself."""
    for a in arrays:
        if type(a).__module__.startswith("cupy"):
            return sys.modules["cupy"]
    return np


def to_numpy(a):
    """A numpy copy of a numpy or cupy array (numpy arrays are returned as they are)."""
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return np.asarray(a)


def to_device(a, device: str):
    """Move an array to "cpu" (numpy) or "cuda" (cupy, imported here on first use)."""
    if device == "cpu":
        return to_numpy(a)
    if device == "cuda":
        import cupy  # optional extra: pip install minibert[gpu]

        return cupy.asarray(a)
    raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
