"""A stand-in for cupy, so that the device plumbing is tested on machines without a GPU.

tests/test_device.py installs this module as sys.modules["cupy"] (and three small modules as
cupyx, cupyx.scipy and cupyx.scipy.special). Its arrays are numpy arrays underneath, so a
model's outputs "on the device" can be compared exactly with the CPU's, but of a subclass whose
type says it is cupy's (`type(a).__module__ == "cupy"`, what backend.xp_of looks at), and which
refuses what real cupy refuses, or counts it:

  * copies between host and device are counted in `transfers`: "to_device" (cupy.asarray of
    host data), "to_host" (cupy.asnumpy, ndarray.get) and "scalar" (bool, int, float, item,
    tolist of a device array: each waits for the device and copies a number back);
  * np.<function>(device_array) raises TypeError (np.zeros_like, np.sum, np.nonzero, ...):
    code must use the namespace of its data, this module's functions;
  * a ufunc called as a function (np.exp(a), np.maximum(a, 0), np.add.at) raises TypeError;
    the ufuncs behind Python's operators (a + b, a @ b, a > 0) and behind methods (a.sum(),
    a.max()) work, as they do on cupy arrays;
  * a host numpy array mixed into a device operation (device + host, device[host_index],
    device[...] = host) raises TypeError, as cupy does, instead of being copied silently;
  * __array__ raises TypeError, as cupy's does;
  * a Numba kernel (kernels/jit.py's run_kernel) called with one raises TypeError: Numba
    would take the numpy array underneath; it cannot take a cupy array.

One thing it cannot refuse: np.asarray(device_array) returns the numpy array underneath, since
numpy never asks a subclass of its own array. The tests catch that indirectly: the numpy array
it gives fails as soon as it meets a device array, and outputs are checked to be on the device.
"""

import contextlib
import math
import sys
import types
from collections import Counter

import numpy as np

transfers = Counter()  # "to_device", "to_host", "scalar"
_INSIDE = [0]  # > 0 while this module's own functions run numpy on the arrays underneath

# the ufuncs behind Python's operators: a + b calls np.add, which reaches __array_ufunc__
OPERATOR_UFUNCS = {
    np.add,
    np.subtract,
    np.multiply,
    np.true_divide,
    np.floor_divide,
    np.remainder,
    np.power,
    np.matmul,
    np.negative,
    np.positive,
    np.absolute,
    np.invert,
    np.less,
    np.less_equal,
    np.greater,
    np.greater_equal,
    np.equal,
    np.not_equal,
    np.bitwise_and,
    np.bitwise_or,
    np.bitwise_xor,
    np.left_shift,
    np.right_shift,
}


def reset() -> None:
    transfers.clear()


@contextlib.contextmanager
def _inside():
    _INSIDE[0] += 1
    try:
        yield
    finally:
        _INSIDE[0] -= 1


def _is_host_array(value) -> bool:
    return isinstance(value, np.ndarray) and not isinstance(value, ndarray)


def _unwrap(value, what: str):
    """The numpy array under a device array; host arrays are refused (cupy refuses them)."""
    if isinstance(value, ndarray):
        return value.view(np.ndarray)
    if _is_host_array(value):
        raise TypeError(f"{what}: a numpy array met a device array (cupy refuses host arrays)")
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v, what) for v in value)
    if isinstance(value, dict):  # keyword arguments (out=...)
        return {k: _unwrap(v, what) for k, v in value.items()}
    return value


def _wrap(value):
    """numpy results as device arrays: arrays, numpy scalars (cupy gives 0-d arrays), tuples."""
    if isinstance(value, np.ndarray):
        return value.view(ndarray)
    if isinstance(value, np.generic):
        return np.asarray(value).view(ndarray)
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


