"""One HTTP exchange as the app and its routes see it, and the ASGI messages that carry it.

Call is a request (its body read, its timings collected on the way), Reply a response; the
functions read a body within a size limit, notice a client that went away, and send a Reply
with its timing headers (milliseconds, as TEI names them: X-Queue-Time, X-Inference-Time,
X-Tokenization-Time, X-Total-Time).
"""

import json
import time

from .schemas import ApiError

JSON_TYPE = "application/json"


class ClientGone(Exception):
    """The client closed the connection before its answer was ready."""


class Call:
    """One HTTP request as a handler sees it: the body, the connection, and the timings the
    app reports for it."""

    def __init__(self, scope, receive, body: bytes = b""):
        self.scope, self.receive, self.body = scope, receive, body
        self.arrived = time.monotonic()
        self.timings = {}  # "tokenize", "queue", "inference": seconds
        self.tokens = 0
        self.inputs = 0


class Reply:
    """A response: status, body bytes, content type, extra headers."""

    def __init__(self, status: int, body: bytes, content_type: str, headers=()):
        self.status, self.body, self.content_type = status, body, content_type
        self.headers = list(headers)

    @classmethod
    def json(cls, data, status: int = 200, headers=()) -> "Reply":
        body = json.dumps(data, separators=(",", ":")).encode()
        return cls(status, body, JSON_TYPE, headers)

    @classmethod
    def error(cls, error: ApiError) -> "Reply":
        headers = [("www-authenticate", "Bearer")] if error.status == 401 else []
        if error.status in (429, 503):
            headers.append(("retry-after", "1"))
        return cls.json(error.body(), error.status, headers)


async def read_body(scope, receive, limit: int) -> bytes:
    """The request body, refusing (413) as soon as it is known to be over `limit` bytes:
    from Content-Length before reading, or while reading a body sent in chunks."""
    headers = dict(scope.get("headers") or [])
    kind = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
    if kind != JSON_TYPE:
        shown = kind or "none"
        raise ApiError(415, "unsupported_media_type", f"send application/json, not {shown}")
    too_large = ApiError(413, "body_too_large", f"the body is over the limit of {limit} bytes")
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def disconnected(receive) -> None:
    """Returns when the client disconnects (the only message left once the body is read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def send_reply(send, reply: Reply) -> None:
    headers = [
        (b"content-type", reply.content_type.encode()),
        (b"content-length", str(len(reply.body)).encode()),
    ]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


def timing_headers(call: Call) -> list:
    names = {"tokenize": "x-tokenization-time", "queue": "x-queue-time"}
    names["inference"] = "x-inference-time"
    headers = [(names[k], _ms_text(v)) for k, v in call.timings.items() if k in names]
    if headers:
        headers.append(("x-total-time", _ms_text(time.monotonic() - call.arrived)))
    return headers


def _ms_text(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"
