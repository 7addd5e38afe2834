"""Worker processes and timing in turns, shared by the benchmark scripts.

Each library under test runs in its own process, so that no two of them share a thread pool or an
OpenMP runtime (docs/benchmarks.md, "Why the libraries run in separate processes"). The parent
holds one `Worker` per library and asks them for one timed run at a time, in turns.

Importing this module sets the thread-count variables, so import it before numpy, torch or numba
start their thread pools; spawned workers inherit the environment.
"""

import multiprocessing
import os
import statistics
import time

THREADS = 2
for _var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(THREADS)
# what `import minibert` sets when it comes before numpy (minibert/__init__.py: OpenBLAS's
# threads then sleep right after a product instead of spinning on the cores Numba needs next);
# set here for the workers that import numpy first. Only numpy's OpenBLAS reads it.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "12")

# Between two timed runs we wait a little: the threads of the library that just ran spin for a
# while before they sleep (OpenMP's spin count, OpenBLAS's thread timeout, onnxruntime's
# spinning thread pool), and they must not eat the cores of the next run.
PAUSE_S = 0.2


class Unavailable(Exception):
    """A library (or one of its features) is not installed or not usable here; the message says
    why. Benchmarks report such a row as "n/a" instead of failing."""


class Local:
    """An object built in this process; same interface as Worker."""

    def __init__(self, factory, *args):
        self.target = factory(*args)

    def call(self, method: str, *args):
        return getattr(self.target, method)(*args)

    def close(self):
        pass


class Worker:
    """An object built by `factory(*args)` in a fresh process (spawned, so it inherits no thread
    pools). `call(method, *args)` runs one of its methods there and returns the result; an
    Unavailable raised there is raised here too. `factory` must be importable by name (a
    module-level class or function)."""

    def __init__(self, factory, *args):
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(factory, args, child), daemon=True)
        self.process.start()

    def call(self, method: str, *args):
        self.conn.send((method, args))
        try:
            status, value = self.conn.recv()
        except EOFError:
            raise RuntimeError(f"worker process died in {method}") from None
        if status == "unavailable":
            raise Unavailable(value)
        if status == "error":
            raise RuntimeError(f"worker failed in {method}: {value}")
        return value

    def close(self):
        if self.process.is_alive():
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        self.process.join(timeout=30)


def _serve(factory, args, conn) -> None:
    target = None
    while (message := conn.recv()) is not None:
        method, call_args = message
        try:
            if target is None:  # built on the first call, so that its errors can be reported
                target = factory(*args)
            conn.send(("ok", getattr(target, method)(*call_args)))
        except Unavailable as exc:
            conn.send(("unavailable", str(exc)))
        except Exception as exc:  # report it to the parent, which raises
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


def time_in_turns(sides: dict, runs: int, warmup: int = 2, budget_s: float | None = None) -> dict:
    """{name: [seconds of each timed run]} for sides {name: worker whose `run` returns seconds}.

    The sides are timed in turns (a, b, c, a, b, c, ...) so that a slow patch of the machine hits
    them alike. With budget_s, a side stops being timed once it has 3 runs and has spent more
    than budget_s in timed runs (for a side far slower than the others)."""
    times = {name: [] for name in sides}
    for i in range(warmup + runs):
        for name, side in sides.items():
            if budget_s is not None and len(times[name]) >= 3 and sum(times[name]) > budget_s:
                continue
            time.sleep(PAUSE_S)
            seconds = side.call("run")
            if i >= warmup:
                times[name].append(seconds)
    return times


def median(values) -> float:
    return statistics.median(values)
