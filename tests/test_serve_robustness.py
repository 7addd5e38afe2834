"""`minibert serve` against bad requests: each gets a clear 4xx in the one error shape, and
the server keeps answering; then schemathesis sends what /openapi.json allows (and what it
does not) to every route, in-process, and no answer may be a 5xx.
"""

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from test_serve_helpers import InProcessServer, build_models, wait_until

from minibert.serve import routes

HUNDRED_K = "word " * 20_000  # 100,000 characters


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return build_models(tmp_path_factory.mktemp("robust-models"))


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    s = InProcessServer(models["reranker"], tmp_path_factory.mktemp("robust-cache"))
    yield s
    s.close()


def assert_error(response, status: int, kind: str, field=None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "field"}
    assert error["type"] == kind
    assert error["message"]
    if field is not None:
        assert error["field"] == field


def assert_unharmed(server):
    assert server.get("/health").status_code == 200
    assert server.post("/embed", json={"inputs": "cat"}).status_code == 200


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("path", "body", "status", "kind", "field"),
    [
        ("/embed", b'{"inputs": ["a",', 400, "invalid_json", None),
        ("/embed", b"", 400, "invalid_json", None),
        ("/embed", b'{"inputs": "\xff\xfe"}', 400, "invalid_json", None),  # not UTF-8
        ("/embed", b"[1, 2]", 422, "invalid_field", None),
        ("/embed", b"{}", 422, "invalid_field", "inputs"),
        ("/embed", b'{"inputs": []}', 422, "invalid_field", "inputs"),
        ("/embed", b'{"inputs": ""}', 422, "invalid_field", "inputs[0]"),
        ("/embed", b'{"inputs": ["ok", "  "]}', 422, "invalid_field", "inputs[1]"),
        ("/embed", b'{"inputs": ["ok", 3]}', 422, "invalid_field", "inputs[1]"),
        ("/embed", b'{"inputs": {"a": 1}}', 422, "invalid_field", "inputs"),
        ("/embed", b'{"inputs": "a", "normalize": "yes"}', 422, "invalid_field", "normalize"),
        ("/embed", b'{"input": "a"}', 422, "invalid_field", "input"),  # a typo is named
        ("/v1/embeddings", b'{"input": [[1, 2, 3]]}', 422, "invalid_field", "input"),
        ("/v1/embeddings", b'{"input": [101, 102]}', 422, "invalid_field", "input"),
        ("/v1/embeddings", b'{"input": "a", "dimensions": 0}', 422, "invalid_field", "dimensions"),
        ("/v1/embeddings", b'{"input": "a", "dimensions": true}', 422, "invalid_field", None),
        ("/v1/embeddings", b'{"input": "a", "encoding_format": "hex"}', 422, "invalid_field", None),
        ("/v1/embeddings", b'{"input": "a", "model": 7}', 422, "invalid_field", "model"),
        ("/rerank", b'{"query": "", "texts": ["a"]}', 422, "invalid_field", "query"),
        ("/rerank", b'{"query": "q", "texts": "a"}', 422, "invalid_field", "texts"),
        ("/rerank", b'{"texts": ["a"]}', 422, "invalid_field", "query"),
        ("/tokenize", b'{"inputs": null}', 422, "invalid_field", "inputs"),
        ("/predict", b'{"inputs": "a", "raw_scores": 1}', 422, "invalid_field", "raw_scores"),
    ],
)
def test_malformed_bodies_get_a_clear_4xx(server, path, body, status, kind, field):
    assert_error(server.post(path, content=body, headers=JSON), status, kind, field)


def test_wrong_content_type_is_415(server):
    body = json.dumps({"inputs": "cat"})
    for headers in ({"content-type": "text/plain"}, {"content-type": "application/x-www-form"}):
        assert_error(
            server.post("/embed", content=body, headers=headers), 415, "unsupported_media_type"
        )
    assert_error(server.post("/embed", content=body), 415, "unsupported_media_type")
    ok = server.post(
        "/embed", content=body, headers={"content-type": "application/json; charset=utf-8"}
    )
    assert ok.status_code == 200
    assert_unharmed(server)


