"""The serving load client (benchmarks/load_test.py) without a real server: its percentiles and
summaries, the generated texts, the parsing of answers, the correctness check, the memory
sampler, the refusal of every host but 127.0.0.1, and a closed and an open loop against an
in-process fake transport (nothing is sent over a socket)."""

import asyncio
import json
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import needs_minilm

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def lt():
    sys.path.insert(0, str(BENCHMARKS))
    import load_test

    yield load_test
    sys.path.remove(str(BENCHMARKS))


def test_percentile_matches_numpy(lt):
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 100, 1001):
        values = rng.exponential(20.0, n).tolist()
        for q in (0, 1, 50, 95, 99, 99.9, 100):
            assert lt.percentile(values, q) == pytest.approx(np.percentile(values, q), rel=1e-12)


def test_percentile_edges(lt):
    assert lt.percentile([], 50) is None
    assert lt.percentile([3.0], 99) == 3.0
    assert lt.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    for q in (-1, 100.5):
        with pytest.raises(ValueError, match="within"):
            lt.percentile([1.0], q)


def test_summarise(lt):
    latencies = [0.010, 0.020, 0.030, 0.040]
    out = lt.summarise(latencies, Counter({"http 503": 2, "timeout": 1}), 2.0, texts_per_request=3)
    assert out["requests"] == 4
    assert out["texts"] == 12
    assert out["errors"] == 3
    assert out["error_kinds"] == {"http 503": 2, "timeout": 1}
    assert out["req_per_s"] == pytest.approx(2.0)
    assert out["texts_per_s"] == pytest.approx(6.0)
    assert out["latency_ms"]["p50"] == pytest.approx(25.0)
    assert out["latency_ms"]["max"] == pytest.approx(40.0)
    assert out["latency_ms"]["mean"] == pytest.approx(25.0)
    empty = lt.summarise([], Counter(), 1.0, 1)
    assert empty["latency_ms"]["p99"] is None
    assert empty["req_per_s"] == 0


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://127.0.0.1:8000/", "http://127.0.0.1"]
)
def test_loopback_accepted(lt, url):
    assert lt.check_loopback(url) == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8000",  # a name could resolve anywhere
        "http://0.0.0.0:8000",
        "http://127.0.0.2:8000",
        "http://10.0.0.1:8000",
        "http://172.17.0.2:8000",
        "http://[::1]:8000",
        "http://example.com",
        "https://127.0.0.1:8000",
        "http://user:pw@127.0.0.1:8000",
        "http://127.0.0.1.example.com:8000",
        "http://127.0.0.1:8000/v1/embeddings",
        "127.0.0.1:8000",
    ],
)
def test_other_hosts_refused(lt, url):
    with pytest.raises(ValueError, match=r"127\.0\.0\.1|path"):
        lt.check_loopback(url)


def test_command_line_refuses_other_hosts_before_sending(lt, capsys):
    with pytest.raises(SystemExit) as stop:
        lt.main(["--url", "http://192.168.1.10:8000", "--duration", "0.1"])
    assert stop.value.code == 2
    assert "only http://127.0.0.1" in capsys.readouterr().err


def test_texts_deterministic_distinct_and_sized(lt):
    for workload, (low, high) in (("short", lt.SHORT_TOKENS), ("mixed", lt.MIXED_TOKENS)):
        texts = lt.make_texts(workload, 300, seed=0)
        assert texts == lt.make_texts(workload, 300, seed=0)
        assert texts != lt.make_texts(workload, 300, seed=1)
        assert len(set(texts)) == 300
        lengths = [lt.approx_tokens(t) for t in texts]
        assert low - 1 <= min(lengths)
        assert max(lengths) <= high
        assert all(t.isascii() for t in texts)
    mixed = [lt.approx_tokens(t) for t in lt.make_texts("mixed", 300)]
    assert np.mean(mixed) == pytest.approx(133, abs=20)  # uniform over 10-256
    with pytest.raises(ValueError, match="workload"):
        lt.make_texts("long", 3)


@needs_minilm
def test_word_piece_estimate_is_exact_for_minilm(lt):
    import minibert
    from minibert.pretrained import minilm_path

    tok = minibert.load_tokenizer(minilm_path())
    texts = lt.make_texts("short", 40) + lt.make_texts("mixed", 40)
    lengths = tok(texts, padding=True, truncation=False)["attention_mask"].sum(1) - 2
    assert lengths.tolist() == [lt.approx_tokens(t) for t in texts]


def test_route_parsing(lt):
    openai = lt.Route("openai", "m")
    assert openai.path == "/v1/embeddings"
    assert openai.body(["a"]) == {"input": ["a"], "model": "m", "encoding_format": "float"}
    answer = {"data": [{"index": 1, "embedding": [0.0, 1.0]}, {"index": 0, "embedding": [1.0]}]}
    assert openai.vectors(answer, 2) == [[1.0], [0.0, 1.0]]  # put back in input order
    with pytest.raises(ValueError, match="expected 3"):
        openai.vectors(answer, 3)
    with pytest.raises(ValueError, match="data"):
        openai.vectors({"error": {}}, 1)
    with pytest.raises(ValueError, match="floats"):
        openai.vectors({"data": [{"index": 0, "embedding": "AAAA"}]}, 1)  # base64, not floats
    tei = lt.Route("tei")
    assert tei.path == "/embed"
    assert tei.vectors([[0.5, 0.5]], 1) == [[0.5, 0.5]]
    with pytest.raises(ValueError, match="route"):
        lt.Route("grpc")


