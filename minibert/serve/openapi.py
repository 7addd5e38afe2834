"""The OpenAPI 3 document served at /openapi.json, written by hand.

Every route, its request and response schemas and its error statuses. The limits in it (how
many inputs, how many dimensions) are the running server's, so a generated client or a
schema-driven test (tests/test_serve_robustness.py runs schemathesis against it) sees what
this server accepts.
"""

from .model import minibert_version


def document(dim: int, max_inputs: int, auth: bool) -> dict:
    """The OpenAPI 3.0 document of a server with vectors of `dim` and `max_inputs` texts a
    request; `auth`: the API-key routes declare bearer authentication."""
    text = {"type": "string", "minLength": 1, "pattern": r"\S"}
    texts = {"type": "array", "items": text, "minItems": 1, "maxItems": max_inputs}
    one_or_many = {"oneOf": [text, texts]}
    flag = {"type": "boolean"}
    post_errors = {
        "400": _error("invalid JSON, or a route this model has no head for"),
        "413": _error("the body is larger than the server's limit"),
        "415": _error("the body is not application/json"),
        "422": _error("a field is missing, of the wrong type, or over a limit"),
        "429": _error("too many requests at once"),
        "503": _error("not ready yet (warm-up, self-check) or shutting down"),
        "504": _error("no answer within the request timeout"),
    }
    if auth:
        post_errors["401"] = _error("a missing or wrong API key")
    vector = {"type": "array", "items": {"type": "number"}}
    score = {
        "type": "object",
        "required": ["label", "score"],
        "properties": {"label": {"type": "string"}, "score": {"type": "number"}},
    }
    paths = {
        "/v1/embeddings": _post(
            "Sentence vectors, as OpenAI's embeddings API",
            _object(
                {
                    "input": one_or_many,
                    "model": {"type": "string"},
                    "encoding_format": {"type": "string", "enum": ["float", "base64"]},
                    "dimensions": {"type": "integer", "minimum": 1, "maximum": dim},
                    "user": {"type": "string"},
                },
                required=["input"],
            ),
            {"$ref": "#/components/schemas/EmbeddingsResponse"},
            post_errors,
        ),
        "/embed": _post(
            "Sentence vectors, as Hugging Face TEI's /embed",
            _object(
                {
                    "inputs": one_or_many,
                    "normalize": flag,
                    "truncate": flag,
                    "truncation_direction": {"type": "string", "enum": ["right", "Right"]},
                },
                required=["inputs"],
            ),
            {"type": "array", "items": vector},
            post_errors,
        ),
        "/predict": _post(
            "Class scores of a sequence-classification model, as TEI's /predict",
            _object(
                {
                    "inputs": one_or_many,
                    "raw_scores": flag,
                    "truncate": flag,
                    "truncation_direction": {"type": "string", "enum": ["right", "Right"]},
                },
                required=["inputs"],
            ),
            {
                "oneOf": [
                    {"type": "array", "items": score},
                    {"type": "array", "items": {"type": "array", "items": score}},
                ]
            },
            post_errors,
        ),
        "/rerank": _post(
            "Texts ranked by a one-label cross-encoder's score against a query, as TEI's /rerank",
            _object(
                {
                    "query": text,
                    "texts": texts,
                    "return_text": flag,
                    "raw_scores": flag,
                    "truncate": flag,
                    "truncation_direction": {"type": "string", "enum": ["right", "Right"]},
                },
                required=["query", "texts"],
            ),
            {"type": "array", "items": {"$ref": "#/components/schemas/Rank"}},
            post_errors,
        ),
        "/tokenize": _post(
            "Each input's tokens and their character spans, as TEI's /tokenize",
            _object({"inputs": one_or_many, "add_special_tokens": flag}, required=["inputs"]),
            {"type": "array", "items": {"type": "array", "items": _token()}},
            post_errors,
        ),
        "/info": _get("The model and the server's limits", {"type": "object"}, auth),
        "/health": _get("200 while the process is alive (never needs the key)", _status(), False),
        "/ready": _get(
            "200 once warm-up and the golden-vector self-check passed, else 503",
            _status(),
            False,
            {"503": _error("still starting, or the self-check failed")},
        ),
        "/metrics": _get("Prometheus text format", None, auth, media="text/plain"),
        "/openapi.json": _get("This document", {"type": "object"}, auth),
        "/": _get("A page to compare sentences", None, False, media="text/html"),
    }
    doc = {
        "openapi": "3.0.3",
        "info": {
            "title": "minibert serve",
            "version": minibert_version(),
            "description": "Sentence embeddings, classification and reranking with minibert.",
        },
        "paths": paths,
        "components": {"schemas": _schemas()},
    }
    if auth:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]  # every route but those with `security: []`
    return doc


def _object(properties: dict, required: list) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _post(summary: str, request: dict, response: dict, errors: dict) -> dict:
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
            "responses": {"200": _content("OK", response), **errors},
        }
    }


def _get(summary, schema, auth, extra=None, media="application/json") -> dict:
    responses = {"200": _content("OK", schema, media)}
    if auth:
        responses["401"] = _error("a missing or wrong API key")
    responses.update(extra or {})
    operation = {"summary": summary, "responses": responses}
    if not auth:
        operation["security"] = []
    return {"get": operation}


def _content(description: str, schema, media: str = "application/json") -> dict:
    if schema is None:
        return {"description": description, "content": {media: {}}}
    return {"description": description, "content": {media: {"schema": schema}}}


def _error(description: str) -> dict:
    return _content(description, {"$ref": "#/components/schemas/Error"})


def _status() -> dict:
    return {"type": "object", "properties": {"status": {"type": "string"}}}


def _token() -> dict:
    position = {"type": "integer", "nullable": True}
    return {
        "type": "object",
        "required": ["id", "text", "special", "start", "stop"],
        "properties": {
            "id": {"type": "integer"},
            "text": {"type": "string"},
            "special": {"type": "boolean"},
            "start": position,
            "stop": position,
        },
    }


def _schemas() -> dict:
    embedding = {
        "type": "object",
        "required": ["object", "index", "embedding"],
        "properties": {
            "object": {"type": "string", "enum": ["embedding"]},
            "index": {"type": "integer"},
            "embedding": {
                "oneOf": [
                    {"type": "array", "items": {"type": "number"}},
                    {"type": "string", "description": "base64 of little-endian float32"},
                ]
            },
        },
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["message", "type", "field"],
                    "properties": {
                        "message": {"type": "string"},
                        "type": {"type": "string"},
                        "field": {"type": "string", "nullable": True},
                    },
                }
            },
        },
        "EmbeddingsResponse": {
            "type": "object",
            "required": ["object", "data", "model", "usage"],
            "properties": {
                "object": {"type": "string", "enum": ["list"]},
                "data": {"type": "array", "items": embedding},
                "model": {"type": "string"},
                "usage": {
                    "type": "object",
                    "required": ["prompt_tokens", "total_tokens"],
                    "properties": {
                        "prompt_tokens": {"type": "integer"},
                        "total_tokens": {"type": "integer"},
                    },
                },
            },
        },
        "Rank": {
            "type": "object",
            "required": ["index", "score"],
            "properties": {
                "index": {"type": "integer"},
                "score": {"type": "number"},
                "text": {"type": "string"},
            },
        },
    }
