"""Lazy Numba compilation with a fallback to the numpy reference.

`jit_kernel(py_func, parallel=...)` returns the compiled function, or None when Numba is not
usable here (then the caller runs its reference). Compiled functions use cache=True, so only the
first run on a machine pays the compile time.
"""

import contextlib
import contextvars
import importlib
import os
import sys
import types
import warnings

_STATE = {"fast": True, "numba": None, "warned": False, "announced": False}
# error_model="numpy": a float division by zero gives inf or NaN, as numpy does, instead of the
# Python default's ZeroDivisionError check, a branch inside every loop with a division that
# stops LLVM from vectorising it (the float32 GELU's 1 / (1 + p z) ran scalar: 7.3 ns a value
# on one thread against 1.2 ns vectorised, Intel Xeon). The kernels never divide by zero on
# purpose, and their inputs are validated before they run.
JIT_OPTIONS = {"error_model": "numpy"}
GOMP_SPINCOUNT = 100_000  # rounds an idle OpenMP worker spins before it sleeps: about 1 ms
_COMPILED = {}


def numba_available() -> bool:
    """True when numba imports (checked once)."""
    if _STATE["numba"] is None:
        # Numba's OpenMP workers wait for the next parallel loop by spinning, then sleep.
        # libgomp's default spin (300,000 rounds, about 4 ms here) steals the cores BLAS needs
        # when numpy's product runs next (on 2 cores a (16, 384) GEMM went from 0.1 ms to
        # 4 ms); never spinning makes each of a forward's ~70 kernels wake a sleeping core,
        # which in a virtual machine costs 0.3-0.6 ms after an idle moment. A forward's work
        # now all runs on Numba's threads (kernels/float32_linear.py), so a short spin, about
        # 1 ms, keeps them awake from one kernel to the next and asleep soon after. Read once,
        # when libgomp loads; a user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
        user_policy = "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ
        if not user_policy:
            os.environ["GOMP_SPINCOUNT"] = str(GOMP_SPINCOUNT)
        try:
            import numba

            # Imported first, torch has already loaded an OpenMP runtime with its spinning
            # default, and our setting comes too late: Numba's workers would starve BLAS (4-15x
            # slower). Numba's own workqueue pool does not spin, so we use it instead.
            if (
                "torch" in sys.modules
                and not user_policy
                and "NUMBA_THREADING_LAYER" not in os.environ
            ):
                numba.config.THREADING_LAYER = "workqueue"
            _STATE["numba"] = True
        except Exception as exc:  # ImportError, or a broken llvmlite
            _STATE["numba"] = False
            _warn_once(f"numba could not be imported ({exc}); using the numpy reference kernels")
    return _STATE["numba"]


def in_one_thread() -> bool:
    """Whether the kernels run their one-thread builds here (a small forward, threads_for_work)."""
    return _SERIAL.get()


def use_fast_kernels(enabled: bool = True) -> bool:
    """Choose the Numba kernels (True, the default) or the numpy references (False) for every
    model. Returns the previous setting, so a caller can restore it."""
    previous = _STATE["fast"]
    _STATE["fast"] = bool(enabled)
    return previous


# a model's own choice (PreTrainedModel.kernels) for the duration of its call, per thread
_MODEL_CHOICE = contextvars.ContextVar("minibert_kernels", default=None)
# inside a small forward (threads_for_work): parallel kernels run their one-thread build
_SERIAL = contextvars.ContextVar("minibert_serial", default=False)
KERNEL_CHOICES = ("fast", "reference")


def fast_kernels_enabled() -> bool:
    choice = _MODEL_CHOICE.get()
    if choice == "reference":
        return False
    return _STATE["fast"] and numba_available()


@contextlib.contextmanager
def kernels_for_call(choice: str):
    """Run a block with "fast" (Numba, if usable and not switched off globally) or "reference"
    (numpy) kernels: how a model applies its `kernels` attribute to one call."""
    if choice not in KERNEL_CHOICES:
        raise ValueError(f"kernels must be one of {KERNEL_CHOICES}, got {choice!r}")
    token = _MODEL_CHOICE.set(choice)
    try:
        yield
    finally:
        _MODEL_CHOICE.reset(token)


