"""Request bodies: JSON in, checked requests out, or an ApiError that names the field.

Every 4xx of the server has one JSON shape, {"error": {"message", "type", "field"}}, and the
status says what happened (STYLE.md section 14):

    400 invalid_json      the body is not JSON, or not UTF-8
    401 unauthorized      a missing or wrong API key
    404 not_found / 405 method_not_allowed
    413 body_too_large    the body is over --max-body-bytes
    415 unsupported_media_type   a POST body that is not application/json
    422 invalid_field     a field has the wrong type or value, or is over a limit
    400 model_unsupported the route needs a head this model does not have
    429 too_many_requests / 503 not_ready / 504 timeout

The request classes hold what the routes need and nothing of HTTP. Field names and defaults
follow the APIs the routes copy: OpenAI's embeddings (`input`, `model`, `encoding_format`,
`dimensions`, `user`) and Hugging Face TEI's (`inputs`, `normalize`, `truncate`, `raw_scores`,
`query`, `texts`, `return_text`, `add_special_tokens`).
"""

import json
from dataclasses import dataclass


class ApiError(Exception):
    """An error a client caused (or an overloaded server): HTTP status and the JSON body."""

    def __init__(self, status: int, kind: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.kind, self.message, self.field = status, kind, message, field

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "field": self.field}}


@dataclass(frozen=True)
class Limits:
    """What one request may ask for."""

    max_inputs: int  # texts per request
    max_input_length: int  # tokens per text, special tokens included
    max_body_bytes: int


@dataclass
class EmbeddingsRequest:  # POST /v1/embeddings
    texts: list
    encoding_format: str
    dimensions: int | None
    model: str | None


@dataclass
class EmbedRequest:  # POST /embed
    texts: list
    normalize: bool
    truncate: bool


@dataclass
class PredictRequest:  # POST /predict
    texts: list
    raw_scores: bool
    truncate: bool
    single: bool  # `inputs` was one string: one list of scores, not a list of lists


@dataclass
class RerankRequest:  # POST /rerank
    query: str
    texts: list
    return_text: bool
    raw_scores: bool
    truncate: bool


@dataclass
class TokenizeRequest:  # POST /tokenize
    texts: list
    add_special_tokens: bool


def parse_json(body: bytes) -> dict:
    """The body as a JSON object; 400 for bytes that are not UTF-8 or not JSON, 422 for JSON
    that is not an object."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not UTF-8: {exc.reason}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_field", "the body must be a JSON object", None)
    return data


def embeddings_request(data: dict, limits: Limits, dim: int) -> EmbeddingsRequest:
    _known(data, {"input", "model", "encoding_format", "dimensions", "user"})
    if "input" not in data:
        raise _field("input", "is required")
    texts = _texts(data["input"], "input", limits, token_ids_hint=True)
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise _field("model", "must be a string")
    encoding_format = data.get("encoding_format", "float")
    if encoding_format is None:
        encoding_format = "float"
    if encoding_format not in ("float", "base64"):
        raise _field("encoding_format", f"must be 'float' or 'base64', got {encoding_format!r}")
    dimensions = data.get("dimensions")
    if dimensions is not None:
        if not _is_int(dimensions) or not 1 <= dimensions <= dim:
            raise _field("dimensions", f"must be an integer from 1 to the model's {dim}")
    if data.get("user") is not None and not isinstance(data["user"], str):
        raise _field("user", "must be a string")
    return EmbeddingsRequest(texts, encoding_format, dimensions, model)


def embed_request(data: dict, limits: Limits) -> EmbedRequest:
    _known(data, {"inputs", "normalize", "truncate", "truncation_direction", "prompt_name"})
    _tei_extras(data)
    return EmbedRequest(
        _texts(data.get("inputs", _MISSING), "inputs", limits),
        _bool(data, "normalize", True),
        _bool(data, "truncate", False),
    )


def predict_request(data: dict, limits: Limits) -> PredictRequest:
    _known(data, {"inputs", "raw_scores", "truncate", "truncation_direction"})
    _tei_extras(data)
    inputs = data.get("inputs", _MISSING)
    return PredictRequest(
        _texts(inputs, "inputs", limits),
        _bool(data, "raw_scores", False),
        _bool(data, "truncate", False),
        single=isinstance(inputs, str),
    )


def rerank_request(data: dict, limits: Limits) -> RerankRequest:
    _known(
        data, {"query", "texts", "return_text", "raw_scores", "truncate", "truncation_direction"}
    )
    _tei_extras(data)
    query = data.get("query", _MISSING)
    if query is _MISSING:
        raise _field("query", "is required")
    if not isinstance(query, str) or not query.strip():
        raise _field("query", "must be a non-empty string")
    texts = data.get("texts", _MISSING)
    if isinstance(texts, str):
        raise _field("texts", "must be a list of strings")
    return RerankRequest(
        query,
        _texts(texts, "texts", limits),
        _bool(data, "return_text", False),
        _bool(data, "raw_scores", False),
        _bool(data, "truncate", False),
    )


def tokenize_request(data: dict, limits: Limits) -> TokenizeRequest:
    _known(data, {"inputs", "add_special_tokens"})
    return TokenizeRequest(
        _texts(data.get("inputs", _MISSING), "inputs", limits),
        _bool(data, "add_special_tokens", True),
    )


_MISSING = object()


def _texts(value, name: str, limits: Limits, token_ids_hint: bool = False) -> list:
    """A string or a non-empty list of strings, as a list; each non-empty, at most max_inputs."""
    if value is _MISSING:
        raise _field(name, "is required")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise _field(name, f"must be a string or a list of strings, got {_kind(value)}")
    if not value:
        raise _field(name, "must hold at least one text")
    if len(value) > limits.max_inputs:
        raise _field(
            name, f"has {len(value)} texts, more than the limit of {limits.max_inputs} per request"
        )
    for i, text in enumerate(value):
        if token_ids_hint and (_is_int(text) or isinstance(text, list)):
            raise _field(
                name,
                "token ids are not accepted: send the texts themselves "
                "(a string or a list of strings)",
            )
        if not isinstance(text, str):
            raise _field(f"{name}[{i}]", f"must be a string, got {_kind(text)}")
        if not text.strip():
            raise _field(f"{name}[{i}]", "is empty: every text needs at least one character")
    return value


def _tei_extras(data: dict) -> None:
    """TEI's truncation_direction (only "right", which is what truncation does) and
    prompt_name (no prompts are configured, so only null)."""
    direction = data.get("truncation_direction")
    if direction is not None and direction not in ("right", "Right"):
        raise _field("truncation_direction", "only 'right' is supported")
    if data.get("prompt_name") is not None:
        raise _field("prompt_name", "this server has no prompts configured: leave it out")


def _bool(data: dict, name: str, default: bool) -> bool:
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _field(name, f"must be true or false, got {_kind(value)}")
    return value


def _known(data: dict, names: set) -> None:
    """An unknown field is refused, naming it: a typo (`input` for `inputs`) would otherwise
    be silently ignored."""
    unknown = sorted(set(data) - names)
    if unknown:
        raise _field(
            unknown[0], f"is not a field of this route (fields: {', '.join(sorted(names))})"
        )


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _field(name: str, problem: str) -> ApiError:
    return ApiError(422, "invalid_field", f"{name} {problem}", name)
