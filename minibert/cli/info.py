"""`minibert info PATH`: what a checkpoint holds; `minibert info --cpu`: what the CPU can do.

For a checkpoint: sizes, parameters by component, weight files and stored dtypes. For the
CPU: its model and the features minibert's kernels use, the int8 GEMM path each layer takes
(kernels/cpu.py), the Numba and BLAS settings the float32 work runs with.
"""

import json

from ..checkpoint import stored_dtypes, weight_files
from ..io import load
from ..kernels import cpu, float32_linear
from ..kernels.jit import blas_info
from ..models.base import COMPONENTS
from .common import UsageError


def register(command) -> None:
    sub = command(
        "info",
        cmd_info,
        "Show what a checkpoint holds.",
        """
        Prints the architecture, the sizes (L layers, C hidden, H heads, F feed-forward,
        V vocabulary, P positions, and E embedding for ALBERT), parameter counts by component
        (embeddings, encoder, pooler, heads) with percentages, the weight files with their
        size on disk, and the dtypes of the stored tensors. The model is loaded, so a broken
        checkpoint is reported here. --cpu prints the processor's features, the int8 GEMM
        path this machine takes (amx, avx512-vnni, avx-vnni, avx512 or avx2; MINIBERT_ISA
        caps it, e.g. MINIBERT_ISA=avx2), and the Numba and BLAS thread settings.
        """,
        "minibert info path/to/bert-base-uncased --json",
    )
    sub.add_argument("path", nargs="?", metavar="PATH", help="model folder (config.json + weights)")
    sub.add_argument("--cpu", action="store_true", help="describe the CPU and the kernel paths")
    sub.add_argument("--json", action="store_true", help="print one JSON object instead")


def cmd_info(args) -> int:
    if args.path is None and not args.cpu:
        raise UsageError("give a model folder (minibert info PATH) or --cpu, or both")
    reports = {}
    if args.cpu:
        reports["cpu"] = cpu_info()
    if args.path is not None:
        reports["model"] = model_info(args.path)
    if args.json:
        print(json.dumps(reports if len(reports) > 1 else next(iter(reports.values())), indent=2))
        return 0
    if "cpu" in reports:
        _print_cpu(reports["cpu"])
    if "model" in reports:
        _print_model(reports["model"])
    return 0


def cpu_info() -> dict:
    """What `minibert info --cpu` shows: kernels/cpu.describe() plus the thread settings."""
    import numba  # kept out of `minibert --help`: Numba loads only where kernels are asked about

    report = cpu.describe()
    report["numba"] = {"version": numba.__version__, "threads": numba.get_num_threads()}
    report["blas"] = blas_info()
    report["float32_linear"] = {
        "few_rows": float32_linear.FEW_ROWS,
        "few_rows_path": float32_linear.linear_path(1),
        "many_rows_path": float32_linear.linear_path(float32_linear.FEW_ROWS + 1),
    }
    return report


def _print_cpu(report: dict) -> None:
    llvm = f" (LLVM tunes for {report['llvm_cpu']})" if report["llvm_cpu"] else ""
    print(f"cpu           {report['cpu']}{llvm}")
    print(f"features      {' '.join(report['features']) or 'none of the vector extensions'}")
    cap = f"; capped by MINIBERT_ISA={report['isa_cap']}" if report["isa_cap"] else ""
    print(f"int8 GEMM     {report['int8_path']}{cap}")
    print(f"  can run     {', '.join(report['int8_paths_available'])}")
    for path, why in report["skipped"].items():
        print(f"  not {path:<9} {why}")
    threads = report["numba"]["threads"]
    print(f"float32 ops   Numba {report['numba']['version']} kernels, {threads} thread(s)")
    linear = report["float32_linear"]
    print(
        f"float32 GEMM  {linear['few_rows_path']} up to {linear['few_rows']} rows, "
        f"{linear['many_rows_path']} above"
    )
    for blas in report["blas"] or [{}]:
        if not blas:
            print("BLAS          unknown (threadpoolctl is not installed)")
            continue
        print(
            f"BLAS          {blas['internal_api']} {blas['version']}, "
            f"{blas['architecture']} kernels, {blas['num_threads']} thread(s)"
        )


