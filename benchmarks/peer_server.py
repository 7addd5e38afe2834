"""The peer that `minibert serve` is compared with: all-MiniLM-L6-v2 on torch behind an
OpenAI-compatible POST /v1/embeddings, on 127.0.0.1, with torch on 2 threads, fully offline.

    python benchmarks/peer_server.py --engine infinity --infinity-bin VENV/bin/infinity_emb \\
        --model path/to/all-MiniLM-L6-v2 --port 8001
    python benchmarks/peer_server.py --engine sentence-transformers --model PATH --port 8001

Two engines:
  - "infinity" (preferred): Infinity (PyPI `infinity-emb[server,torch]`), a dedicated embedding
    server with dynamic batching over sentence-transformers, started with this machine's
    settings. It pins old versions of transformers, sentence-transformers and FastAPI, so it
    lives in a virtualenv of its own; --infinity-bin names its `infinity_emb` command. This
    process replaces itself with Infinity (exec), so its process id is the server's.
  - "sentence-transformers": `SentenceTransformer(PATH).encode` behind FastAPI when installed,
    else a plain ASGI app, both on uvicorn. Requests are batched the simple way: a single
    worker thread encodes whatever has queued up (at most --batch-size texts) while the next
    requests wait, so concurrent requests share forward passes as they would on Infinity.

Both answer GET /health (200 once the model is loaded) and POST /v1/embeddings with
{"input": str | [str], "model": ..., "encoding_format": "float"}; embeddings are mean-pooled
and L2-normalised, as the model's sentence-transformers configuration says. Environment set
for both: HF_HUB_OFFLINE=1, TRANSFORMERS_OFFLINE=1 (nothing is downloaded), DO_NOT_TRACK=1 and
INFINITY_ANONYMOUS_USAGE_STATS=0 (no usage statistics), OMP/MKL threads = --threads, and
INFINITY_HOME (where Infinity keeps a cache folder) a temporary folder unless already set.
"""

import argparse
import asyncio
import collections
import json
import os
import shutil
import sys
import tempfile

LOOPBACK = "127.0.0.1"
NAME = "all-MiniLM-L6-v2"
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DO_NOT_TRACK": "1",
    "INFINITY_ANONYMOUS_USAGE_STATS": "0",
    "TOKENIZERS_PARALLELISM": "false",
}


def thread_env(threads: int) -> dict:
    return {k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def default_model() -> str | None:
    try:
        from minibert.pretrained import minilm_path
    except ImportError:  # the peer may run in a virtualenv without minibert
        return None
    return str(minilm_path())


# --- Infinity -----------------------------------------------------------------------------------
def infinity_argv(binary: str, model: str, port: int, batch_size: int) -> list[str]:
    options = {
        "--model-id": model,
        "--served-model-name": NAME,
        "--engine": "torch",
        "--device": "cpu",
        "--batch-size": str(batch_size),
        "--host": LOOPBACK,
        "--port": str(port),
        "--url-prefix": "/v1",  # OpenAI's path; /health stays at the root
        "--log-level": "warning",  # no access-log line per request
    }
    return [binary, "v2", *(word for pair in options.items() for word in pair)]


# --- sentence-transformers ------------------------------------------------------------------------
class Batcher:
    """Encodes queued texts in one worker thread, up to batch_size texts per forward pass."""

    def __init__(self, model, batch_size: int):
        self.model, self.batch_size = model, batch_size
        self.pending: collections.deque = collections.deque()  # (texts, future)
        self.wake: asyncio.Event | None = None

    async def encode(self, texts: list[str]) -> list[list[float]]:
        loop = asyncio.get_running_loop()
        if self.wake is None:  # created on the server's event loop, with the worker task
            self.wake = asyncio.Event()
            self.task = loop.create_task(self._run())
        done = loop.create_future()
        self.pending.append((texts, done))
        self.wake.set()
        return await done

    async def _run(self):
        loop = asyncio.get_running_loop()
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.pending:
                jobs = [self.pending.popleft()]  # a request larger than a batch goes alone
                size = len(jobs[0][0])
                while self.pending and size + len(self.pending[0][0]) <= self.batch_size:
                    jobs.append(self.pending.popleft())
                    size += len(jobs[-1][0])
                texts = [text for job, _ in jobs for text in job]
                try:
                    vectors = await loop.run_in_executor(None, self._forward, texts)
                except Exception as exc:  # these requests fail, the server goes on
                    for _, done in jobs:
                        done.set_exception(exc)
                    continue
                start = 0
                for job, done in jobs:
                    done.set_result(vectors[start : start + len(job)])
                    start += len(job)

    def _forward(self, texts):
        out = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True)
        return out.tolist()