# A forward whose linear layers do fewer multiply-adds than this runs every Numba kernel (and
# numpy's BLAS) on one thread: waking the second thread costs more there than splitting the
# work saves. int8 multiply-adds count a tenth. Measured on MiniLM, 2 threads, 0.2 s idle
# before each forward (Intel Xeon, 2 vCPU), float32: 1 x 16 tokens (170 M) took 22 ms on one
# thread against 14.5 ms on two. int8, medians of 15 in two runs each, one thread against
# two: 1 x 32 4.7 against 11.8-11.9 ms, 1 x 64 6.9-7.3 against 12.0-14.2, 1 x 96 9.5 against
# 11.6-15.6, 1 x 128 12.3-15.6 against 11.4-15.6 (the two builds even there): the int8 GEMM's
# parallel jobs and the first wake-up of the second thread after idle (about 1.4 ms, timed on
# the first parallel kernel of a forward) cost more than short inputs save, so int8 work
# counts a tenth and MiniLM int8 runs on one thread up to about 1 x 110 tokens.
SERIAL_WORK = 120_000_000
INT8_COST = 0.1  # an int8 multiply-add, in float32 multiply-adds, for the thread choice

# A one-shot command (`minibert encode "a" "b"`) may not need the kernels at all. Importing
# Numba and loading its cached kernels takes about 0.3 s and 110 MB of memory (the import 65 MB,
# its compiler's set-up on the first cached kernel 45 MB, mostly LLVM's code), while the numpy
# reference runs a short sentence through MiniLM in 15-25 ms. Seconds per multiply-add of the
# linear layers on the reference path, measured with all-MiniLM-L6-v2 (float32) and the bundled
# int8 model on 8 sentences of 15 tokens (numpy's integer products have no BLAS), and the
# kernels' loading time, on an Intel Xeon (2 vCPU); pick_kernels compares the two.
REFERENCE_SECONDS_PER_MULTIPLY_ADD = {"float32": 1.1e-10, "int8": 6e-10}
KERNEL_LOAD_SECONDS = 0.3


def pick_kernels(float32_work: float, int8_work: float) -> str:
    """ "reference" when the numpy reference would finish the work (multiply-adds of the linear
    layers, float32 and int8) sooner than loading the kernels takes, else "fast". For commands
    that run once and exit; a long-lived process pays the loading once, and keeps "fast"."""
    rate = REFERENCE_SECONDS_PER_MULTIPLY_ADD
    seconds = float32_work * rate["float32"] + int8_work * rate["int8"]
    return "reference" if seconds < KERNEL_LOAD_SECONDS else "fast"


_BLAS = {"controller": None, "single": 0, "called_from_kernels": False}


def _blas_controller():
    """threadpoolctl's view of the BLAS numpy loaded (None without threadpoolctl), made once:
    finding the libraries takes milliseconds, limiting them then ~10 microseconds."""
    if _BLAS["controller"] is None:
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS["controller"] = ThreadpoolController()
        except Exception:  # not installed, or a BLAS it cannot handle: leave BLAS alone
            _BLAS["controller"] = False
    return _BLAS["controller"] or None


def blas_info() -> list[dict]:
    """numpy's BLAS as threadpoolctl sees it: library, version, kernels, threads (for `minibert
    info --cpu`); empty without threadpoolctl."""
    blas = _blas_controller()
    if blas is None:
        return []
    keys = ("internal_api", "version", "architecture", "num_threads")
    return [
        {k: info.get(k) for k in keys} for info in blas.info() if info.get("user_api") == "blas"
    ]


def kernels_call_blas() -> None:
    """Note that kernels call numpy's BLAS from Numba's threads (float32_linear found it)."""
    _BLAS["called_from_kernels"] = True


def blas_libraries() -> list[str]:
    """The files of the BLAS libraries numpy loaded (empty without threadpoolctl)."""
    blas = _blas_controller()
    if blas is None:
        return []
    return [info["filepath"] for info in blas.info() if info.get("user_api") == "blas"]


