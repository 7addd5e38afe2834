"""Where the time of one minibert forward goes: seconds per kind of work, float32 and int8.

    python benchmarks/profile_forward.py                     # MiniLM, 8 x 128, Markdown table
    python benchmarks/profile_forward.py --batch 1 --tokens 16 --repeats 20
    python benchmarks/profile_forward.py --batch 1 --tokens 128 --pause 0.2   # after idle

Runs the forward under cProfile and adds up each function's own time by the kind of work it
does: the float32 linear layers (BLAS blocks, or the transposed tiles for few rows, with their
epilogues), BLAS's products on the unfused attention path, the int8 layer run in one call
(kernels/int8_layer.py: its GEMMs, attention and LayerNorms together), the int8 GEMM with its
fused epilogue, quantising activations, attention, LayerNorm, GELU, and the rest (Python:
module calls, checks, reshapes). Numba kernels release nothing to the profiler, so a
kernel's time is its wrapper's own time; the sum is the profiled forward time (cProfile adds a
few percent of overhead). 2 threads, as the other benchmarks.
"""

import os

for _var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "2"
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "12")  # as `import minibert` sets it

import argparse  # noqa: E402
import cProfile  # noqa: E402
import pstats  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import minibert  # noqa: E402
from minibert.pretrained import minilm_path  # noqa: E402

# (kind, predicate on (file, function name)); the first match wins
KINDS = (
    ("int8 layer in one call (all its kernels)", lambda f, n: n.startswith("_layer")),
    ("int8 GEMM + epilogue", lambda f, n: n.startswith("_linear_") and "int8_matmul" in f),
    ("quantise activations", lambda f, n: n == "_quantize_rows_numba"),
    (
        "float32 linear (sgemm blocks or tiles + epilogue)",
        lambda f, n: (
            n in ("_linear_numba", "_linear_transposed", "_transpose_rows", "linear_forward")
        ),
    ),
    ("attention kernel", lambda f, n: n == "_attention_context_numba"),
    ("masked softmax", lambda f, n: n == "_masked_softmax_numba"),
    ("attention (numpy/BLAS)", lambda f, n: n == "attention_forward"),
    ("LayerNorm (+ residual)", lambda f, n: "layernorm" in n),
    ("GELU (+ bias)", lambda f, n: "gelu" in n),
    ("embeddings", lambda f, n: "embedding" in f or "embedding" in n),
)


def profile(model, ids, repeats: int, pause: float = 0.0) -> dict:
    model(ids)  # warm-up: compiled kernels loaded
    profiler = cProfile.Profile()
    wall = 0.0
    for _ in range(repeats):
        time.sleep(pause)  # idle threads and cores, as between a server's requests
        start = time.perf_counter()
        profiler.enable()
        model(ids)
        profiler.disable()
        wall += (time.perf_counter() - start) / repeats
    stats = pstats.Stats(profiler).stats
    totals = dict.fromkeys([k for k, _ in KINDS] + ["other (Python)"], 0.0)
    for (file, _, name), (_, _, own, _, _) in stats.items():
        kind = next((k for k, match in KINDS if match(file, name)), "other (Python)")
        totals[kind] += own / repeats
    return {"wall": wall, "parts": totals}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--pause",
        type=float,
        default=0.0,
        help="seconds of idle before each forward (the latency benchmark waits 0.2 s): "
        "shows what waking sleeping threads costs",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="a model folder (default: all-MiniLM-L6-v2 from its wheel), e.g. a BERT-base one",
    )
    args = parser.parse_args(argv)
    folder = args.model or minilm_path()
    model = minibert.load(folder)
    runs = {"float32 (Numba)": model, "int8": minibert.quantize(model)}
    ids = np.random.default_rng(0).integers(1000, 30000, (args.batch, args.tokens))
    results = {name: profile(m, ids, args.repeats, args.pause) for name, m in runs.items()}
    kinds = [k for k in results["int8"]["parts"]]
    print(
        f"{'MiniLM' if args.model is None else os.path.basename(os.path.normpath(folder))}, "
        f"batch {args.batch} x {args.tokens} tokens, {args.repeats} forwards each, "
        f"{args.pause:g} s idle before each"
    )
    print(f"load average {os.getloadavg()[0]:.2f}\n")
    print("| work | " + " | ".join(f"{n} ms" for n in results) + " |")
    print("|---|" + "---:|" * len(results))
    for kind in kinds:
        cells = [results[n]["parts"][kind] * 1e3 for n in results]
        if max(cells) >= 0.05:
            print(f"| {kind} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    print(
        "| **forward (profiled)** | "
        + " | ".join(f"**{r['wall'] * 1e3:.1f}**" for r in results.values())
        + " |"
    )


if __name__ == "__main__":
    main()
