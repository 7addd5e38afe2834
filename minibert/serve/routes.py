"""The routes: parse and check the body, tokenize, queue, and format the answer.

Each handler takes the app and the Call and returns a Reply; it knows the wire format of its
route and nothing of sockets. Formats follow the APIs the routes copy:

    POST /v1/embeddings  OpenAI's embeddings: unit vectors, float lists or base64 (the bytes
                         of little-endian float32, what the official client asks for by
                         default), `dimensions` cuts the vector and normalises it again
    POST /embed          TEI: a list of vectors, normalised unless normalize=false
    POST /predict        TEI: [{"label", "score"}] per input, highest score first (softmax;
                         sigmoid for a one-label head; logits with raw_scores=true)
    POST /rerank         TEI: [{"index", "score"}] highest first, sigmoid of a one-label
                         cross-encoder's logit for each (query, text) pair
    POST /tokenize       TEI: each input's tokens with their character spans
    GET  /info /health /ready /metrics /openapi.json /
"""

import base64
import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..functional.pooling import l2_normalize
from . import openapi, page, schemas
from .messages import Reply
from .metrics import CONTENT_TYPE as METRICS_TYPE
from .model import minibert_version
from .schemas import ApiError


@dataclass
class Route:
    """The handlers of one path by method; `auth`: needs the API key when one is set;
    `limited`: counts against --max-concurrent-requests."""

    methods: dict = field(default_factory=dict)
    auth: bool = True
    limited: bool = False


def table() -> dict:
    """{path: Route}"""
    return {
        "/v1/embeddings": Route({"POST": embeddings}, limited=True),
        "/embed": Route({"POST": embed}, limited=True),
        "/predict": Route({"POST": predict}, limited=True),
        "/rerank": Route({"POST": rerank}, limited=True),
        "/tokenize": Route({"POST": tokenize}, limited=True),
        "/info": Route({"GET": info}),
        "/health": Route({"GET": health}, auth=False),
        # probes (a Kubernetes readinessProbe) carry no credentials; the answer is only
        # ready or not, the self-check's details are in /info
        "/ready": Route({"GET": ready}, auth=False),
        "/metrics": Route({"GET": metrics}),
        "/openapi.json": Route({"GET": openapi_document}),
        # the page is static and holds no data; its requests carry the key the user types in
        "/": Route({"GET": index}, auth=False),
    }