def _print_model(report: dict) -> None:
    sizes = report["sizes"]
    print(f"model         {report['path']}")
    print(f"architecture  {report['architecture']} (model_type {report['model_type']})")
    letters = [f"{k}={v:,}" for k, v in sizes.items()]
    print(f"sizes         {'  '.join(letters)}")
    print("              " + _size_legend(sizes))
    params = report["parameters"]
    total = params["total"]
    print("parameters")
    for name in COMPONENTS:
        print(f"  {name:<12}{params[name]:>14,}  {_percent(params[name], total):>6}")
    print(f"  {'total':<12}{total:>14,}  {_percent(total, total):>6}")
    for note in report["notes"]:
        print(f"  ({note})")
    files = ", ".join(f"{f['name']} ({_human_bytes(f['bytes'])})" for f in report["weight_files"])
    size = _human_bytes(report["weight_bytes"])
    fp32 = report["float32_bytes"]
    share = _percent(report["weight_bytes"], fp32)
    print(f"weights       {files}; {size} on disk ({share} of float32)")
    dtypes = ", ".join(f"{name} x {count}" for name, count in report["stored_dtypes"].items())
    print(f"stored dtypes {dtypes or 'unknown'} (tensors)")


def model_info(path) -> dict:
    """Everything `minibert info` shows, as a JSON-ready dict. Loads the model, so a broken
    checkpoint fails here with the loader's message."""
    model = load(path)
    c = model.config
    sizes = {
        "L": c.num_hidden_layers,
        "C": c.hidden_size,
        "H": c.num_attention_heads,
        "F": c.intermediate_size,
        "V": c.vocab_size,
        "P": c.max_position_embeddings,
    }
    if c.model_type == "albert":
        sizes["E"] = c.embedding_size or c.hidden_size
    counts = model.parameter_counts()  # a tied array counts once; int8 scales are not counted
    int8 = sum(int(a.size) for _, a in model.named_parameters() if a.dtype.name == "int8")
    notes = []
    quantization = c.hf_extra.get("quantization")
    if quantization:
        share = _percent(int8, counts["total"])
        notes.append(f"int8: {int8:,} parameters ({share}); {quantization['scheme']}")
    if model.tied:
        notes.append("the MLM decoder shares the word embeddings; counted once, in embeddings")
    if c.model_type == "albert":
        notes.append("ALBERT's E -> C projection is counted in embeddings")
        if c.num_unique_layers != c.num_hidden_layers:
            notes.append(f"{c.num_unique_layers} unique layer(s) run {c.num_hidden_layers} times")
    files = weight_files(path)
    return {
        "path": str(path),
        "architecture": c.architecture,
        "model_type": c.model_type,
        "sizes": sizes,
        "parameters": counts,
        "notes": notes,
        "weight_files": [{"name": f.name, "bytes": f.stat().st_size} for f in files],
        "weight_bytes": sum(f.stat().st_size for f in files),
        "stored_dtypes": stored_dtypes(files),
        "quantization": quantization,
        "float32_bytes": 4 * counts["total"],
    }


def _size_legend(sizes: dict) -> str:
    words = {
        "L": "layers",
        "C": "hidden",
        "H": "heads",
        "F": "feed-forward",
        "V": "vocabulary",
        "P": "positions",
        "E": "embedding",
    }
    return ", ".join(f"{k} {words[k]}" for k in sizes)


def _percent(part: int, total: int) -> str:
    return f"{100 * part / total:.1f}%" if total else "-"


def _human_bytes(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    for unit in ("kB", "MB", "GB"):
        n /= 1000
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}"
