"""The benchmark scripts import and answer --help without torch, transformers or onnxruntime
(optional extras), and their pure parts work: the template sentences, the embedding comparison,
the Markdown report, the docs-section update and the worker protocol."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import needs_minilm

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("bench_*.py"))
HEAVY = ("torch", "transformers", "onnxruntime", "onnx")


@pytest.fixture(scope="module")
def bench_modules():
    """benchmarks/ on sys.path, as it is for the scripts; removed again afterwards."""
    sys.path.insert(0, str(BENCHMARKS))
    yield
    sys.path.remove(str(BENCHMARKS))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_help_needs_no_optional_library(script):
    """--help works, and importing the script pulls in none of the optional libraries."""
    done = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
    code = (
        "import runpy, sys\n"
        f"sys.argv = [{str(script)!r}]\n"
        f"runpy.run_path({str(script)!r}, run_name='not_main')\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_sentences_are_distinct_and_deterministic(bench_modules):
    import agreement

    texts = agreement.sentences(200, seed=0)
    assert len(set(texts)) == 200
    assert texts == agreement.sentences(200, seed=0)
    assert texts != agreement.sentences(200, seed=1)


def test_compare_embeddings(bench_modules):
    import agreement

    rng = np.random.default_rng(0)
    ref = rng.standard_normal((30, 8))
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    same = agreement.compare(ref, ref.copy(), n_queries=10)
    assert same["mean_cosine"] == pytest.approx(1.0)
    assert same["top1"] == 1.0
    flipped = agreement.compare(ref, -ref, n_queries=10)
    assert flipped["min_cosine"] == pytest.approx(-1.0)


def test_report_and_docs_section(bench_modules, tmp_path):
    import report

    results = {
        "date": "2026-01-01",
        "command": "python benchmarks/bench_inference.py",
        "machine": "test",
        "threads": 2,
        "setup": "test",
        "versions": "test",
        "revision": "abc",
        "load_before": "0",
        "load_after": "0",
        "latency": [
            {
                "model": "MiniLM",
                "shape": "8 x 128",
                "kind": kind,
                "label": kind,
                "ms": ms,
                "vs_torch": ms / 100,
                "vs_numba": ms / 90,
                "max_diff": 0.0,
                "runs": 3,
                "load": 0.5,
            }
            for kind, ms in (
                ("minibert-numba", 90.0),
                ("minibert-int8", 50.0),
                ("torch-fp32", 100.0),
                ("ort-int8", 45.0),
            )
        ]
        + [
            {
                "model": "MiniLM",
                "shape": "8 x 128",
                "kind": "torch-int8",
                "label": "torch int8",
                "unavailable": "not installed",
            }
        ],
    }
    text = report.markdown(results)
    assert "| MiniLM 8 x 128: minibert fp32 / torch fp32 <= 1.0 | 0.90 | yes |" in text
    assert "| MiniLM 8 x 128: minibert fp32 / minibert int8 >= 1.5 | 1.80 | yes |" in text
    assert "n/a (not installed)" in text
    page = tmp_path / "page.md"
    page.write_text(f"# Title\n\nkept\n\n{report.NEW_FAMILIES}\n\nafter\n")
    report.update_docs(page, "RUN-1", "intel-amx", "Intel Xeon (AVX-512, VNNI, AMX)")
    report.update_docs(page, "RUN-AMD", "amd-avx2", "AMD EPYC (AVX2)")
    report.update_docs(page, "RUN-2", "intel-amx", "Intel Xeon (AVX-512, VNNI, AMX)")
    content = page.read_text()
    assert content.startswith("# Title\n\nkept\n")
    assert content.rstrip().endswith("after")
    assert "RUN-2" in content
    assert "RUN-AMD" in content  # each family keeps its own section
    assert "RUN-1" not in content
    for family in ("intel-amx", "amd-avx2"):
        begin, end = report.docs_markers(family)
        assert content.count(begin) == content.count(end) == 1
    assert content.count("### Intel Xeon (AVX-512, VNNI, AMX)") == 1
    assert content.index("### Intel Xeon") < content.index("### AMD EPYC")


class _Echo:
    def __init__(self, prefix):
        self.prefix = prefix

    def say(self, text):
        return self.prefix + text

    def missing(self):
        from workers import Unavailable

        raise Unavailable("not here")


def test_local_worker_protocol(bench_modules, monkeypatch):
    import workers
    from workers import Local, Unavailable, time_in_turns

    monkeypatch.setattr(workers, "PAUSE_S", 0.0)

    side = Local(_Echo, "> ")
    assert side.call("say", "hi") == "> hi"
    with pytest.raises(Unavailable, match="not here"):
        side.call("missing")

    class Clock:
        def run(self):
            return 0.001

    times = time_in_turns({"a": Local(Clock), "b": Local(Clock)}, runs=2, warmup=1)
    assert times == {"a": [0.001, 0.001], "b": [0.001, 0.001]}


@needs_minilm
def test_latency_smoke_run_of_the_minibert_rows(tmp_path):
    """The latency section end to end with the runtimes that need no optional library: worker
    processes, agreement check, medians, the Markdown and the JSON."""
    out = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "bench_inference.py"),
            "--quick",
            "--sections",
            "latency",
            "--runtimes",
            "minibert-numba",
            "minibert-int8",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())["latency"]
    assert [r["shape"] for r in rows] == ["1 x 16"] * 2 + ["1 x 128"] * 2 + ["8 x 128"] * 2
    assert all(r["ms"] > 0 for r in rows)
    assert "| MiniLM | 8 x 128 | minibert int8 |" in done.stdout
