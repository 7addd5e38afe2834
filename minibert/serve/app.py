"""The ASGI application: routing, limits, authentication, timing, logs; no framework.

ServeApp is an ASGI 3 callable (uvicorn runs it; tests call it in-process). It answers the
`lifespan` scope (start: the scheduler, the tokenizer thread and, in the background, the
warm-up and self-check; stop: drain the queue) and `http` requests. A request goes through:

    route and method (404, 405) -> API key (401) -> content type (415) and body size (413)
    -> the route's handler (routes.py: parse, validate, tokenize, queue, format)
    -> the response, with X-Queue-Time / X-Inference-Time headers, one JSON access-log line
       on stderr and the metrics.

The model runs in the scheduler's one worker thread and the tokenizer in one tokenizer
thread, so the event loop only parses, waits and writes. While a request waits for its
batches, its connection is watched: a client that goes away has its queued sequences
dropped (scheduler.py), and one whose deadline (--timeout) passes gets 504.
"""

import asyncio
import hmac
import json
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from .. import pretrained
from ..kernels.threads import apply_numba_threads, available_cpus
from . import routes, selfcheck
from .messages import (
    Call,
    ClientGone,
    Reply,
    disconnected,
    read_body,
    send_reply,
    timing_headers,
)
from .metrics import Metrics
from .model import InputTooLong, ServedModel
from .scheduler import DeadlineExceeded, Scheduler, SchedulerStopped
from .schemas import ApiError, Limits
from .settings import Settings

log = logging.getLogger("minibert.serve")


