"""Matrix-product throughput on BERT shapes: numpy's float32 GEMM (BLAS) next to int8 GEMMs,
minibert's and, where installed, torch's and onnxruntime's, 2 threads each.

    python benchmarks/bench_int8_gemm.py                 # Markdown table on stdout
    python benchmarks/bench_int8_gemm.py --quick         # two small shapes, few repeats
    python benchmarks/bench_int8_gemm.py --json gemm.json --output gemm.md

Each product is out (M, N) = a (M, K) times a weight w (N, K) transposed, M x K x N = tokens x
in x out of a feed-forward layer: BERT-base (768 -> 3072) and MiniLM (384 -> 1536), for 128 and
1024 tokens. The contenders:

  numpy fp32 sgemm          a @ w.T in float32 (numpy's BLAS)
  minibert int8             int8_matmul(a_q, pack_weight(w_q, path)): int8 in, exact int32 out,
                            on the path kernels/cpu.py chooses (AMX, VNNI, AVX-512 or AVX2); the
                            weight is packed once, as quantize() does, the activations each call
  torch _int_mm             torch._int_mm(a_q, w_q.T): int8 in, int32 out
  onnxruntime s8 x s8       a one-node ONNX graph, MatMulInteger with int8 activations
  onnxruntime u8 x s8       the same with uint8 activations, the form onnxruntime's own
                            quantize_dynamic produces

The weight is a constant of each (a graph initializer for onnxruntime). Every library runs in its
own worker process, timed in turns; a timed run is the mean of back-to-back products over at
least SUSTAIN_S (sustained throughput; one product after an idle pause measures the machine's
wake-up more than the product); throughput counts 2 M K N operations and we report medians.
Each int8 result is compared with the exact int32 product (onnxruntime's u8 x s8 path
saturates int16 pair sums on CPUs without VNNI, so it is not always exact). The kernel's compile
time is measured in fresh processes: once with an empty Numba cache (first call compiles), once
more with that cache filled (a later process's start).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# workers sets the thread counts, so it comes before numpy
from workers import THREADS, Unavailable, Worker, median, time_in_turns  # noqa: E402

# isort: split
import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

SHAPES = [(128, 768, 3072), (1024, 768, 3072), (128, 384, 1536), (1024, 384, 1536)]
QUICK_SHAPES = [(128, 768, 3072), (128, 384, 1536)]
GEMMS = {
    "numpy-sgemm": "numpy fp32 sgemm",
    "minibert-int8": "minibert int8 (packed weight, the CPU's path)",
    "torch-int-mm": "torch `_int_mm`",
    "ort-s8s8": "onnxruntime MatMulInteger s8 x s8",
    "ort-u8s8": "onnxruntime MatMulInteger u8 x s8",
}
BUDGET_S = 15.0  # a contender stops being timed after 3 runs that took longer than this in all
# One timed run is the mean of back-to-back products over at least this long. A single product
# after the 0.2 s the workers idle between turns measures the machine waking up instead: on the
# Intel Xeon of docs/benchmarks.md, a 0.5 ms int8 product took 4.3 ms after 0.2 s idle, and
# 2.2 ms against 7.0 ms on AVX2 (cold caches, a core coming back up to speed).
SUSTAIN_S = 0.05

_FIRST_CALL = """
import time
import numpy as np
from minibert.kernels.int8_matmul import int8_matmul
a = np.ones((4, 8), np.int8)
start = time.perf_counter()
int8_matmul(a, a)
print(time.perf_counter() - start)
"""


def operands(m, k, n, seed=0):
    """The same inputs in every worker: float32 a, w and int8 a_q, w_q (int8 in [-127, 127])."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k), dtype=np.float32)
    w = rng.standard_normal((n, k), dtype=np.float32)
    a_q = rng.integers(-127, 128, (m, k), dtype=np.int8)
    w_q = rng.integers(-127, 128, (n, k), dtype=np.int8)
    return a, w, a_q, w_q


class Gemm:
    """One contender in a worker process: `setup` prepares a shape, `run` times one product."""

    def __init__(self, name: str):
        self.name = name

    def setup(self, m, k, n):
        """Prepare the operands of one shape; returns the product (None for float32)."""
        a, w, a_q, w_q = operands(m, k, n)
        if self.name == "numpy-sgemm":
            self.fn = lambda: a @ w.T
            self.fn()
            return None
        if self.name == "minibert-int8":
            from minibert.kernels import cpu
            from minibert.kernels.int8_layout import pack_weight
            from minibert.kernels.int8_matmul import int8_matmul

            packed = pack_weight(w_q, cpu.int8_path())  # once, as quantize() does
            self.fn = lambda: int8_matmul(a_q, packed)
        elif self.name == "torch-int-mm":
            torch = _import("torch")
            torch.set_num_threads(THREADS)
            if not hasattr(torch, "_int_mm"):
                raise Unavailable(f"torch {torch.__version__} has no _int_mm")
            a_t, w_t = torch.from_numpy(a_q), torch.from_numpy(np.ascontiguousarray(w_q.T))
            self.fn = lambda: torch._int_mm(a_t, w_t).numpy()
        else:
            self.fn = self._onnxruntime(a_q, w_q, unsigned=self.name == "ort-u8s8")
        return self.fn()

    def _onnxruntime(self, a_q, w_q, unsigned):
        """A MatMulInteger graph with the weight (K, N) as an initializer; returns its runner."""
        ort = _import("onnxruntime")
        onnx = _import("onnx")
        from onnx import TensorProto, helper, numpy_helper

        a_type = TensorProto.UINT8 if unsigned else TensorProto.INT8
        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["a", "w"], ["out"])],
            "int8_gemm",
            [helper.make_tensor_value_info("a", a_type, ["M", a_q.shape[1]])],
            [helper.make_tensor_value_info("out", TensorProto.INT32, ["M", w_q.shape[0]])],
            [numpy_helper.from_array(np.ascontiguousarray(w_q.T), "w")],
        )
        # IR version 10 (onnx 1.16): a newer onnx package would write one onnxruntime can't read
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
        onnx.checker.check_model(model)
        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        # u8: the activations shifted by 128 (a zero point of 128, as quantize_dynamic uses);
        # the check in `bench` accounts for the shift
        a_in = (a_q.astype(np.int16) + 128).astype(np.uint8) if unsigned else a_q
        return lambda: session.run(None, {"a": a_in})[0]

    def run(self) -> float:
        """Seconds per product, sustained: one untimed product (the worker has idled while the
        others ran), then back-to-back products for at least SUSTAIN_S."""
        self.fn()
        count, start = 0, time.perf_counter()
        while True:
            self.fn()
            count += 1
            elapsed = time.perf_counter() - start
            if elapsed >= SUSTAIN_S:
                return elapsed / count


