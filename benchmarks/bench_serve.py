"""`minibert serve` next to a peer embedding server, side by side on this machine: throughput and
latency under load, and memory over a long run at a steady rate.

    python -m venv /tmp/infinity      # the peer, in a virtualenv of its own (pins old versions)
    /tmp/infinity/bin/pip install "infinity-emb[server,torch]" torch==2.13.0   # the CPU wheel

    python benchmarks/bench_serve.py --infinity-bin /tmp/infinity/bin/infinity_emb    # compare
    python benchmarks/bench_serve.py --quick --infinity-bin ...                       # smoke run
    python benchmarks/bench_serve.py --soak --servers minibert-fp32    # 600 s at 80% of its max
    python benchmarks/bench_serve.py --soak 60 --rate 10 --servers minibert-int8 --quick

The three servers, each started in turn on a free port of 127.0.0.1, with 2 threads, and
stopped before the next one starts:
  - peer: all-MiniLM-L6-v2 on torch behind Infinity (benchmarks/peer_server.py; or plain
    sentence-transformers with --peer-engine sentence-transformers);
  - minibert-fp32: `minibert serve` of the same model folder, float32;
  - minibert-int8: `minibert serve` of its int8 copy (`minibert quantize`, made once in
    --workdir).
Each is waited for until its readiness route answers 200 (/ready for minibert, /health for
the peer), then benchmarks/load_test.py runs closed-loop levels (1, 8 and 64 concurrent
clients by default, --duration seconds each) on two workloads, short queries and mixed lengths,
one text per request, and checks sampled answers against vectors computed offline by minibert
from the same folder (cosine >= 0.9999; the int8 server against minibert's int8 model).

--soak runs one server at a fixed rate for SECONDS (600 when no number is given): 80% of the
highest rate the comparison measured for it on the mixed workload (from the results file, or
from a closed-loop probe of --duration seconds at the top concurrency level), or --rate. It
records the server's RSS every 2 s, and errors and latency per 10 s window. The comparison
takes about 11 minutes with the defaults (3 servers x 2 workloads x 3 levels x 30 s).

Writes docs/results/bench_serve.json, docs/img/serve-latency.png and serve-throughput.png
(--soak: docs/results/bench_serve_soak.json and docs/img/serve-soak-rss.png); with --quick,
the same files in a temporary folder unless --out-dir is given. Needs httpx, matplotlib, and for
the peer Infinity (`pip install 'infinity-emb[server,torch]'` in a virtualenv of its own) or
sentence-transformers. The load client runs on the same CPUs as the servers: on 2 cores it
takes a noticeable share, alike for every server. Check `uptime` first: figures taken while
other work runs are not worth recording.
"""

import argparse
import contextlib
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import load_test  # noqa: E402
from provenance import source_revision  # noqa: E402

SERVERS = ("peer", "minibert-fp32", "minibert-int8")
COLOURS = {"peer": "#888888", "minibert-fp32": "#1f77b4", "minibert-int8": "#d62728"}
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
SOAK_FRACTION = 0.8  # of the highest measured rate
REFERENCES = {  # what sampled answers are compared with, computed offline in this process
    "peer": "minibert.SentenceEncoder, float32, the same model folder",
    "minibert-fp32": "minibert.SentenceEncoder, float32, the same model folder",
    "minibert-int8": "minibert.SentenceEncoder of the int8 copy",
}


# --- servers ------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind((load_test.LOOPBACK, 0))
        return s.getsockname()[1]


def server_command(name: str, port: int, args) -> tuple[list[str], str, str]:
    """(argv, readiness path, reference spec) of one server."""
    if name == "peer":
        argv = [args.peer_python or sys.executable, str(HERE / "peer_server.py")]
        argv += ["--engine", args.peer_engine, "--model", args.model, "--port", str(port)]
        argv += ["--threads", str(args.threads)]
        if args.peer_engine == "infinity":
            argv += ["--infinity-bin", args.infinity_bin]
        return argv, "/health", f"minibert:{args.model}"
    model = args.model if name == "minibert-fp32" else str(int8_copy(args))
    argv = [sys.executable, "-m", "minibert.cli", "serve", model]
    argv += ["--host", load_test.LOOPBACK, "--port", str(port), "--workers", "1"]
    argv += ["--model-name", "all-MiniLM-L6-v2", "--threads", str(args.threads)]
    argv += ["--no-access-log"]  # the peer logs no line per request either
    return argv, "/ready", f"minibert:{model}"