class ServeApp:
    """The server's application. Build it with a Settings (it loads the model) or hand it a
    ServedModel already loaded; `access_log` is the stream for the JSON lines (None: none)."""

    def __init__(self, settings: Settings, model: ServedModel | None = None, access_log=sys.stderr):
        self.settings = settings
        if model is None:
            path = settings.model or pretrained.shipped_path()
            model = ServedModel(path, settings.pooling, settings.max_input_length)
            if settings.model_name:
                model.name = settings.model_name
        self.model = model
        self.limits = Limits(settings.max_inputs, model.max_length, settings.max_body_bytes)
        if settings.max_batch_tokens < model.max_length:
            raise ValueError(
                f"max batch tokens ({settings.max_batch_tokens}) must be at least the longest "
                f"input ({model.max_length} tokens)"
            )
        self.threads = settings.threads or max(1, available_cpus() // settings.workers)
        self.access_log = access_log if settings.access_log else None
        self.in_flight = 0
        self.state, self.state_detail = "starting", "loading the compiled kernels (warm-up)"
        self.self_check = {}
        self.metrics = Metrics(
            {
                "minibert_queue_depth": ("sequences waiting for a batch", lambda: self.depth),
                "minibert_requests_in_flight": ("requests being answered", lambda: self.in_flight),
                "minibert_ready": ("1 once warm-up and self-check passed", self._ready_value),
            }
        )
        self.scheduler = Scheduler(
            model.run,
            settings.max_batch_tokens,
            on_batch=lambda b: self.metrics.observe_batch(b.size, b.padded_tokens, b.seconds),
            on_start=lambda: apply_numba_threads(self.threads),
        )
        self._tokenizer_thread = None
        self._startup_task = None
        self.routes = routes.table()

    depth = property(lambda self: self.scheduler.depth)

    def _ready_value(self) -> int:
        return int(self.state == "ready")

    # Lifespan.

    async def startup(self) -> None:
        """Start the threads, and the warm-up and self-check in the background: /health
        answers at once, /ready once they pass."""
        if self._startup_task is not None:
            return
        self._tokenizer_thread = ThreadPoolExecutor(1, thread_name_prefix="minibert-tokenize")
        self._startup_task = asyncio.ensure_future(self._warm_up())

    async def shutdown(self) -> None:
        """Take no new work, let the queued sequences finish, stop the threads."""
        if self._startup_task is not None and not self._startup_task.done():
            self._startup_task.cancel()
        await asyncio.get_running_loop().run_in_executor(None, self.scheduler.stop)
        if self._tokenizer_thread is not None:
            self._tokenizer_thread.shutdown(wait=True)

    async def wait_ready(self, timeout: float = 60.0) -> str:
        """Wait for the warm-up and self-check to end; returns the state (tests, the CLI)."""
        if self._startup_task is not None:
            await asyncio.wait_for(asyncio.shield(self._startup_task), timeout)
        return self.state

    async def _warm_up(self) -> None:
        try:
            digest = await self.in_thread(selfcheck.model_digest, self.model)
            # one sequence of each of a few lengths loads every compiled kernel; the first is
            # the check's own
            texts = [selfcheck.GOLDEN_TEXT, "warm", " ".join(["warm-up"] * 64)]
            sequences = await self.tokenize(texts, truncate=True)
            cache = self.settings.cache_dir or selfcheck.default_cache_dir()
            record, where = selfcheck.find_golden(digest, cache)
            if record is None:  # before the scheduler starts: nothing else runs the model
                record = await self.in_thread(
                    selfcheck.reference_golden, self.model, digest, sequences[0]
                )
                try:
                    where = selfcheck.store_golden(record, cache)
                except OSError as exc:  # a read-only home: check against it all the same
                    log.warning("cannot store the golden vector in %s: %s", cache, exc)
            self.scheduler.start()
            outputs, _ = await self.infer(sequences, None, deadline=None)
            problem = selfcheck.compare(record, sequences[0], outputs[0], self.model.dtype)
            self.self_check = {
                "golden": str(where) if where else None,
                "digest": digest,
                "passed": not problem,
            }
            if problem:
                self.state, self.state_detail = "failed", f"self-check failed: {problem}"
                log.error("%s (golden record: %s)", self.state_detail, where)
            else:
                self.state, self.state_detail = "ready", "warm-up and self-check passed"
                log.info(
                    "ready: %s (%s, %d dimensions)",
                    self.model.name,
                    self.model.dtype,
                    self.model.dim,
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never a silent hang in "starting"
            self.state, self.state_detail = "failed", f"warm-up failed: {exc!r}"
            log.exception("warm-up failed")

    # What handlers use.

    def require_ready(self) -> None:
        if self.state != "ready":
            raise ApiError(503, "not_ready", f"the server is not ready: {self.state_detail}")

    async def in_thread(self, fn, *args):
        """Run fn in a thread of the loop's default pool (hashing, the reference forward)."""
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def tokenize(self, texts, pairs=None, truncate=False, field="inputs", call=None):
        """Sequences of the texts, on the tokenizer thread; 422 naming the input too long."""
        start = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            sequences = await loop.run_in_executor(
                self._tokenizer_thread, lambda: self.model.tokenize(texts, pairs, truncate)
            )
        except InputTooLong as exc:
            raise ApiError(
                422,
                "input_too_long",
                f"{field}[{exc.index}] has {exc.tokens} tokens, more than the limit of "
                f"{exc.limit}: shorten it, or send truncate=true to cut it",
                f"{field}[{exc.index}]",
            ) from None
        if call is not None:
            call.timings["tokenize"] = time.monotonic() - start
            call.tokens = sum(s.length for s in sequences)
            call.inputs = len(sequences)
        return sequences

    async def tokens(self, texts, add_special_tokens):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._tokenizer_thread, lambda: self.model.tokens(texts, add_special_tokens)
        )

    async def infer(self, sequences, call: Call | None, deadline: float | None = ...):
        """Queue the sequences, wait for their outputs; (outputs, timings).

        Watches the connection meanwhile: a disconnect drops the queued sequences and raises
        ClientGone; the request's deadline gives 504.
        """
        if deadline is ...:
            deadline = call.arrived + self.settings.timeout
        far = time.monotonic() + 3600.0 if deadline is None else deadline
        try:
            jobs = self.scheduler.submit(sequences, [s.length for s in sequences], far)
        except SchedulerStopped:
            raise ApiError(503, "shutting_down", "the server is shutting down") from None
        results = asyncio.gather(
            *(asyncio.wrap_future(job.future) for job in jobs), return_exceptions=True
        )
        watch = asyncio.ensure_future(disconnected(call.receive)) if call else None
        try:
            waiting = {results} | ({watch} if watch else set())
            done, _ = await asyncio.wait(
                waiting, timeout=far - time.monotonic(), return_when=asyncio.FIRST_COMPLETED
            )
            if results not in done:
                if watch in done:
                    raise ClientGone
                raise _timeout(self.settings.timeout)
        finally:
            if not results.done():
                # drop the queued jobs now (the asyncio side would only pass the cancellation
                # on at the loop's next turn); a job already running finishes unseen
                for job in jobs:
                    job.future.cancel()
                results.cancel()
            if watch is not None:
                watch.cancel()
        outputs = results.result()
        for output in outputs:
            if isinstance(output, DeadlineExceeded):
                raise _timeout(self.settings.timeout)
            if isinstance(output, BaseException):
                raise output
        started = min(job.started for job in jobs)
        timings = {
            "queue": started - min(job.enqueued for job in jobs),
            "inference": max(job.finished for job in jobs) - started,
        }
        if call is not None:
            call.timings.update(timings)
        return outputs, timings

    # ASGI.

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        # other scopes (websocket) are not served

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope, receive, send):
        call = Call(scope, receive)
        path, method = scope.get("path", ""), scope.get("method", "GET")
        route = self.routes.get(path)
        label = path if route else "unmatched"
        counted = False
        try:
            if route is None:
                raise ApiError(404, "not_found", f"no route {path}; see /openapi.json")
            if method not in route.methods:
                allowed = ", ".join(sorted(route.methods))
                raise ApiError(405, "method_not_allowed", f"{path} takes {allowed}, not {method}")
            if route.auth and self.settings.api_key:
                self._authenticate(scope)
            if route.limited:
                if self.in_flight >= self.settings.max_concurrent_requests:
                    raise ApiError(
                        429,
                        "too_many_requests",
                        f"{self.in_flight} requests are being answered, the limit is "
                        f"{self.settings.max_concurrent_requests}: retry later",
                    )
                self.in_flight += 1
                counted = True
            if method == "POST":
                call.body = await read_body(scope, receive, self.settings.max_body_bytes)
            reply = await route.methods[method](self, call)
        except ApiError as error:
            reply = Reply.error(error)
            if error.status == 405:
                reply.headers.append(("allow", ", ".join(sorted(route.methods))))
        except ClientGone:
            reply = None
        except Exception:  # a bug: a 500 for this request, the server keeps serving
            log.exception("error answering %s %s", method, path)
            reply = Reply.error(ApiError(500, "internal_error", "internal error (see the log)"))
        finally:
            if counted:
                self.in_flight -= 1
        if reply is not None:
            reply.headers += timing_headers(call)
            await send_reply(send, reply)
        self._record(call, method, path, label, 499 if reply is None else reply.status)

    def _authenticate(self, scope) -> None:
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, given = header.partition(b" ")
        expected = self.settings.api_key.encode("utf-8")  # headers are bytes: compare bytes
        # compare_digest: the time taken does not tell how much of the key was right
        if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), expected):
            raise ApiError(
                401, "unauthorized", "a valid API key is needed: Authorization: Bearer KEY"
            )

    def _record(self, call: Call, method: str, path: str, label: str, status: int) -> None:
        total = time.monotonic() - call.arrived
        self.metrics.observe_request(label, status, total, call.tokens)
        if self.access_log is None:
            return
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
            "pid": os.getpid(),
            "method": method,
            "route": label,
            "path": path,
            "status": status,
            "inputs": call.inputs,
            "tokens": call.tokens,
            "tokenize_ms": _ms(call.timings.get("tokenize")),
            "queue_ms": _ms(call.timings.get("queue")),
            "inference_ms": _ms(call.timings.get("inference")),
            "total_ms": _ms(total),
        }
        try:
            self.access_log.write(json.dumps(entry) + "\n")
            self.access_log.flush()
        except (OSError, ValueError):  # a closed stderr must not fail a request
            pass


def _timeout(seconds: float) -> ApiError:
    return ApiError(504, "timeout", f"no answer within the request timeout of {seconds:g} s")


def _ms(seconds) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