def _import(module):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise Unavailable(f"{module} is not installed ({exc})") from None


def exact_product(a_q, w_q, shift=0):
    """(a_q + shift) @ w_q.T exactly: float64 BLAS is exact here (|sum| < 2^53)."""
    return ((a_q.astype(np.float64) + shift) @ w_q.astype(np.float64).T).astype(np.int64)


def bench(shapes, runs, names=tuple(GEMMS)) -> list[dict]:
    """One row per contender and shape: GOP/s, ms, ratio to sgemm, exactness; n/a where missing."""
    workers, reasons = {}, {}
    for name in names:
        workers[name] = Worker(Gemm, name)
    rows = []
    for m, k, n in shapes:
        _, _, a_q, w_q = operands(m, k, n)
        exact = {}
        sides = {}
        for name, worker in workers.items():
            if name in reasons:
                continue
            try:
                out = worker.call("setup", m, k, n)
            except Unavailable as exc:
                reasons[name] = str(exc)
                continue
            sides[name] = worker
            if out is not None:
                shift = 128 if name == "ort-u8s8" else 0
                error = np.abs(out.astype(np.int64) - exact_product(a_q, w_q, shift))
                exact[name] = int(error.max())
                del out
        times = time_in_turns(sides, runs, warmup=1, budget_s=BUDGET_S)
        ops = 2.0 * m * k * n
        base = median(times["numpy-sgemm"]) if "numpy-sgemm" in times else None
        for name in names:
            row = {"shape": f"{m} x {k} x {n}", "name": name, "label": GEMMS[name]}
            if name in times:
                seconds = median(times[name])
                row.update(
                    ms=seconds * 1e3,
                    gops=ops / seconds / 1e9,
                    vs_sgemm=base / seconds if base else None,
                    exact=exact.get(name),
                    runs=len(times[name]),
                )
            else:
                row["unavailable"] = reasons.get(name, "not run")
            rows.append(row)
        print(
            f"  {m} x {k} x {n}: " + ", ".join(_short(r) for r in rows[-len(names) :]),
            file=sys.stderr,
        )
    for worker in workers.values():
        worker.close()
    return rows


def _short(row):
    return f"{row['name']} {row['gops']:.1f}" if "gops" in row else f"{row['name']} n/a"


def first_call_seconds(cache_dir) -> float:
    """Seconds of the first int8_matmul call in a fresh process using this Numba cache."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_CALL], env=env, capture_output=True, text=True, check=True
    )
    return float(done.stdout.split()[-1])


def markdown(results: dict) -> str:
    """The throughput table (and the compile times) as Markdown."""
    lines = [
        "**Matrix-product throughput** (GOP/s = 2 M K N / median time; higher is better; "
        "ratio > 1: faster than numpy's float32 sgemm; max int error: largest difference from "
        "the exact int32 product)",
        "",
        "| M x K x N | contender | GOP/s | ms | / sgemm | max int error | runs |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    for r in results["rows"]:
        if "gops" not in r:
            lines.append(f"| {r['shape']} | {r['label']} | n/a ({r['unavailable']}) | | | | |")
            continue
        ratio = "-" if r["vs_sgemm"] is None else f"{r['vs_sgemm']:.2f}"
        exact = "-" if r["exact"] is None else ("exact" if r["exact"] == 0 else f"{r['exact']}")
        lines.append(
            f"| {r['shape']} | {r['label']} | {r['gops']:.1f} | {r['ms']:.2f} | {ratio} | "
            f"{exact} | {r['runs']} |"
        )
    if results.get("compile_s") is not None:
        lines += [
            "",
            f"minibert's int8 kernel, first call in a fresh process: {results['compile_s']:.2f} s "
            f"with an empty Numba cache (compiling), {results['cached_s']:.3f} s with the cache "
            "filled.",
        ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two shapes, few repeats")
    parser.add_argument("--repeats", type=int, help="timed runs per contender (default 11, 3)")
    parser.add_argument(
        "--contenders", nargs="+", choices=list(GEMMS), default=list(GEMMS), help="what to time"
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--output", type=Path, help="also write the Markdown table here")
    args = parser.parse_args(argv)
    runs = args.repeats or (3 if args.quick else 11)
    print("matrix-product throughput", file=sys.stderr)
    results = {
        "date": datetime.date.today().isoformat(),
        "threads": THREADS,
        "rows": bench(QUICK_SHAPES if args.quick else SHAPES, runs, tuple(args.contenders)),
    }
    with tempfile.TemporaryDirectory() as cache:
        results["compile_s"] = first_call_seconds(cache)
        results["cached_s"] = first_call_seconds(cache)
    results["load"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    report = markdown(results)
    print(report)
    if args.output:
        args.output.write_text(report, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