@contextlib.contextmanager
def single_threaded_blas():
    """numpy's BLAS on one thread for the block, for kernels that call it from several of
    Numba's threads at once (kernels/float32_linear.py). Re-entrant: the outermost block sets
    and restores the limit. Without threadpoolctl, BLAS is left as it is."""
    blas = _blas_controller()
    with contextlib.ExitStack() as stack:
        if blas is not None and _BLAS["single"] == 0:
            stack.enter_context(blas.limit(limits=1, user_api="blas"))
        _BLAS["single"] += 1
        try:
            yield
        finally:
            _BLAS["single"] -= 1


@contextlib.contextmanager
def threads_for_work(multiply_adds: float, blas: bool = True):
    """The threads of one model forward, given the multiply-adds of its linear layers (int8 ones
    at INT8_COST). Where the float32 linear layers call BLAS from Numba's threads
    (kernels/float32_linear.py, once it has found BLAS's sgemm), numpy's BLAS is kept on one
    thread for the whole forward rather than per layer. A small forward (below SERIAL_WORK)
    runs Numba's kernels on one thread too: each parallel loop wakes the second thread, which
    costs more there than splitting the work saves. On the reference path (and in a process
    without Numba) only BLAS's threads are chosen.

    blas=False says that the forward's fast kernels call no BLAS (every linear layer int8):
    BLAS's threads are then left as they are. Limiting them through threadpoolctl and back
    costs about 10 us a forward, and ten times that after an idle moment."""
    serial = multiply_adds < SERIAL_WORK
    if not fast_kernels_enabled():  # imports Numba on the first forward
        # the reference path's BLAS on one thread too where the work is small: a (16, 384)
        # product waits 0.4-8 ms for a second BLAS thread in a virtual machine, against 0.02
        # ms on one
        with single_threaded_blas() if serial else contextlib.nullcontext():
            yield
        return
    import numba

    with contextlib.ExitStack() as stack:
        if blas and (_BLAS["called_from_kernels"] or serial):
            stack.enter_context(single_threaded_blas())
        if serial:  # the kernels' one-thread builds (run_kernel); Numba's pool on one thread too
            token = _SERIAL.set(True)
            stack.callback(_SERIAL.reset, token)
            previous = numba.get_num_threads()
            if previous > 1:
                numba.set_num_threads(1)
                stack.callback(numba.set_num_threads, previous)
        yield


def device(fn=None, *, inline: bool = True, reassociate: bool = False):
    """Mark a helper that kernels call per element: it is compiled and inlined into each kernel
    that uses it (and stays a plain Python function until then). With inline=False it is
    compiled once, as a function of its own that the kernels call: for a large helper (the
    attention kernel's per-pair body and its tiled product, called twice), whose code is then
    built once instead of at each call site.

    reassociate=True lets LLVM reorder the helper's float additions (fast-math's `reassoc`
    flag, and nothing else: NaN, infinities and signed zeros keep their IEEE meaning), so that
    a sum over a row becomes vector adds into several partial sums. Numba keeps float order
    strict otherwise, and a row sum runs one scalar add at a time. The helper is compiled as a
    function of its own (inline=False), since its flags would not survive inlining into a
    kernel compiled without them. The result differs from the strict left-to-right sum by
    rounding only, as numpy's own pairwise sums do."""

    def mark(fn):
        fn._minibert_device = True
        fn._minibert_inline = inline and not reassociate
        fn._minibert_reassociate = reassociate
        return fn

    return mark if fn is None else mark(fn)


def lowered_as(target: str):
    """Mark a readable numpy helper whose compiled form is a Numba intrinsic written elsewhere
    ("module:name", e.g. the int8 GEMM's vector loop in kernels/simd.py): kernels call the
    helper by name, and compiling them binds the name to the intrinsic. The helper itself stays
    what tests and readers compare the intrinsic against."""

    def mark(fn):
        # a copy of fn, so that one numpy statement can stand for several intrinsics
        copy = types.FunctionType(
            fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__
        )
        copy.__doc__ = fn.__doc__
        copy._minibert_device = True
        copy._minibert_lowered = target
        return copy

    return mark


