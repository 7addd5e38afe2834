"""`minibert serve`: the routes against offline results, batching, limits, the self-check,
metrics and logs, in-process through the ASGI app; the scheduler and the CPU count on their
own; and one loopback run of the real command with the official `openai` client.

Robustness against malformed requests, and the schemathesis run, are in
test_serve_robustness.py; the shared helpers in test_serve_helpers.py.
"""

import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import httpx
import numpy as np
import pytest
from test_serve_helpers import (
    LABELS,
    Gate,
    InProcessServer,
    build_models,
    sentences,
    wait_until,
)

import minibert
from conftest import needs_minilm
from minibert import pretrained
from minibert.cli.main import main
from minibert.functional.pooling import l2_normalize
from minibert.kernels.threads import available_cpus
from minibert.serve import selfcheck
from minibert.serve.metrics import Histogram
from minibert.serve.model import ServedModel
from minibert.serve.scheduler import DeadlineExceeded, Scheduler

ATOL_SERVED = 1e-6  # a served vector against the offline one, and batched against alone
TEXTS = ["the cat sat on a mat.", "dogs ran over green hills", "birds sang.", "cold rivers"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return build_models(tmp_path_factory.mktemp("serve-models"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("serve-cache")


@pytest.fixture(scope="module")
def server(models, cache):
    s = InProcessServer(models["base"], cache)
    yield s
    s.close()


@pytest.fixture(scope="module")
def int8_server(models, cache):
    s = InProcessServer(models["int8"], cache)
    yield s
    s.close()


@pytest.fixture(scope="module")
def classifier(models, cache):
    s = InProcessServer(models["classifier"], cache)
    yield s
    s.close()


@pytest.fixture(scope="module")
def reranker(models, cache):
    s = InProcessServer(models["reranker"], cache)
    yield s
    s.close()


def offline(folder, texts, **options):
    return minibert.SentenceEncoder(folder, **options).encode(texts)


def embeddings(server, texts, **fields):
    response = server.post("/v1/embeddings", json={"input": texts, "model": "m", **fields})
    assert response.status_code == 200, response.text
    return response.json()


# --- the routes against offline results ---------------------------------------------------
@pytest.mark.parametrize("which", ["base", "int8"])
def test_embeddings_equal_the_offline_encoder(models, server, int8_server, which):
    served = {"base": server, "int8": int8_server}[which]
    texts = sentences(12, seed=5) + TEXTS
    body = embeddings(served, texts)
    assert body["object"] == "list"
    assert body["model"] == which
    assert [d["index"] for d in body["data"]] == list(range(len(texts)))
    assert {d["object"] for d in body["data"]} == {"embedding"}
    vectors = np.array([d["embedding"] for d in body["data"]], np.float32)
    np.testing.assert_allclose(vectors, offline(models[which], texts), rtol=0, atol=ATOL_SERVED)
    tokens = sum(len(served.app.model.tokenize([t])[0].input_ids) for t in texts)
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    info = served.get("/info").json()
    assert info["dtype"] == {"base": "float32", "int8": "int8"}[which]


@pytest.mark.parametrize(
    "which",
    ["base", "int8", pytest.param("minilm", marks=[pytest.mark.minilm, needs_minilm])],
)
def test_a_vector_does_not_depend_on_its_batch(models, which):
    """Each text alone, then all of them at once in several orders (padded to the longest,
    batched with texts of every length): the same vector to 1e-6. float32 models differ by
    rounding (see minibert/serve/model.py), int8 ones not at all."""
    if which == "minilm":
        model, high = ServedModel(pretrained.minilm_path()), 120
    else:
        model, high = ServedModel(models[which]), 17
    texts = sentences(16, seed=7, low=1, high=high)
    sequences = model.tokenize(texts, truncate=True)
    alone = np.stack([model.run([s])[0].vector for s in sequences])
    rng = np.random.default_rng(0)
    for _ in range(3):
        order = rng.permutation(len(texts))
        together = model.run([sequences[i] for i in order])
        batched = l2_normalize(np.stack([o.vector for o in together]))
        expected = l2_normalize(alone[order])
        np.testing.assert_allclose(batched, expected, rtol=0, atol=ATOL_SERVED)


def test_the_bundled_model_served_equals_offline(cache):
    model = ServedModel(pretrained.shipped_path())
    texts = ["A cat sat on the mat.", "x", " ".join(["a long sentence"] * 40), "Paris in spring"]
    sequences = model.tokenize(texts, truncate=True)
    together = l2_normalize(np.stack([o.vector for o in model.run(sequences)]))
    expected = offline(pretrained.shipped_path(), texts)
    np.testing.assert_allclose(together, expected, rtol=0, atol=ATOL_SERVED)
    alone = l2_normalize(np.stack([model.run([s])[0].vector for s in sequences]))
    np.testing.assert_allclose(alone, together, rtol=0, atol=ATOL_SERVED)


SENTENCE_FOLDERS = Path(__file__).parent / "fixtures" / "sentence-transformers"


@pytest.mark.parametrize(
    "name",
    [
        "classic-cls",
        "classic-dense-tanh",
        "modern-weightedmean-prompts",
        "modern-mean-exclude-prompt",
    ],
)
def test_a_sentence_transformers_folder_is_served_as_it_says(name):
    """The folder's pooling, Dense layers and default prompt, as SentenceEncoder.encode runs
    them (not mean pooling with a warning): the served vectors are the offline ones."""
    folder = SENTENCE_FOLDERS / name
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "pooling overrides the folder" warning
        model = ServedModel(folder)
    texts = ["the cat sat on a mat.", "x", "dogs ran over green hills and far away"]
    sequences = model.tokenize(texts, truncate=True)  # the fixtures allow 10-20 tokens
    served = l2_normalize(np.stack([o.vector for o in model.run(sequences)]))
    expected = l2_normalize(minibert.SentenceEncoder(folder).encode(texts))
    np.testing.assert_allclose(served, expected, rtol=0, atol=ATOL_SERVED)


def test_base64_is_little_endian_float32_of_the_same_vectors(server):
    floats = embeddings(server, TEXTS)
    packed = embeddings(server, TEXTS, encoding_format="base64")
    for f, p in zip(floats["data"], packed["data"], strict=True):
        decoded = np.frombuffer(base64.b64decode(p["embedding"]), dtype="<f4")
        np.testing.assert_array_equal(decoded, np.array(f["embedding"], np.float32))


def test_dimensions_cut_and_renormalise(server):
    full = np.array(embeddings(server, TEXTS)["data"][0]["embedding"], np.float32)
    short = np.array(embeddings(server, TEXTS, dimensions=8)["data"][0]["embedding"])
    np.testing.assert_allclose(short, full[:8] / np.linalg.norm(full[:8]), atol=1e-6)
    dim = server.app.model.dim
    response = server.post("/v1/embeddings", json={"input": "cat", "dimensions": dim + 1})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "dimensions"
    assert str(dim) in response.json()["error"]["message"]


def test_embed_is_teis(models, server):
    body = server.post("/embed", json={"inputs": TEXTS}).json()
    np.testing.assert_allclose(np.array(body), offline(models["base"], TEXTS), atol=ATOL_SERVED)
    one = server.post("/embed", json={"inputs": TEXTS[0], "normalize": False}).json()
    raw = offline(models["base"], TEXTS[:1], normalize=False)
    assert len(one) == 1
    np.testing.assert_allclose(np.array(one), raw, atol=ATOL_SERVED)


def test_too_long_is_refused_by_name_unless_truncate(models, server):
    long_text = " ".join(["the cat sat on a mat"] * 10)
    response = server.post("/embed", json={"inputs": ["cat", long_text]})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "inputs[1]"
    assert error["type"] == "input_too_long"
    assert "limit of 20" in error["message"]
    cut = server.post("/embed", json={"inputs": ["cat", long_text], "truncate": True})
    assert cut.status_code == 200
    expected = offline(models["base"], ["cat", long_text])  # encode() truncates too
    np.testing.assert_allclose(np.array(cut.json()), expected, atol=ATOL_SERVED)
    response = server.post("/v1/embeddings", json={"input": [long_text]})
    assert response.json()["error"]["field"] == "input[0]"


def test_predict_scores_named_labels(models, classifier):
    texts = TEXTS[:3]
    answers = classifier.post("/predict", json={"inputs": texts}).json()
    model = minibert.load(models["classifier"])
    tok = minibert.load_tokenizer(models["classifier"])
    enc = tok(texts)
    logits = model(enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    for answer, row in zip(answers, logits, strict=True):
        probabilities = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
        assert [a["label"] for a in answer] == [LABELS[i] for i in np.argsort(-probabilities)]
        np.testing.assert_allclose(
            sorted((a["score"] for a in answer), reverse=True),
            np.sort(probabilities)[::-1],
            atol=1e-6,
        )
    single = classifier.post("/predict", json={"inputs": texts[0], "raw_scores": True}).json()
    assert {a["label"] for a in single} == set(LABELS)  # one input: one list, not a list of lists
    np.testing.assert_allclose(max(a["score"] for a in single), logits[0].max(), atol=1e-5)


def test_rerank_is_the_sigmoid_of_a_cross_encoder(models, reranker):
    query, texts = "cat on a mat", ["dogs ran", "the cat sat on a mat", "cold rivers"]
    answer = reranker.post("/rerank", json={"query": query, "texts": texts, "return_text": True})
    ranks = answer.json()
    model = minibert.load(models["reranker"])
    tok = minibert.load_tokenizer(models["reranker"])
    enc = tok([query] * 3, text_pairs=texts)
    logits = model(
        enc["input_ids"], attention_mask=enc["attention_mask"], token_type_ids=enc["token_type_ids"]
    ).logits[:, 0]
    expected = 1 / (1 + np.exp(-logits.astype(np.float64)))
    assert [r["index"] for r in ranks] == list(np.argsort(-expected, kind="stable"))
    for r in ranks:
        assert r["score"] == pytest.approx(expected[r["index"]], abs=1e-6)
        assert r["text"] == texts[r["index"]]


def test_routes_a_model_cannot_answer_say_why(server, classifier):
    response = server.post("/predict", json={"inputs": "cat"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "model_unsupported"
    assert "sequence-classification" in response.json()["error"]["message"]
    response = classifier.post("/rerank", json={"query": "cat", "texts": ["dog"]})
    assert response.status_code == 400
    assert "3 labels" in response.json()["error"]["message"]


def test_tokenize_gives_ids_and_character_spans(server):
    text = "the cat sat on a mat."
    (tokens,) = server.post("/tokenize", json={"inputs": [text]}).json()
    ids = server.app.model.encoder.tokenizer([text])["input_ids"][0].tolist()
    assert [t["id"] for t in tokens] == ids
    assert tokens[0]["special"]
    assert tokens[0]["start"] is None
    for t in tokens[1:-1]:
        assert text[t["start"] : t["stop"]].lower() == t["text"].removeprefix("##")
    plain = server.post("/tokenize", json={"inputs": text, "add_special_tokens": False}).json()
    assert [t["id"] for t in plain[0]] == ids[1:-1]


# --- the GET routes -------------------------------------------------------------------------
def test_info_health_ready(server, models):
    info = server.get("/info").json()
    assert info["model_id"] == "base"
    assert info["model_path"] == str(models["base"].resolve())
    assert info["dimensions"] == 32
    assert info["max_input_length"] == 20
    assert info["pooling"] == "mean"
    assert info["minibert_version"] == minibert.__version__
    assert info["max_batch_tokens"] == 4096
    assert info["labels"] is None
    assert server.get("/health").json() == {"status": "ok"}
    ready = server.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_metrics_are_prometheus_text(server):
    server.post("/embed", json={"inputs": TEXTS})
    text = server.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain; version=0.0.4")
    body = text.text
    for family in (
        "minibert_requests_total",
        "minibert_request_duration_seconds",
        "minibert_batch_size",
        "minibert_batch_tokens",
        "minibert_queue_depth",
        "minibert_requests_in_flight",
    ):
        assert f"# TYPE {family} " in body
    assert 'minibert_requests_total{route="/embed",status="200"}' in body
    assert 'minibert_batch_size_bucket{le="+Inf"}' in body
    for line in body.splitlines():  # every sample line is `name{labels} number`
        if not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])


def test_histogram_buckets_are_cumulative():
    h = Histogram((1, 2, 4))
    for value in (0.5, 1.5, 3, 3, 9):
        h.observe(value)
    lines = h.lines("x", 'route="/a"')
    assert lines[:4] == [
        'x_bucket{route="/a",le="1"} 1',
        'x_bucket{route="/a",le="2"} 2',
        'x_bucket{route="/a",le="4"} 4',
        'x_bucket{route="/a",le="+Inf"} 5',
    ]
    assert lines[4:] == ['x_sum{route="/a"} 17', 'x_count{route="/a"} 5']


def test_openapi_describes_every_route(server):
    doc = server.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == set(server.app.routes)
    props = doc["paths"]["/v1/embeddings"]["post"]["requestBody"]["content"]
    assert props["application/json"]["schema"]["properties"]["dimensions"]["maximum"] == 32


def test_page_is_self_contained(server):
    page = server.get("/")
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "<table" in html or 'createElement("table")' in html
    for external in ("http://", "https://", "//cdn", "src=", "@import"):
        assert external not in html


def test_unknown_route_and_wrong_method(server):
    missing = server.get("/v2/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found"
    wrong = server.get("/v1/embeddings")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"
    assert wrong.json()["error"]["type"] == "method_not_allowed"


def test_timing_headers_and_access_log(server):
    response = server.post("/v1/embeddings", json={"input": TEXTS})
    for header in ("x-queue-time", "x-inference-time", "x-tokenization-time", "x-total-time"):
        assert float(response.headers[header]) >= 0
    entry = server.log_lines()[-1]
    assert entry["route"] == "/v1/embeddings"
    assert entry["status"] == 200
    assert entry["inputs"] == len(TEXTS)
    assert entry["tokens"] > len(TEXTS)
    for key in ("queue_ms", "inference_ms", "total_ms", "tokenize_ms"):
        assert entry[key] >= 0


# --- the API key ---------------------------------------------------------------------------
def test_api_key(models, cache):
    s = InProcessServer(models["base"], cache, api_key="s3cret")
    try:
        assert s.get("/health").status_code == 200  # always open
        assert s.get("/ready").status_code == 200  # probes send no key
        assert s.get("/").status_code == 200  # the static page; its requests carry the key
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            response = s.post("/embed", json={"inputs": "cat"}, headers=headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["error"]["type"] == "unauthorized"
        assert s.get("/metrics").status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        assert s.post("/embed", json={"inputs": "cat"}, headers=good).status_code == 200
        assert s.get("/info", headers=good).json()["auth"] is True
    finally:
        s.close()


# --- the self-check --------------------------------------------------------------------------
def test_first_start_stores_a_golden_vector_later_starts_check_it(models, tmp_path):
    s = InProcessServer(models["base"], tmp_path)
    try:
        check = s.get("/info").json()["self_check"]
        stored = list(tmp_path.glob("*.json"))
        assert [p.name for p in stored] == [f"{check['digest']}.json"]
        assert check["golden"] == str(stored[0])
        assert check["passed"] is True
    finally:
        s.close()
    record = json.loads(stored[0].read_text())
    assert record["made_by"].endswith("numpy reference kernels")
    record["vector"] = (-np.asarray(record["vector"])).tolist()  # as if other numbers came out
    stored[0].write_text(json.dumps(record))
    s = InProcessServer(models["base"], tmp_path)
    try:
        assert s.app.state == "failed"
        ready = s.get("/ready")
        assert ready.status_code == 503
        assert "self-check failed" in ready.json()["error"]["message"]
        refused = s.post("/v1/embeddings", json={"input": "cat"})
        assert refused.status_code == 503
        assert refused.json()["error"]["type"] == "not_ready"
        assert s.get("/health").status_code == 200
    finally:
        s.close()


def test_the_bundled_model_has_a_shipped_golden_record():
    model = ServedModel(pretrained.shipped_path())
    record, where = selfcheck.find_golden(selfcheck.model_digest(model), None)
    assert where is not None, "rebuild the record: see minibert/serve/golden/README.md"
    assert where.parent == selfcheck.SHIPPED_DIR
    (sequence,) = model.tokenize([selfcheck.GOLDEN_TEXT])
    (output,) = model.run([sequence])
    assert selfcheck.compare(record, sequence, output, model.dtype) is None


# --- scheduling through the app: concurrency, deadlines, disconnects -------------------------
def test_too_many_concurrent_requests_get_429(models, cache):
    s = InProcessServer(models["base"], cache, max_concurrent_requests=2)
    gate = Gate(s.app)
    try:
        waiting = [s.start_post("/embed", json={"inputs": [t]}) for t in TEXTS[:2]]
        wait_until(lambda: s.app.in_flight == 2)
        refused = s.post("/embed", json={"inputs": "cat"})
        assert refused.status_code == 429
        assert refused.json()["error"]["type"] == "too_many_requests"
        assert s.get("/health").status_code == 200  # the event loop is free meanwhile
        gate.open()
        assert [f.result(30).status_code for f in waiting] == [200, 200]
    finally:
        gate.restore()
        s.close()


def test_a_request_past_its_deadline_gets_504_and_its_queued_work_is_dropped(models, cache):
    s = InProcessServer(models["base"], cache, timeout=1.0)
    gate = Gate(s.app)
    try:
        first = s.start_post("/embed", json={"inputs": ["cat"]})
        assert gate.entered.wait(30)  # the worker holds the first request's batch
        second = s.post("/embed", json={"inputs": ["dogs ran over green hills"]})
        assert second.status_code == 504
        assert second.json()["error"]["type"] == "timeout"
        assert first.result(30).status_code == 504  # its batch is still held
        gate.open()
        wait_until(lambda: s.app.scheduler.depth == 0)
        assert len(gate.batches) == 1  # the second request's sequence never ran
        assert sum(s.app.scheduler.dropped.values()) == 1
        assert s.post("/embed", json={"inputs": "cat"}).status_code == 200
    finally:
        gate.restore()
        s.close()


def test_a_client_that_disconnects_has_its_queued_work_dropped(models, cache):
    s = InProcessServer(models["base"], cache)
    gate = Gate(s.app)
    gone = s.portal.call(asyncio.Event)
    sent = []
    body = json.dumps({"inputs": ["birds sang in tall trees"]}).encode()
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if messages:
            return messages.pop()
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/embed",
        "headers": [(b"content-type", b"application/json")],
    }
    try:
        first = s.start_post("/embed", json={"inputs": ["cat"]})
        assert gate.entered.wait(30)
        call = s.portal.start_task_soon(s.app, scope, receive, send)
        wait_until(lambda: s.app.scheduler.depth == 1)
        s.portal.call(gone.set)
        call.result(30)
        assert sent == []  # nobody to answer
        gate.open()
        assert first.result(30).status_code == 200
        wait_until(lambda: s.app.scheduler.depth == 0)
        assert len(gate.batches) == 1
        assert s.app.scheduler.dropped["cancelled"] == 1
        assert 499 in [entry["status"] for entry in s.log_lines()]  # the client went away
    finally:
        gate.restore()
        s.close()


# --- the scheduler on its own ----------------------------------------------------------------
def run_scheduler(lengths, budget, deadline=None):
    """Submit jobs of the given lengths while the worker is held, then let it run; returns
    the batches (lists of lengths) in the order they ran, and the jobs."""
    batches, held = [], threading.Event()

    def run_batch(payloads):
        held.wait(10)
        batches.append(list(payloads))
        return payloads

    scheduler = Scheduler(run_batch, budget)
    scheduler.start()
    blocker = scheduler.submit(["hold"], [1], time.monotonic() + 60)
    wait_until(lambda: scheduler.depth == 0)  # the worker took the blocker and waits
    far = time.monotonic() + 60 if deadline is None else deadline
    jobs = scheduler.submit(list(lengths), list(lengths), far)
    return scheduler, held, batches, jobs, blocker


def test_batches_stay_within_the_token_budget_oldest_first():
    lengths = [5, 30, 6, 29, 7, 100, 8]
    scheduler, held, batches, jobs, _ = run_scheduler(lengths, budget=64)
    held.set()
    assert [job.future.result(10) for job in jobs] == lengths
    scheduler.stop()
    ran = batches[1:]  # after the blocker
    assert sorted(x for batch in ran for x in batch) == sorted(lengths)
    assert ran[0][0] == 5 or 5 in ran[0]  # the oldest job is in the first batch
    for batch in ran:
        assert batch == sorted(batch)  # run_batch sees them shortest first
        assert len(batch) * max(batch) <= 64 or len(batch) == 1  # 100 runs alone
    assert [100] in ran


def test_padding_stays_within_its_share_of_a_batch():
    """Jobs join the oldest one's batch only while at most half of it is padding: a deep
    queue of short and long texts runs as a batch of each, not as one mostly padded batch."""
    lengths = [10, 10, 10, 100, 10, 95]
    scheduler, held, batches, jobs, _ = run_scheduler(lengths, budget=4096)
    held.set()
    assert [job.future.result(10) for job in jobs] == lengths
    scheduler.stop()
    ran = batches[1:]
    assert ran == [[10, 10, 10, 10], [95, 100]]
    for batch in ran:
        assert sum(batch) >= 0.5 * len(batch) * max(batch)
    with pytest.raises(ValueError, match="max_padding"):
        Scheduler(lambda p: p, 64, max_padding=1.0)


def test_cancelled_and_expired_jobs_never_run():
    scheduler, held, batches, jobs, _ = run_scheduler([3, 4, 5], budget=64)
    assert jobs[1].future.cancel()
    held.set()
    assert jobs[0].future.result(10) == 3
    assert jobs[2].future.result(10) == 5
    scheduler.stop()
    assert 4 not in [x for batch in batches for x in batch]
    assert scheduler.dropped["cancelled"] == 1

    scheduler, held, batches, jobs, _ = run_scheduler([3], budget=64, deadline=time.monotonic())
    held.set()
    with pytest.raises(DeadlineExceeded):
        jobs[0].future.result(10)
    scheduler.stop()
    assert scheduler.dropped["deadline"] == 1


def test_stop_drains_the_queue_and_a_failing_batch_fails_only_its_jobs():
    calls = []

    def run_batch(payloads):
        calls.append(payloads)
        if "bad" in payloads:
            raise RuntimeError("boom")
        return payloads

    scheduler = Scheduler(run_batch, max_batch_tokens=4)
    far = time.monotonic() + 60
    bad = scheduler.submit(["bad"], [4], far)
    good = scheduler.submit(["ok"], [4], far)
    scheduler.start()
    scheduler.stop(timeout=10)  # drains: both ran before the thread ended
    with pytest.raises(RuntimeError, match="boom"):
        bad[0].future.result(0)
    assert good[0].future.result(0) == "ok"
    with pytest.raises(Exception, match="stopping"):
        scheduler.submit(["late"], [1], far)


# --- the CPUs a container has ---------------------------------------------------------------
def fake_cgroup(root, files: dict):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"sys/fs/cgroup/cgroup.controllers": "cpu", "sys/fs/cgroup/cpu.max": "max 100000"}, 8),
        ({"sys/fs/cgroup/cgroup.controllers": "cpu", "sys/fs/cgroup/cpu.max": "150000 100000"}, 2),
        ({"sys/fs/cgroup/cgroup.controllers": "cpu", "sys/fs/cgroup/cpu.max": "50000 100000"}, 1),
        (  # a limit on the parent group applies to the process's own group inside it
            {
                "proc/self/cgroup": "0::/kube/pod1\n",
                "sys/fs/cgroup/cgroup.controllers": "cpu",
                "sys/fs/cgroup/cpu.max": "max 100000",
                "sys/fs/cgroup/kube/cpu.max": "300000 100000",
                "sys/fs/cgroup/kube/pod1/cpu.max": "max 100000",
            },
            3,
        ),
        (  # cgroup v1
            {
                "proc/self/cgroup": "4:cpu,cpuacct:/docker/abc\n",
                "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1",
                "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000",
                "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "400000",
                "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000",
            },
            4,
        ),
        ({}, 8),  # no cgroup files at all: the affinity
        ({"sys/fs/cgroup/cgroup.controllers": "", "sys/fs/cgroup/cpu.max": "garbage"}, 8),
    ],
)
def test_available_cpus_reads_the_quota(tmp_path, monkeypatch, files, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert available_cpus(fake_cgroup(tmp_path, files)) == expected


def test_available_cpus_follows_the_affinity(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 5}, raising=False)
    files = {"sys/fs/cgroup/cgroup.controllers": "cpu", "sys/fs/cgroup/cpu.max": "800000 100000"}
    assert available_cpus(fake_cgroup(tmp_path, files)) == 2
    assert 1 <= available_cpus() <= (os.cpu_count() or 1)  # this machine, whatever it is


# --- the command -----------------------------------------------------------------------------
def test_serve_help_shows_every_default(capsys):
    assert main(["serve", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for default in (
        "(default: 127.0.0.1)",
        "(default: 8000)",
        "(default: 4096)",
        "(default: 512)",
        "(default: 256)",
        "(default: 2000000)",
        "(default: 30.0)",
        f"(default: the bundled {pretrained.SHIPPED_NAME})",
    ):
        assert default in out


def test_serve_refuses_a_missing_folder_in_one_line(capsys, tmp_path):
    assert main(["serve", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("minibert: error: ")
    assert len(err.splitlines()) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_loopback_serve_with_the_openai_client_then_sigterm(tmp_path):
    """The real command on 127.0.0.1 with the bundled model: /ready, the official client
    (which asks for base64), SIGTERM during a request, which is answered, and a clean exit."""
    openai = pytest.importorskip("openai")
    port = _free_port()
    command = [sys.executable, "-m", "minibert.cli", "serve", "--port", str(port)]
    command += ["--api-key", "k3y", "--cache-dir", str(tmp_path), "--threads", "1"]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(trust_env=False, timeout=5) as http:
            end = time.monotonic() + 60
            while True:
                assert server.poll() is None, server.stderr.read().decode()
                try:
                    ready = http.get(f"{base}/ready", headers={"Authorization": "Bearer k3y"})
                    if ready.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < end, "the server did not become ready"
                time.sleep(0.1)
            assert http.get(f"{base}/health").status_code == 200
            texts = ["A cat sat on the mat.", "Stock prices fell sharply today."]
            with openai.OpenAI(
                base_url=f"{base}/v1", api_key="k3y", http_client=httpx.Client(trust_env=False)
            ) as client:
                result = client.embeddings.create(model=pretrained.SHIPPED_NAME, input=texts)
            vectors = np.array([d.embedding for d in result.data], np.float32)
            expected = offline(pretrained.shipped_path(), texts)
            np.testing.assert_allclose(vectors, expected, rtol=0, atol=ATOL_SERVED)
            assert result.usage.prompt_tokens > 0
            with (
                openai.OpenAI(
                    base_url=f"{base}/v1",
                    api_key="wrong",
                    max_retries=0,
                    http_client=httpx.Client(trust_env=False),
                ) as client,
                pytest.raises(openai.AuthenticationError),
            ):
                client.embeddings.create(model="m", input="x")
            # SIGTERM while a request is being answered: it is answered in full, then the
            # process exits 0 (a few seconds of work: 96 texts of ~200 tokens)
            key = {"Authorization": "Bearer k3y"}
            long_texts = [
                f"{i} the cat sat on the mat near the river bank " * 20 for i in range(96)
            ]
            pending = {}

            def ask():
                with httpx.Client(trust_env=False, timeout=60) as own:
                    pending["response"] = own.post(
                        f"{base}/embed", json={"inputs": long_texts}, headers=key
                    )

            asking = threading.Thread(target=ask)
            asking.start()
            metrics = f"{base}/metrics"
            wait_until(
                lambda: (
                    "minibert_requests_in_flight 1" in http.get(metrics, headers=key).text
                    or "response" in pending
                )
            )
            server.send_signal(signal.SIGTERM)
            asking.join(60)
            assert pending["response"].status_code == 200
            assert len(pending["response"].json()) == len(long_texts)
        assert server.wait(timeout=30) == 0
        log = server.stderr.read().decode()
        entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        assert any(e["route"] == "/v1/embeddings" and e["status"] == 200 for e in entries)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        server.stderr.close()