def test_a_10_mb_body_is_413_declared_or_streamed(server):
    big = json.dumps({"inputs": ["cat " * 1000] * 2500}).encode()
    assert len(big) > 10_000_000
    assert_error(server.post("/embed", content=big, headers=JSON), 413, "body_too_large")

    async def chunks():  # no Content-Length: the limit is found while reading
        for start in range(0, len(big), 1 << 20):
            yield big[start : start + (1 << 20)]

    streamed = server.post("/embed", content=chunks(), headers=JSON)
    assert_error(streamed, 413, "body_too_large")
    assert_unharmed(server)


def test_a_100k_character_input_is_refused_or_truncated(server):
    assert_error(
        server.post("/embed", json={"inputs": ["cat", HUNDRED_K]}),
        422,
        "input_too_long",
        "inputs[1]",
    )
    cut = server.post("/embed", json={"inputs": ["cat", HUNDRED_K], "truncate": True})
    assert cut.status_code == 200
    assert len(cut.json()) == 2
    assert_error(server.post("/tokenize", json={"inputs": "a" * 3_000_000}), 413, "body_too_large")
    assert server.post("/tokenize", json={"inputs": HUNDRED_K}).status_code == 200
    assert_unharmed(server)


def test_too_many_inputs_names_the_limit(models, tmp_path):
    s = InProcessServer(models["base"], tmp_path, max_inputs=3)
    try:
        assert s.post("/embed", json={"inputs": ["a", "b", "c"]}).status_code == 200
        response = s.post("/v1/embeddings", json={"input": ["a", "b", "c", "d"]})
        assert_error(response, 422, "invalid_field", "input")
        assert "limit of 3" in response.json()["error"]["message"]
    finally:
        s.close()


def test_not_ready_yet_is_503_and_health_is_200(models, tmp_path):
    s = InProcessServer(models["base"], tmp_path, wait=False)
    try:
        early = s.get("/ready")
        if early.status_code == 503:  # the warm-up may already be over on a fast machine
            assert_error(early, 503, "not_ready")
        assert s.get("/health").status_code == 200
        wait_until(lambda: s.app.state == "ready")
        assert s.get("/ready").status_code == 200
    finally:
        s.close()


# --- schemathesis -------------------------------------------------------------------------
# (path, method, mode): a GET route takes no input, so only its positive case exists; the
# document itself is what schemathesis reads, not an operation it tests
CASES = sorted(
    (path, method, mode)
    for path, route in routes.table().items()
    for method in route.methods
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if (method == "POST" or mode == GenerationMode.POSITIVE) and path != "/openapi.json"
)


@pytest.fixture(scope="module")
def api_schema(server):
    """The schema, read from the app. Schemathesis would also run the app's lifespan around
    each test; the module's server runs it once, so schemathesis gets the app's HTTP side
    only (an app that refuses the lifespan scope is served without one)."""

    async def http_only(scope, receive, send):
        if scope["type"] != "http":
            raise RuntimeError("the lifespan is run by the test's own server")
        await server.app(scope, receive, send)

    return schemathesis.openapi.from_asgi("/openapi.json", http_only)


@pytest.mark.parametrize(("path", "method", "mode"), CASES)
def test_no_generated_request_gets_a_5xx(api_schema, server, path, method, mode):
    """Up to 20 requests per route and mode: bodies the schema allows, and bodies it does not."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    (operation,) = [o for o in operations if o.path == path and o.method.upper() == method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case):
        case.call_and_validate(checks=[not_a_server_error])

    answered = len(server.log_lines())
    check()
    assert len(server.log_lines()) > answered  # the requests did reach the app
    assert_unharmed(server)
