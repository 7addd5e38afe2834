"""Throughput of the int8 GEMM kernel next to numpy's float32 GEMM (BLAS), 2 threads each.

    python benchmarks/bench_int8_gemm.py            # Markdown table on stdout
    python benchmarks/bench_int8_gemm.py --repeats 5

Shapes are BERT-base's feed-forward up-projection, M x K x N = tokens x 768 x 3072, for 128 and
1024 tokens. Both sides compute out (M, N) from a (M, K) and a weight in (N, K) layout:
numpy as a @ w.T in float32, ours as int8_matmul(a_q, w_q) into int32. Throughput counts
2 M K N operations (a multiply and an add each); we report medians. The compile time of the
kernel is measured in fresh processes: once with an empty Numba cache (first call compiles),
once more with that cache filled (a later process's start).
"""

import os

os.environ["OMP_NUM_THREADS"] = "2"  # before numpy/numba load their thread pools
os.environ["OPENBLAS_NUM_THREADS"] = "2"
os.environ["MKL_NUM_THREADS"] = "2"
os.environ["NUMBA_NUM_THREADS"] = "2"

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from minibert.kernels.int8_matmul import _int8_matmul_reference, int8_matmul  # noqa: E402

SHAPES = [(128, 768, 3072), (1024, 768, 3072)]

_FIRST_CALL = """
import time
t0 = time.perf_counter()
import numpy as np
from minibert.kernels.int8_matmul import int8_matmul
a = np.ones((4, 8), np.int8)
t1 = time.perf_counter()
int8_matmul(a, a)
print(time.perf_counter() - t1)
"""


def median_time(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def first_call_seconds(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    res = subprocess.run(
        [sys.executable, "-c", _FIRST_CALL], env=env, capture_output=True, text=True, check=True
    )
    return float(res.stdout.split()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for m, k, n in SHAPES:
        a = rng.standard_normal((m, k), dtype=np.float32)
        w = rng.standard_normal((n, k), dtype=np.float32)
        a_q = rng.integers(-128, 128, (m, k), dtype=np.int8)
        w_q = rng.integers(-128, 128, (n, k), dtype=np.int8)
        np.testing.assert_array_equal(int8_matmul(a_q, w_q), _int8_matmul_reference(a_q, w_q))
        ops = 2.0 * m * k * n
        t_f32 = median_time(lambda a=a, w=w: a @ w.T, args.repeats)
        t_i8 = median_time(lambda a=a_q, w=w_q: int8_matmul(a, w), args.repeats)
        rows.append((m, k, n, ops / t_f32 / 1e9, ops / t_i8 / 1e9, t_f32 / t_i8, t_f32, t_i8))

    print("| M x K x N | float32 sgemm GOP/s | int8 kernel GOP/s | int8 / sgemm |")
    print("|---|---|---|---|")
    for m, k, n, g32, g8, ratio, t32, t8 in rows:
        print(
            f"| {m} x {k} x {n} | {g32:.1f} ({t32 * 1e3:.2f} ms) "
            f"| {g8:.1f} ({t8 * 1e3:.2f} ms) | {ratio:.2f} |"
        )
    with tempfile.TemporaryDirectory() as cache:
        cold = first_call_seconds(cache)
        warm = first_call_seconds(cache)
    print()
    print(f"first call, empty Numba cache (compile): {cold:.2f} s")
    print(f"first call, cache filled (later process): {warm:.3f} s")
    print(f"threads: 2; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
