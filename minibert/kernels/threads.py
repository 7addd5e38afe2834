"""How many CPUs this process may really use, and the thread pools sized to match.

A container sees every core of its host in os.cpu_count(), but its scheduler quota (cgroup v2
`cpu.max`, cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`) and its CPU affinity
(os.sched_getaffinity) say how much of them it gets. Numba and BLAS size their pools from the
host count, so a 2-CPU container on a 64-core host would start 64 threads that take turns on
2 CPUs, and every parallel loop would wait for the slowest of them. available_cpus() reads
the quota and the affinity; limit_threads() applies the answer. N processes sharing a machine
(the server's workers, a bulk encode's worker pool, Dask's workers) each get
threads_per_worker(N) = max(1, cpus // N).
"""

import math
import os
import sys
from pathlib import Path

from .jit import blas_info, numba_available

# the variables thread pools read when they start (Numba's, OpenMP's, the BLAS libraries')
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)


def available_cpus(root: str | Path = "/") -> int:
    """CPUs this process can use: the smallest of its affinity and every cgroup quota above it.

    A quota of 1.5 CPUs counts as 2 (rounded up, as the JVM and .NET do): one thread fewer
    would leave half a CPU idle for good, one more is throttled now and then. `root` is the
    file-system root the cgroup files are read under ("/" on a real system; tests build a
    fake tree).
    """
    cpus = _affinity_count()
    quota = _cgroup_quota(Path(root))
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def _affinity_count() -> int:
    """CPUs the scheduler may run this process on (all of os.cpu_count() where affinity is
    not available, e.g. macOS)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _cgroup_quota(root: Path) -> float | None:
    """The tightest CPU quota (in CPUs) of this process's cgroup and its ancestors, or None
    when none is set. A limit set on a parent group applies to every group inside it, so the
    whole path up to the hierarchy's root is read."""
    quotas = [q for q in _v2_quotas(root) + _v1_quotas(root) if q is not None]
    return min(quotas) if quotas else None


def _own_cgroup(root: Path, hierarchy: str) -> str:
    """This process's path inside a cgroup hierarchy, from /proc/self/cgroup: the line
    `0::/path` for v2, `N:cpu,cpuacct:/path` for v1's cpu controller ("/" when unknown, as
    inside a container with its own cgroup namespace)."""
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return "/"
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        controllers = parts[1].split(",")
        if (hierarchy == "v2" and parts[0] == "0" and parts[1] == "") or (
            hierarchy == "v1" and "cpu" in controllers
        ):
            return parts[2] or "/"
    return "/"


def _folders_up(base: Path, own: str) -> list[Path]:
    """base/own, its parents, up to base itself; a path that does not exist under base (the
    host's path seen from inside a container) is skipped and base is still read."""
    folders = [base]
    current = base
    for part in [p for p in own.split("/") if p]:
        current = current / part
        folders.append(current)
    return [f for f in folders if f.is_dir()]


def _v2_quotas(root: Path) -> list[float | None]:
    """cgroup v2: `cpu.max` holds "QUOTA PERIOD" in microseconds, or "max PERIOD"."""
    base = root / "sys/fs/cgroup"
    if not (base / "cgroup.controllers").is_file():
        return []
    return [_read_v2(folder / "cpu.max") for folder in _folders_up(base, _own_cgroup(root, "v2"))]


def _read_v2(file: Path) -> float | None:
    try:
        fields = file.read_text().split()
        if len(fields) != 2 or fields[0] == "max":
            return None
        quota, period = int(fields[0]), int(fields[1])
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v1_quotas(root: Path) -> list[float | None]:
    """cgroup v1: the cpu controller's cpu.cfs_quota_us (-1: no limit) and cpu.cfs_period_us,
    mounted as cpu/ or cpu,cpuacct/."""
    for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        base = root / "sys/fs/cgroup" / name
        if base.is_dir():
            own = _own_cgroup(root, "v1")
            return [_read_v1(folder) for folder in _folders_up(base, own)]
    return []


def _read_v1(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def threads_per_worker(workers: int, cpus: int | None = None) -> int:
    """Threads for each of `workers` processes sharing `cpus` CPUs (default: available_cpus()):
    max(1, cpus // workers)."""
    return max(1, (cpus or available_cpus()) // workers)


def limit_threads(threads: int) -> dict:
    """Size Numba's pool and numpy's BLAS to `threads`, for this process and the threads it
    starts later; returns what was set, for /info and the startup log.

    The pools read THREAD_VARIABLES when they start, so they are set here while Numba is not
    loaded yet (a value the user set wins); once Numba's threads run, changing
    NUMBA_NUM_THREADS is an error, so then only numba.set_num_threads is called, which is per
    thread (a worker thread calls apply_numba_threads() itself as it starts). BLAS is resized
    through threadpoolctl, for the whole process.
    """
    if "numba" not in sys.modules:
        for name in THREAD_VARIABLES:
            os.environ.setdefault(name, str(threads))
    else:
        apply_numba_threads(threads)
    blas = blas_info()  # jit's one view of numpy's BLAS; empty without threadpoolctl
    # Only ever lower BLAS's count. Setting OpenBLAS to the count it already has, from the
    # main thread before its first product, made every later float32 forward whose products
    # run in Numba's threads (kernels/float32_linear.py) take 120-190 ms instead of 8-12 ms
    # (MiniLM, 14 tokens, 2 vCPU): its own threads then contend with Numba's.
    if any(info["num_threads"] > threads for info in blas):
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads, user_api="blas")  # stays in force: not a context
    return {"threads": threads, "blas": min([threads] + [info["num_threads"] for info in blas])}


def apply_numba_threads(threads: int) -> int:
    """Numba's thread count for the calling thread: `threads`, within the pool Numba started
    (NUMBA_NUM_THREADS). Returns the count set, or 0 when Numba is not available."""
    if not numba_available():  # also sets the OpenMP spin policy before importing Numba
        return 0
    import numba

    count = max(1, min(threads, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(count)
    return count