def int8_copy(args) -> Path:
    """The int8 copy of --model in --workdir, made by `minibert quantize` if not there yet
    (delete it after a change to minibert's int8 format)."""
    out = Path(args.workdir) / "minilm-int8"
    if not (out / "config.json").exists():
        print(f"quantizing {args.model} into {out}", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "minibert.cli", "quantize", args.model, str(out)],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=600,
        )
    return out


def _get(url: str, timeout: float = 2.0) -> int:
    """The status of GET url (0 when nothing answers)."""
    if not url.startswith(f"http://{load_test.LOOPBACK}:"):
        raise ValueError(f"only {load_test.LOOPBACK} is asked, not {url!r}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxies
    try:
        with opener.open(url, timeout=timeout) as answer:
            return answer.status
    except OSError as exc:
        return getattr(exc, "code", 0) or 0


@contextlib.contextmanager
def running(name: str, args, log_dir: Path):
    """Starts a server, waits until it is ready, yields (url, pid, reference spec, facts about
    it), then stops it, whatever happened meanwhile."""
    port = free_port()
    argv, ready_path, reference = server_command(name, port, args)
    env = {**os.environ, **{v: str(args.threads) for v in THREAD_VARS}}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", DO_NOT_TRACK="1")
    env.pop("MINIBERT_API_KEY", None)  # the load client sends no key
    log = (log_dir / f"{name}.log").open("w")
    start = time.perf_counter()
    # a process group of its own, so that stopping it reaches the worker processes it starts
    proc = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=log_dir, start_new_session=True
    )
    url = f"http://{load_test.LOOPBACK}:{port}"
    try:
        while _get(url + ready_path) != 200:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {log.name}")
            if time.perf_counter() - start > args.start_timeout:
                raise RuntimeError(f"{name} not ready after {args.start_timeout} s; see {log.name}")
            time.sleep(0.5)
        info = {
            "command": shorten(argv),
            "ready_s": round(time.perf_counter() - start, 2),
            "idle_rss_mib": load_test.rss_mib(proc.pid),
            "reference": REFERENCES[name],
            "versions": versions(name, args),
        }
        print(f"{name} ready on {url} after {info['ready_s']} s", file=sys.stderr)
        yield url, proc.pid, reference, info
    finally:
        stop(proc)
        log.close()


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, then SIGKILL if it has not gone within 15 s."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


def versions(name: str, args) -> dict:
    if name == "peer":
        python = args.peer_python or sys.executable
        if args.peer_engine == "infinity":
            python = str(Path(args.infinity_bin).parent / "python")
        names = ["infinity_emb", "sentence-transformers", "torch", "transformers", "fastapi"]
    else:
        python, names = sys.executable, ["minibert", "numpy", "numba", "uvicorn"]
    code = (
        "import json, sys\nfrom importlib.metadata import version, PackageNotFoundError\n"
        "found = {}\nfor n in sys.argv[1:]:\n"
        "    try: found[n] = version(n)\n    except PackageNotFoundError: pass\n"
        "print(json.dumps(found))"
    )
    done = subprocess.run([python, "-c", code, *names], capture_output=True, text=True, timeout=60)
    return json.loads(done.stdout) if done.returncode == 0 else {}


# --- the comparison and the soak ------------------------------------------------------------------
def load_args(url, pid, reference, args, **more) -> argparse.Namespace:
    argv = ["--url", url, "--pid", str(pid), "--reference", reference]
    argv += ["--duration", str(more.get("duration", args.duration))]
    argv += ["--concurrency", *map(str, more.get("concurrency", args.concurrency))]
    argv += ["--workloads", *more.get("workloads", args.workloads)]
    argv += ["--model", "all-MiniLM-L6-v2", "--min-cosine", str(args.min_cosine)]
    for key in ("rate", "rss_interval", "window", "samples"):
        if key in more:
            argv += [f"--{key.replace('_', '-')}", str(more[key])]
    return load_test.parser().parse_args(argv)


def compare(args, out_dir: Path, img_dir: Path) -> dict:
    results = header(args, "comparison")
    for name in args.servers:
        with running(name, args, Path(args.workdir)) as (url, pid, reference, info):
            result = load_test.run(load_args(url, pid, reference, args))
        print(load_test.table(result), file=sys.stderr)
        results["servers"][name] = {**info, **strip(result)}
    results["load_average_1min"].append(load_test.load_average())
    write(results, out_dir / "bench_serve.json")
    plot_comparison(results, img_dir)
    return results


