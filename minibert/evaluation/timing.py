"""Latency and peak memory of a model, each in a fresh process, timed in turns.

A model folder is loaded in a child interpreter limited to `threads` threads (the
OMP/OpenBLAS/MKL/Numba thread variables), which answers requests on stdin: "time 8x128" runs
one forward pass at that shape and replies its seconds; "memory" replies the process's peak
resident set size. time_in_turns keeps one child per model and asks them in turns (a, b, c, a,
b, c, ...), with a pause between passes, so that a slow patch of a shared machine hits every
model alike and no model runs while another's threads still spin; each figure is a median.
A process per model also keeps one model's memory out of another's figure.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..io import load
from ..kernels.threads import THREAD_VARIABLES

SHAPES = ((1, 16), (8, 128))  # (batch, tokens) of the latency figures
WARMUP = 2
PAUSE_S = 0.2  # between two timed passes: the last process's threads stop spinning


def child_code(imports: str = "", forward: str = "None") -> str:
    """The Python code a timing process runs (python -c CODE FOLDER): it notes the bare
    interpreter's peak memory first, before numpy and minibert are imported, then runs
    `imports` and serve_timings with `forward` (an expression in sys.argv[1], the folder)."""
    return (
        "import sys; from pathlib import Path; bare = next((l.split()[1] for l in "
        "Path('/proc/self/status').read_text().splitlines() if l.startswith('VmHWM:')), None) "
        f"if Path('/proc/self/status').is_file() else None; {imports + '; ' if imports else ''}"
        "from minibert.evaluation.timing import serve_timings; "
        f"serve_timings(bare, sys.argv[1], forward={forward})"
    )


CHILD = child_code()  # the model's own call


def _peak_mib(raw=None) -> float:
    """This process's peak resident set size in MiB: the kernel's high-water mark VmHWM where
    /proc has it (Linux), else getrusage's ru_maxrss. On Linux ru_maxrss is no good in a child:
    it keeps the parent's peak across exec, so a child of a big process starts "at" its size."""
    if raw is None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
        except (OSError, ValueError, IndexError):
            pass
        import resource  # only where /proc is missing; not on Windows

        raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return raw / 2**20 if sys.platform == "darwin" else raw / 2**10  # bytes there, KiB here


def serve_timings(bare, folder, forward=None) -> None:
    """Serve timed forward passes of the model in `folder`, one per request on stdin;
    forward(model, ids, mask, types) runs one (default: the model's own call).

    Replies are JSON lines starting with "@" on stdout: first the shapes and the peak RSS
    (MiB) of the bare interpreter, after the imports and after loading; then, for each request
    "time SHAPE", the seconds of one forward pass; for "memory", the peak RSS so far."""
    imports = _peak_mib()
    model = load(folder)
    loaded = _peak_mib()
    V = model.config.vocab_size
    rng = np.random.default_rng(0)
    inputs, shapes = {}, {}
    for batch, tokens in SHAPES:
        T = min(tokens, model.config.max_length)  # a toy model's position table may be shorter
        shapes[f"{batch}x{tokens}"] = f"{batch}x{T}"
        ids = rng.integers(min(1000, V // 2), V, (batch, T))
        inputs[f"{batch}x{tokens}"] = (ids, np.ones_like(ids), np.zeros_like(ids))
    memory = {
        "bare": int(bare) / 2**10 if bare not in (None, "None") else None,
        "imports": imports,
        "loaded": loaded,
    }
    _reply({"shapes_run": shapes, "memory_mib": memory})
    for line in sys.stdin:
        command = line.split()
        if not command or command[0] == "quit":
            break
        if command[0] == "memory":
            _reply(_peak_mib())
            continue
        ids, mask, types = inputs[command[1]]
        start = time.perf_counter()
        if forward is None:
            model(ids, attention_mask=mask, token_type_ids=types)
        else:
            forward(model, ids, mask, types)
        _reply(time.perf_counter() - start)


def _reply(value) -> None:
    sys.stdout.write("@" + json.dumps(value) + "\n")
    sys.stdout.flush()


class Timer:
    """A fresh process holding one model, answering timing requests (see serve_timings);
    child: the Python code it runs (CHILD, or one that passes serve_timings a forward)."""

    def __init__(self, folder: Path, threads: int, child: str = CHILD):
        env = dict(os.environ, **{v: str(threads) for v in THREAD_VARIABLES})
        self.folder = folder
        self.errors = tempfile.TemporaryFile("w+")  # a file, not a pipe: it cannot fill up
        self.process = subprocess.Popen(
            [sys.executable, "-c", child, str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
            env=env,
        )
        try:
            self.first = self._read()
        except BaseException:
            self.close()
            raise

    def ask(self, request: str):
        try:
            self.process.stdin.write(request + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # _read reports why the process ended
        return self._read()

    def _read(self):
        for line in self.process.stdout:
            if line.startswith("@"):
                return json.loads(line[1:])
        self.process.wait()
        self.errors.seek(0)
        tail = self.errors.read().strip().splitlines()[-1:] or ["no message"]
        raise ChildProcessError(f"timing {self.folder} failed: {tail[0]}")

    def close(self):
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.errors):
            if stream is not None and not stream.closed:
                stream.close()


def time_in_turns(jobs, repeats: int, threads: int, bar, pause: float = PAUSE_S) -> None:
    """Latency and memory of each (row, folder) or (row, folder, child code) of jobs, into the
    row: every model in its own process, and the timed passes in turns (a, b, c, a, b, c, ...),
    so that a slow patch of a shared machine hits every model alike; the median per model and
    shape."""
    timers = []
    try:
        for row, folder, *child in jobs:
            bar.set_postfix_str(f"{row['name']} {row['precision']}: loading for timing")
            timers.append(Timer(folder, threads, *child))
        times = [{f"{b}x{t}": [] for b, t in SHAPES} for _ in timers]
        for shape in times[0]:
            for i in range(WARMUP + repeats):
                bar.set_postfix_str(f"latency {shape}, pass {i + 1} of {WARMUP + repeats}")
                for timer, seconds in zip(timers, times, strict=True):
                    time.sleep(pause)  # the other processes' spinning threads go to sleep
                    elapsed = timer.ask(f"time {shape}")
                    if i >= WARMUP:
                        seconds[shape].append(elapsed)
        for (row, *_), timer, seconds in zip(jobs, timers, times, strict=True):
            memory = dict(timer.first["memory_mib"], peak=timer.ask("memory"))
            memory["increase"] = memory["peak"] - memory["imports"]
            row["latency_ms"] = {k: 1000 * float(np.median(v)) for k, v in seconds.items()}
            row["shapes_run"] = timer.first["shapes_run"]
            row["memory_mib"] = memory
            bar.update()
    finally:
        for timer in timers:
            timer.close()