def test_watcher_and_check_answers(lt):
    texts = [f"text {i}" for i in range(50)]
    watcher = lt.Watcher(len(texts), samples=5)
    assert len(watcher.watched) == 5
    right = {i: [float(i + 1), 1.0] for i in range(50)}
    for _ in range(lt.KEEP_PER_TEXT + 3):
        watcher.offer(range(50), [right[i] for i in range(50)])
    assert set(watcher.kept) == watcher.watched
    assert all(len(v) == lt.KEEP_PER_TEXT for v in watcher.kept.values())

    def reference(batch):
        return [[2 * right[int(t.split()[1])][0], 2.0] for t in batch]  # same directions

    good = lt.check_answers([(texts, watcher)], reference, 0.9999)
    assert good["passed"]
    assert good["answers_checked"] == 5 * lt.KEEP_PER_TEXT
    assert good["min_cosine"] == pytest.approx(1.0)
    first = sorted(watcher.watched)[0]
    watcher.kept[first][0] = [1.0, -1.0]  # one wrong answer fails the run
    bad = lt.check_answers([(texts, watcher)], reference, 0.9999)
    assert not bad["passed"]
    assert bad["min_cosine"] < 0.9
    assert lt.check_answers([(texts, watcher)], None, 0.9999) is None


def test_reference_specs(lt):
    assert lt.load_reference(None) is None
    assert lt.load_reference("none") is None
    assert lt.load_reference("math:sqrt")(4.0) == 2.0  # MODULE:FUNCTION
    with pytest.raises(ValueError, match="KIND:TARGET"):
        lt.load_reference("minibert")


def test_rss_of_this_process(lt, monkeypatch):
    with_psutil = lt.rss_mib(os.getpid())
    monkeypatch.setitem(sys.modules, "psutil", None)  # the /proc fallback
    from_proc = lt.rss_mib(os.getpid())
    if Path("/proc/self/status").exists():
        assert from_proc == pytest.approx(with_psutil, rel=0.2)
    assert with_psutil > 1
    with lt.RSSSampler(os.getpid(), interval_s=0.01) as sampler:
        asyncio.run(asyncio.sleep(0.1))
    summary = sampler.summary()
    assert summary["peak"] >= summary["start"] > 1
    assert len(summary["series"]) >= 2
    assert lt.RSSSampler(None).summary() is None


def _fake_server(lt, fail_every: int = 0):
    """An httpx client whose transport answers in-process like an OpenAI embeddings server."""
    httpx = pytest.importorskip("httpx")
    seen = []

    async def handler(request):
        seen.append(request.url.host)
        number = len(seen)  # before waiting: other requests arrive meanwhile
        await asyncio.sleep(0.002)
        if fail_every and number % fail_every == 0:
            return httpx.Response(503, json={"error": {"message": "busy"}})
        texts = json.loads(request.content)["input"]
        data = [{"index": i, "embedding": [float(len(t)), 1.0]} for i, t in enumerate(texts)]
        return httpx.Response(200, json={"data": data})

    client = httpx.AsyncClient(
        base_url="http://127.0.0.1:9", transport=httpx.MockTransport(handler)
    )
    client.event_hooks["request"] = [lt._refuse_other_hosts]
    return client, seen


def test_closed_loop_counts_and_bounds(lt):
    client, seen = _fake_server(lt, fail_every=5)
    texts = lt.make_texts("short", 20)
    watcher = lt.Watcher(len(texts), samples=4)

    async def go():
        async with client:
            return await lt.closed_loop(
                client, lt.Route(), texts, 4, 5.0, 40, per_request=2, watcher=watcher
            )

    row = asyncio.run(go())
    assert len(seen) == 40  # the request bound, well before the 5 s deadline
    assert row["errors"] == 8
    assert row["error_kinds"] == {"http 503": 8}
    assert row["requests"] == 32
    assert row["texts"] == 64
    assert row["latency_ms"]["p50"] >= 2.0
    answers = lt.check_answers([(texts, watcher)], lambda b: [[len(t), 1.0] for t in b], 0.9999)
    assert answers["passed"]


def test_open_loop_rate_and_timeline(lt):
    client, seen = _fake_server(lt)
    texts = lt.make_texts("mixed", 10)

    async def go():
        async with client:
            return await lt.open_loop(client, lt.Route(), texts, 100.0, 0.3, window_s=0.1)

    row = asyncio.run(go())
    assert row["requests"] == 30 == len(seen)
    assert row["errors"] == 0
    assert row["rate"] == 100.0
    assert 3 <= len(row["timeline"]) <= 4
    assert sum(w["requests"] for w in row["timeline"]) == 30


def test_requests_to_other_hosts_never_leave(lt):
    client, seen = _fake_server(lt)

    async def go():
        async with client:
            await client.post("http://10.1.2.3/v1/embeddings", json={"input": ["x"]})

    with pytest.raises(RuntimeError, match="refusing"):
        asyncio.run(go())
    assert seen == []