def soak(args, out_dir: Path, img_dir: Path) -> dict:
    results = header(args, "soak")
    results["settings"]["soak_s"] = args.soak
    for name in args.servers:
        with running(name, args, Path(args.workdir)) as (url, pid, reference, info):
            rate, source = args.rate, "--rate"
            if rate is None:
                rate, source = soak_rate(name, url, pid, reference, args, out_dir)
            print(f"{name}: soak at {rate:.1f} req/s for {args.soak} s ({source})", file=sys.stderr)
            more = dict(rate=rate, duration=args.soak, workloads=["mixed"], rss_interval=2.0)
            result = load_test.run(load_args(url, pid, reference, args, window=10, **more))
        print(load_test.table(result), file=sys.stderr)
        results["servers"][name] = {**info, "rate_from": source, **strip(result)}
    results["load_average_1min"].append(load_test.load_average())
    write(results, out_dir / "bench_serve_soak.json")
    plot_soak(results, img_dir)
    return results


def soak_rate(name, url, pid, reference, args, out_dir: Path) -> tuple[float, str]:
    """80% of the highest req/s measured for this server on the mixed workload."""
    measured = out_dir / "bench_serve.json"
    if measured.exists():
        runs = json.loads(measured.read_text())["servers"].get(name, {}).get("runs", [])
        best = max((r["req_per_s"] or 0 for r in runs if r["workload"] == "mixed"), default=0)
        if best > 0:
            return SOAK_FRACTION * best, f"{SOAK_FRACTION:.0%} of the best in {measured.name}"
    top = max(args.concurrency)
    probe = load_test.run(
        load_args(url, pid, reference, args, concurrency=[top], workloads=["mixed"], samples=0)
    )
    best = probe["runs"][0]["req_per_s"] or 1.0
    return SOAK_FRACTION * best, f"{SOAK_FRACTION:.0%} of a {args.duration:g} s probe at {top}"


def header(args, kind: str) -> dict:
    return {
        "benchmark": f"benchmarks/bench_serve.py ({kind})",
        "date": datetime.date.today().isoformat(),
        "command": "python benchmarks/bench_serve.py " + shorten(sys.argv[1:]),
        "revision": source_revision(),
        "machine": load_test.machine(),
        "load_average_1min": [load_test.load_average()],
        "settings": {
            "threads": args.threads,
            "duration_s": args.duration,
            "concurrency": args.concurrency,
            "workloads": args.workloads,
            "texts_per_request": 1,
            "peer_engine": args.peer_engine,
            "client": "benchmarks/load_test.py (httpx, asyncio) on the same CPUs",
        },
        "servers": {},
    }


def strip(result: dict) -> dict:
    """A load_test result without what the header or the server's facts already say."""
    return {k: v for k, v in result.items() if k not in ("tool", "machine", "url", "reference")}


def shorten(argv) -> str:
    """A command line with absolute paths cut to their last part (no machine's folders)."""
    return " ".join(Path(a).name if a.startswith("/") else a for a in argv)