async def embeddings(app, call):
    request = schemas.embeddings_request(schemas.parse_json(call.body), app.limits, app.model.dim)
    app.require_ready()
    sequences = await app.tokenize(request.texts, field="input", call=call)
    outputs, _ = await app.infer(sequences, call)
    vectors = l2_normalize(np.stack([o.vector for o in outputs]))  # (N, C)
    if request.dimensions is not None:  # shortened vectors are unit length again, as OpenAI's
        vectors = l2_normalize(vectors[:, : request.dimensions])
    encode = _base64 if request.encoding_format == "base64" else _floats
    data = [
        {"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)
    ]
    usage = {"prompt_tokens": call.tokens, "total_tokens": call.tokens}
    return Reply.json({"object": "list", "data": data, "model": app.model.name, "usage": usage})


async def embed(app, call):
    request = schemas.embed_request(schemas.parse_json(call.body), app.limits)
    app.require_ready()
    sequences = await app.tokenize(request.texts, truncate=request.truncate, call=call)
    outputs, _ = await app.infer(sequences, call)
    vectors = np.stack([o.vector for o in outputs])  # (N, C)
    if request.normalize:
        vectors = l2_normalize(vectors)
    return Reply.json([_floats(v) for v in vectors])


async def predict(app, call):
    request = schemas.predict_request(schemas.parse_json(call.body), app.limits)
    labels = app.model.labels
    if labels is None:
        raise _no_head(app, "/predict needs a sequence-classification model")
    app.require_ready()
    sequences = await app.tokenize(request.texts, truncate=request.truncate, call=call)
    outputs, _ = await app.infer(sequences, call)
    answers = []
    for output in outputs:
        logits = np.asarray(output.logits, np.float64)
        scores = logits if request.raw_scores else _probabilities(logits)
        ranked = sorted(zip(labels, scores, strict=True), key=lambda pair: -pair[1])
        answers.append([{"label": label, "score": float(score)} for label, score in ranked])
    return Reply.json(answers[0] if request.single else answers)


async def rerank(app, call):
    request = schemas.rerank_request(schemas.parse_json(call.body), app.limits)
    labels = app.model.labels
    if labels is None or len(labels) != 1:
        found = "no classification head" if labels is None else f"{len(labels)} labels"
        raise _no_head(
            app,
            f"/rerank needs a cross-encoder (a classification head with one label), "
            f"and this model has {found}",
        )
    app.require_ready()
    queries = [request.query] * len(request.texts)
    sequences = await app.tokenize(
        queries, pairs=request.texts, truncate=request.truncate, field="texts", call=call
    )
    outputs, _ = await app.infer(sequences, call)
    logits = np.array([float(o.logits[0]) for o in outputs])  # (N,)
    scores = logits if request.raw_scores else _sigmoid(logits)
    answers = []
    for i in np.argsort(-scores, kind="stable"):
        answer = {"index": int(i), "score": float(scores[i])}
        if request.return_text:
            answer["text"] = request.texts[i]
        answers.append(answer)
    return Reply.json(answers)


async def tokenize(app, call):
    request = schemas.tokenize_request(schemas.parse_json(call.body), app.limits)
    start = time.monotonic()
    tokens = await app.tokens(request.texts, request.add_special_tokens)
    call.timings["tokenize"] = time.monotonic() - start
    call.inputs, call.tokens = len(tokens), sum(len(t) for t in tokens)
    return Reply.json(tokens)


async def info(app, call):
    model, settings = app.model, app.settings
    labels = model.labels
    return Reply.json(
        {
            "model_id": model.name,
            "model_path": str(model.path),
            "architecture": model.config.architecture,
            "model_type": model.config.model_type,
            "dimensions": model.dim,
            "max_input_length": model.max_length,
            "dtype": model.dtype,
            "pooling": model.pooling,
            "labels": labels,
            "routes": _model_routes(labels),
            "minibert_version": minibert_version(),
            "max_batch_tokens": settings.max_batch_tokens,
            "max_concurrent_requests": settings.max_concurrent_requests,
            "max_inputs": settings.max_inputs,
            "max_body_bytes": settings.max_body_bytes,
            "timeout_s": settings.timeout,
            "threads": app.threads,
            "workers": settings.workers,
            "pid": os.getpid(),
            "auth": settings.api_key is not None,
            "state": app.state,
            "self_check": app.self_check,  # the golden record's digest and file
        },
    )


async def health(app, call):
    return Reply.json({"status": "ok"})


async def ready(app, call):
    if app.state != "ready":
        raise ApiError(503, "not_ready", f"not ready: {app.state_detail}")
    return Reply.json({"status": "ready", "detail": app.state_detail})


async def metrics(app, call):
    return Reply(200, app.metrics.render().encode(), METRICS_TYPE)


async def openapi_document(app, call):
    return Reply.json(
        openapi.document(app.model.dim, app.limits.max_inputs, app.settings.api_key is not None),
    )


async def index(app, call):
    return Reply(200, page.HTML.encode(), "text/html; charset=utf-8")


def _floats(vector) -> list:
    return vector.astype(np.float32).tolist()


def _base64(vector) -> str:
    """OpenAI's base64 format: the vector's little-endian float32 bytes, base64-encoded."""
    return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")


def _probabilities(logits):
    """softmax over the labels; sigmoid for a single label (a score, not a choice)."""
    if logits.shape[0] == 1:
        return _sigmoid(logits)
    shifted = np.exp(logits - logits.max())  # subtract the max so exp never overflows
    return shifted / shifted.sum()


def _sigmoid(x):
    """1 / (1 + exp(-x)), written with tanh so that no logit overflows exp."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _no_head(app, message: str) -> ApiError:
    return ApiError(
        400, "model_unsupported", f"{message} ({app.model.name} is {app.model.config.architecture})"
    )


def _model_routes(labels) -> list[str]:
    routes = ["/v1/embeddings", "/embed", "/tokenize"]
    if labels is not None:
        routes.append("/predict")
    if labels is not None and len(labels) == 1:
        routes.append("/rerank")
    return routes