def _bind_devices(py_func) -> None:
    """Replace the device helpers py_func refers to by their compiled, inlined versions."""
    import numba

    for name in py_func.__code__.co_names:
        helper = py_func.__globals__.get(name)
        # a plain function still: once compiled, the dispatcher replaces it in these globals
        if isinstance(helper, types.FunctionType) and getattr(helper, "_minibert_device", False):
            target = getattr(helper, "_minibert_lowered", None)
            if target is not None:
                module, attr = target.split(":")
                py_func.__globals__[name] = getattr(importlib.import_module(module), attr)
                continue
            _bind_devices(helper)
            inline = "always" if getattr(helper, "_minibert_inline", True) else "never"
            options = dict(JIT_OPTIONS)
            if getattr(helper, "_minibert_reassociate", False):
                options["fastmath"] = {"reassoc"}
            py_func.__globals__[name] = numba.njit(cache=True, inline=inline, **options)(helper)


def jit_kernel(py_func, parallel: bool = False):
    """The Numba-compiled `py_func` (njit, cache=True), or None if fast kernels are off or Numba
    is unusable. Compilation happens lazily on the first call of the returned dispatcher."""
    if not fast_kernels_enabled():
        return None
    key = (py_func, parallel)
    if key not in _COMPILED:
        import numba

        # kernel files write `prange` and bind it to range at import, so that importing them
        # does not import numba; here, just before compiling, it becomes numba.prange
        py_func.__globals__["prange"] = numba.prange
        target = py_func if parallel or "prange" not in py_func.__code__.co_names else None
        target = target or _one_thread_copy(py_func)
        _bind_devices(target)
        _COMPILED[key] = numba.njit(cache=True, parallel=parallel, **JIT_OPTIONS)(target)
        _announce_compile(_COMPILED[key])
    return _COMPILED[key]


def _one_thread_copy(py_func):
    """A parallel kernel under another name, for its one-thread build (prange is then range).
    Numba's cache knows a function by its name and line, not by parallel=, so the two builds
    need two names to sit side by side in the cache."""
    copy = types.FunctionType(
        py_func.__code__, py_func.__globals__, py_func.__name__, py_func.__defaults__
    )
    copy.__qualname__ = py_func.__qualname__ + "_one_thread"
    copy.__doc__ = py_func.__doc__
    return copy


def _announce_compile(dispatcher) -> None:
    """One line on stderr, once per process, before the first kernel that Numba's cache cannot
    serve compiles (a fresh install, or a package upgrade): the first run takes seconds, and
    should say why. Later runs load the compiled kernels from the cache and print nothing."""
    if _STATE["announced"]:
        return
    try:  # Numba's cache of this kernel: beside the source, or user-wide if that is read-only
        folder = dispatcher._cache._cache_path
        cached = os.path.exists(dispatcher._cache._cache_file._index_path)
    except AttributeError:  # another Numba's internals: say nothing rather than guess
        return
    if not cached:
        _STATE["announced"] = True
        print(
            "minibert: compiling its Numba kernels for this CPU; this happens once, later runs "
            f"load them from {folder}",
            file=sys.stderr,
        )


def run_kernel(py_func, args, parallel: bool = False) -> bool:
    """Call the compiled kernel on args; return False (after one warning for the whole session)
    if it cannot be compiled here, so that the caller runs its reference. Only that kernel
    falls back; the others stay fast."""
    parallel = parallel and not _SERIAL.get()  # a small forward: the one-thread build
    try:
        fn = jit_kernel(py_func, parallel=parallel)
        if fn is None:
            return False
        fn(*args)
    except Exception as exc:
        if not _is_compile_error(exc):
            raise
        _COMPILED[(py_func, parallel)] = None
        name = py_func.__name__
        _warn_once(f"numba failed to compile {name} ({exc}); it runs as the numpy reference")
        return False
    return True


def _is_compile_error(exc) -> bool:
    """A Numba typing or lowering error, or an intrinsic's module that failed to import."""
    return isinstance(exc, ImportError) or type(exc).__module__.startswith(("numba", "llvmlite"))


def _warn_once(message: str) -> None:
    if not _STATE["warned"]:
        _STATE["warned"] = True
        warnings.warn(message, RuntimeWarning, stacklevel=3)