def write(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {path}", file=sys.stderr)


# --- plots ----------------------------------------------------------------------------------------
def plot_comparison(results: dict, img_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    img_dir.mkdir(parents=True, exist_ok=True)
    workloads = results["settings"]["workloads"]
    cpu = results["machine"]["cpu"]
    fig, axes = plt.subplots(1, len(workloads), figsize=(5.5 * len(workloads), 4), squeeze=False)
    for ax, workload in zip(axes[0], workloads, strict=True):
        for name, server in results["servers"].items():
            runs = [r for r in server["runs"] if r["workload"] == workload]
            levels = [r["concurrency"] for r in runs]
            for key, style in (("p50", "-"), ("p99", "--")):
                values = [r["latency_ms"][key] for r in runs]
                ax.plot(
                    levels,
                    values,
                    style,
                    marker="o",
                    color=COLOURS.get(name),
                    label=f"{name} {key}",
                )
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="concurrent clients",
            ylabel="latency (ms)",
            title=f"{workload} texts",
        )
        levels = results["settings"]["concurrency"]
        ax.set_xticks(levels, [str(c) for c in levels])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Latency under closed-loop load, {results['settings']['threads']} threads, {cpu}")
    fig.tight_layout()
    fig.savefig(img_dir / "serve-latency.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(workloads), figsize=(5.5 * len(workloads), 4), squeeze=False)
    names = list(results["servers"])
    width = 0.8 / max(len(names), 1)
    for ax, workload in zip(axes[0], workloads, strict=True):
        levels = results["settings"]["concurrency"]
        for j, name in enumerate(names):
            runs = {
                r["concurrency"]: r
                for r in results["servers"][name]["runs"]
                if r["workload"] == workload
            }
            values = [(runs.get(c) or {}).get("texts_per_s") or 0 for c in levels]
            xs = [i + (j - (len(names) - 1) / 2) * width for i in range(len(levels))]
            ax.bar(xs, values, width, label=name, color=COLOURS.get(name))
        ax.set_xticks(range(len(levels)), [str(c) for c in levels])
        ax.set(xlabel="concurrent clients", ylabel="texts per second", title=f"{workload} texts")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Throughput, one text per request, {cpu}")
    fig.tight_layout()
    fig.savefig(img_dir / "serve-throughput.png", dpi=110)
    plt.close(fig)
    print(f"wrote {img_dir}/serve-latency.png and serve-throughput.png", file=sys.stderr)


def plot_soak(results: dict, img_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img_dir.mkdir(parents=True, exist_ok=True)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    for name, server in results["servers"].items():
        colour = COLOURS.get(name)
        if server.get("rss_mib"):
            t, mib = zip(*server["rss_mib"]["series"], strict=True)
            top.plot(t, mib, color=colour, label=f"{name} at {server['runs'][0]['rate']:.1f} req/s")
        timeline = server["runs"][0]["timeline"]
        bottom.plot(
            [w["t_s"] for w in timeline],
            [w["latency_ms"]["p99"] for w in timeline],
            marker="o",
            markersize=3,
            color=colour,
            label=f"{name} p99",
        )
        errors = [w["t_s"] for w in timeline if w["errors"]]
        bottom.plot(errors, [0] * len(errors), "x", color=colour)  # windows with errors
    top.set(ylabel="server RSS (MiB)", title=f"Soak, {results['machine']['cpu']}")
    bottom.set(xlabel="seconds (latency: requests sent in each 10 s window)", ylabel="p99 (ms)")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(img_dir / "serve-soak-rss.png", dpi=110)
    plt.close(fig)
    print(f"wrote {img_dir}/serve-soak-rss.png", file=sys.stderr)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--servers",
        nargs="+",
        choices=SERVERS,
        default=None,
        help="default: all three (--soak: minibert-fp32)",
    )
    p.add_argument("--model", default=None, help="all-MiniLM-L6-v2's folder (default: minibert's)")
    p.add_argument(
        "--peer-engine", choices=("infinity", "sentence-transformers"), default="infinity"
    )
    p.add_argument(
        "--infinity-bin",
        default=shutil.which("infinity_emb"),
        help="Infinity's infinity_emb command (default: the one on PATH)",
    )
    p.add_argument(
        "--peer-python",
        default=None,
        help="Python with sentence-transformers for --peer-engine "
        "sentence-transformers (default: this one)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--concurrency", nargs="+", type=int, default=list(load_test.LEVELS))
    p.add_argument(
        "--workloads", nargs="+", choices=load_test.WORKLOADS, default=list(load_test.WORKLOADS)
    )
    p.add_argument("--duration", type=float, default=30.0, help="seconds per level (default 30)")
    p.add_argument("--min-cosine", type=float, default=0.9999)
    p.add_argument(
        "--soak",
        type=float,
        nargs="?",
        const=600.0,
        default=None,
        metavar="SECONDS",
        help="soak run instead of the comparison (600 s when no number is given)",
    )
    p.add_argument("--rate", type=float, default=None, help="soak rate (req/s)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 2 s per level at 1 and 8 clients, 10 s soak",
    )
    p.add_argument("--out-dir", type=Path, default=None, help="results JSON folder")
    p.add_argument("--img-dir", type=Path, default=None, help="plots folder")
    p.add_argument("--workdir", default=None, help="int8 copy and server logs (default: temp)")
    p.add_argument("--start-timeout", type=float, default=300.0)
    args = p.parse_args(argv)

    if args.model is None:
        from minibert.pretrained import minilm_path

        args.model = str(minilm_path())
    if args.servers is None:
        args.servers = ["minibert-fp32"] if args.soak else list(SERVERS)
    if "peer" in args.servers and args.peer_engine == "infinity" and not args.infinity_bin:
        p.error("Infinity not found: pass --infinity-bin or --peer-engine sentence-transformers")
    if args.quick:
        args.duration = min(args.duration, 2.0)
        args.concurrency = [c for c in args.concurrency if c <= 8] or [1]
        args.soak = min(args.soak, 10.0) if args.soak else args.soak
    scratch = Path(tempfile.gettempdir()) / "minibert-bench-serve"
    args.workdir = str(Path(args.workdir or scratch).resolve())
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    out_dir = args.out_dir or (scratch / "results" if args.quick else ROOT / "docs" / "results")
    img_dir = args.img_dir or (scratch / "img" if args.quick else ROOT / "docs" / "img")
    if args.soak:
        soak(args, out_dir, img_dir)
    else:
        compare(args, out_dir, img_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