class ndarray(np.ndarray):  # noqa: N801 - cupy's name
    """A device array: numpy underneath, refusing numpy's functions and host arrays."""

    __module__ = "cupy"

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if not _INSIDE[0]:
            if method == "__call__" and ufunc not in OPERATOR_UFUNCS:
                raise TypeError(f"np.{ufunc.__name__} called on a device array: use xp_of")
            if method not in ("__call__", "reduce", "accumulate"):
                raise TypeError(f"np.{ufunc.__name__}.{method} called on a device array")
        where = f"np.{ufunc.__name__}"
        args = _unwrap(inputs, where)
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = _unwrap(out, where)
        result = getattr(ufunc, method)(*args, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        if not _INSIDE[0]:
            raise TypeError(f"np.{func.__name__} called on a device array: use xp_of")
        where = f"np.{func.__name__}"
        return _wrap(func(*_unwrap(args, where), **_unwrap(kwargs, where)))

    def __array_wrap__(self, array, context=None, return_scalar=False):
        return array.view(ndarray)  # reductions give 0-d device arrays, not numpy scalars

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly."
        )

    def __getitem__(self, key):
        result = super().__getitem__(_unwrap(key, "indexing with a host array"))
        return _wrap(result)

    def __setitem__(self, key, value):
        where = "assigning a host array"
        super().__setitem__(_unwrap(key, where), _unwrap(value, where))

    def _scalar(self, convert):
        transfers["scalar"] += 1
        return convert(self.view(np.ndarray))

    def __bool__(self):
        return self._scalar(bool)

    def __int__(self):
        return self._scalar(int)

    def __float__(self):
        return self._scalar(float)

    def __index__(self):
        return self._scalar(lambda a: a.__index__())

    def item(self, *args):
        return self._scalar(lambda a: a.item(*args))

    def tolist(self):
        return self._scalar(lambda a: a.tolist())

    def get(self):
        """The array copied to the host (cupy's ndarray.get)."""
        transfers["to_host"] += 1
        return np.array(self.view(np.ndarray))

    def __repr__(self):
        return f"fake cupy array({self.view(np.ndarray)!r})"

    __str__ = __repr__


def asarray(a, dtype=None):
    """A device array: a device array as it is (or cast), host data copied over (counted)."""
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == dtype else a.astype(dtype)
    transfers["to_device"] += 1
    return np.array(a, dtype=dtype).view(ndarray)


array = asarray


def asnumpy(a):
    """A host copy (counted) of a device array; host data as numpy gives it."""
    if isinstance(a, ndarray):
        return a.get()
    return np.asarray(a)


def get_array_module(*arrays):
    return sys.modules["cupy"] if any(isinstance(a, ndarray) for a in arrays) else np


def _device_function(name, function):
    def run(*args, **kwargs):
        with _inside():
            where = f"cupy.{name}"
            return _wrap(function(*_unwrap(args, where), **_unwrap(kwargs, where)))

    run.__name__ = name
    return run


def __getattr__(name):
    """cupy.<name> for every numpy function: run on the arrays underneath, results on the
    device. dtypes, classes and constants are numpy's own (cupy.float32 is numpy.float32)."""
    value = getattr(np, name)
    if isinstance(value, type) or not callable(value):
        return value
    return _device_function(name, value)


class _Generator:
    """cupy.random.Generator: uniform draws made on the device."""

    def __init__(self, seed):
        self._rng = np.random.default_rng(seed)

    def random(self, size=None, dtype=np.float64):
        return self._rng.random(size, dtype=dtype).view(ndarray)


random = types.SimpleNamespace(default_rng=_Generator)
cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))


# --- cupyx: scatter_add and scipy.special.erf ---------------------------------------------------
def _scatter_add(table, index, values):
    with _inside():
        where = "cupyx.scatter_add"
        np.add.at(_unwrap(table, where), _unwrap(index, where), _unwrap(values, where))


def _erf(x):
    with _inside():
        base = _unwrap(x, "cupyx.scipy.special.erf")
        erf = np.vectorize(math.erf, otypes=[np.float64])
        return _wrap(erf(base).astype(base.dtype))


def _refuse_in_kernels(monkeypatch) -> None:
    """Every Numba kernel runs through kernels/jit.py's run_kernel; wrap each module's copy so
    that a device array among a kernel's arguments raises (Numba would take the numpy array
    underneath; it cannot take a cupy array, and the kernels are the CPU's)."""
    import minibert.quant  # noqa: F401 - loads the int8 and low-bit kernel modules too
    from minibert.kernels import jit

    def refusing(run):
        def run_kernel(py_func, args, parallel=False):
            if any(isinstance(a, ndarray) for a in args):
                raise TypeError(f"Numba kernel {py_func.__name__} called with a device array")
            return run(py_func, args, parallel)

        return run_kernel

    guarded = refusing(jit.run_kernel)
    for name, module in list(sys.modules.items()):
        if name.startswith("minibert.kernels") and getattr(module, "run_kernel", None):
            monkeypatch.setattr(module, "run_kernel", guarded)


def install(monkeypatch) -> types.ModuleType:
    """Make `import cupy` (and cupyx's two functions) find this module for one test."""
    _refuse_in_kernels(monkeypatch)
    this = sys.modules[__spec__.name]
    special = types.ModuleType("cupyx.scipy.special")
    special.erf = _erf
    scipy = types.ModuleType("cupyx.scipy")
    scipy.special = special
    cupyx = types.ModuleType("cupyx")
    cupyx.scatter_add, cupyx.scipy = _scatter_add, scipy
    monkeypatch.setitem(sys.modules, "cupy", this)
    for module in (cupyx, scipy, special):
        monkeypatch.setitem(sys.modules, module.__name__, module)
    reset()
    return this