def parse_input(body: dict) -> list[str]:
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError("'input' must be a string or a non-empty list of strings")
    if body.get("encoding_format", "float") != "float":
        raise ValueError("only encoding_format 'float' is served")
    return texts


def answer(vectors, texts) -> dict:
    tokens = sum(len(t.split()) for t in texts)  # an estimate: the usage field is informative
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
        ],
        "model": NAME,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def plain_app(batcher: Batcher):
    """A bare ASGI app: POST /v1/embeddings and GET /health."""

    async def send_json(send, status: int, payload: dict):
        body = json.dumps(payload).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await receive()  # lifespan.startup: the model is already loaded
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            await send({"type": "lifespan.shutdown.complete"})
            return
        route = (scope["method"], scope["path"])
        if route == ("GET", "/health"):
            return await send_json(send, 200, {"status": "ok"})
        if route != ("POST", "/v1/embeddings"):
            return await send_json(send, 404, {"error": {"message": "not found"}})
        raw, more = b"", True
        while more:
            message = await receive()
            raw += message.get("body", b"")
            more = message.get("more_body", False)
        try:
            texts = parse_input(json.loads(raw))
        except (ValueError, AttributeError) as exc:
            return await send_json(send, 422, {"error": {"message": str(exc)}})
        await send_json(send, 200, answer(await batcher.encode(texts), texts))

    return app


def fastapi_app(batcher: Batcher):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    app = FastAPI()

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.post("/v1/embeddings")
    async def embeddings(request: Request):
        try:
            texts = parse_input(await request.json())
        except (ValueError, AttributeError) as exc:
            return JSONResponse({"error": {"message": str(exc)}}, status_code=422)
        return answer(await batcher.encode(texts), texts)

    return app


def serve_sentence_transformers(model: str, port: int, threads: int, batch_size: int) -> None:
    import torch
    import uvicorn
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    batcher = Batcher(SentenceTransformer(model, device="cpu"), batch_size)
    try:
        app, framework = fastapi_app(batcher), "FastAPI"
    except ImportError:
        app, framework = plain_app(batcher), "plain ASGI"
    print(f"sentence-transformers behind {framework} on {LOOPBACK}:{port}", file=sys.stderr)
    uvicorn.run(app, host=LOOPBACK, port=port, log_level="warning", access_log=False)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--engine", choices=("infinity", "sentence-transformers"), default="infinity")
    p.add_argument("--model", default=None, help="the model folder (default: minibert's MiniLM)")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--batch-size", type=int, default=32, help="most texts per forward pass")
    p.add_argument(
        "--infinity-bin",
        default=shutil.which("infinity_emb"),
        help="Infinity's infinity_emb command (default: the one on PATH)",
    )
    args = p.parse_args(argv)
    model = args.model or default_model()
    if model is None:
        p.error("--model is needed where minibert is not installed")
    os.environ.update(OFFLINE)
    # Infinity makes a cache folder under INFINITY_HOME, else in the working directory
    os.environ.setdefault("INFINITY_HOME", os.path.join(tempfile.gettempdir(), "infinity-home"))
    os.environ.update(thread_env(args.threads))
    if args.engine == "infinity":
        if not args.infinity_bin:
            p.error(
                "infinity_emb not found: pip install 'infinity-emb[server,torch]' in a "
                "virtualenv of its own and pass --infinity-bin"
            )
        argv = infinity_argv(args.infinity_bin, model, args.port, args.batch_size)
        os.execve(argv[0], argv, os.environ)  # the process becomes Infinity
    serve_sentence_transformers(model, args.port, args.threads, args.batch_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
