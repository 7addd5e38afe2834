"""`minibert serve [MODEL]`: sentence vectors, classification and reranking over HTTP.

The server itself is minibert.serve (an ASGI app run by uvicorn); this module turns the
command line into its Settings. It imports minibert.serve only when the command runs, so
`minibert --help` stays quick and works without uvicorn installed.
"""

import argparse
from pathlib import Path

from .common import add_pooling_argument, positive_int


def register(command) -> None:
    from ..serve import settings as defaults  # constants only: no model, no uvicorn

    sub = command(
        "serve",
        cmd_serve,
        "Serve a model over HTTP (OpenAI embeddings API, TEI routes).",
        """
        Routes: POST /v1/embeddings (OpenAI's API: the official client works with
        base_url=http://HOST:PORT/v1), POST /embed, /predict, /rerank and /tokenize (Hugging
        Face TEI's), GET /info, /health, /ready, /metrics (Prometheus), /openapi.json, and a
        page at / that shows the similarity of sentences you type.

        Requests are tokenized, queued and run in batches of up to --max-batch-tokens padded
        tokens, in one inference thread per worker process. /ready answers 200 once the
        warm-up is done and the model has reproduced a stored golden vector (kept in
        --cache-dir, keyed by a hash of the model's files). One JSON line per request on
        stderr. SIGTERM finishes the requests in flight, then exits.

        Without MODEL the model bundled with minibert (minilm-l6-int4) is served; any folder
        minibert loads works (float32, int8 or group-wise int4), with its tokenizer beside the
        weights.
        """,
        'minibert serve --port 8000 --api-key "$KEY"',
    )
    sub.add_argument(
        "model",
        nargs="?",
        metavar="MODEL",
        help="model folder with a tokenizer (default: the bundled minilm-l6-int4)",
    )
    sub.add_argument(
        "--host", default=defaults.DEFAULT_HOST, help="address to listen on (default: %(default)s)"
    )
    sub.add_argument(
        "--port", type=int, default=defaults.DEFAULT_PORT, help="port (default: %(default)s)"
    )
    sub.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="server processes; they share the memory-mapped weights (default: %(default)s)",
    )
    sub.add_argument(
        "--api-key",
        metavar="KEY",
        help="require `Authorization: Bearer KEY` on every route but the probes (/health, "
        "/ready) and the static page / (default: none; MINIBERT_API_KEY also sets it)",
    )
    sub.add_argument(
        "--model-name",
        metavar="NAME",
        help="model id in responses and /info (default: the folder's name)",
    )
    add_pooling_argument(sub)
    sub.add_argument(
        "--max-batch-tokens",
        type=positive_int,
        default=defaults.DEFAULT_MAX_BATCH_TOKENS,
        metavar="N",
        help="padded tokens per batch, batch size x longest input (default: %(default)s)",
    )
    sub.add_argument(
        "--max-concurrent-requests",
        type=positive_int,
        default=defaults.DEFAULT_MAX_CONCURRENT,
        metavar="N",
        help="requests answered at once per worker; more get 429 (default: %(default)s)",
    )
    sub.add_argument(
        "--max-inputs",
        type=positive_int,
        default=defaults.DEFAULT_MAX_INPUTS,
        metavar="N",
        help="texts per request (default: %(default)s)",
    )
    sub.add_argument(
        "--max-input-length",
        type=positive_int,
        metavar="TOKENS",
        help="tokens per text; longer ones get 422 unless the request says truncate=true "
        "(default: the model's limit, 256 for the bundled model)",
    )
    sub.add_argument(
        "--max-body-bytes",
        type=positive_int,
        default=defaults.DEFAULT_MAX_BODY_BYTES,
        metavar="N",
        help="largest request body; larger ones get 413 (default: %(default)s)",
    )
    sub.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=defaults.DEFAULT_TIMEOUT,
        metavar="S",
        help="seconds from a request's arrival to its answer, else 504 (default: %(default)s)",
    )
    sub.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="Numba and BLAS threads per worker (default: the CPUs the container's quota "
        "and affinity allow, divided among the workers)",
    )
    sub.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="where golden vectors are kept (default: $XDG_CACHE_HOME/minibert/serve, "
        "else ~/.cache/minibert/serve)",
    )
    sub.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        help="no JSON line per request on stderr (default: one line per request)",
    )
    sub.add_argument(
        "--log-level",
        choices=("critical", "error", "warning", "info", "debug"),
        default="info",
        help="server log level (default: %(default)s)",
    )


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def cmd_serve(args) -> int:
    import os

    from ..serve.server import run
    from ..serve.settings import Settings

    if args.model is not None and not Path(args.model).is_dir():
        raise ValueError(f"model folder {args.model} does not exist")
    settings = Settings(
        model=args.model,
        model_name=args.model_name,
        pooling=args.pooling,
        api_key=args.api_key or os.environ.get("MINIBERT_API_KEY") or None,
        max_batch_tokens=args.max_batch_tokens,
        max_concurrent_requests=args.max_concurrent_requests,
        max_inputs=args.max_inputs,
        max_input_length=args.max_input_length,
        max_body_bytes=args.max_body_bytes,
        timeout=args.timeout,
        cache_dir=args.cache_dir,
        threads=args.threads,
        workers=args.workers,
        access_log=args.access_log,
    )
    if settings.workers > 1:  # each worker loads the model; check the folder here first
        _check_model(settings)
    run(settings, args.host, args.port, args.log_level)
    return 0


def _check_model(settings) -> None:
    """Fail with one line before starting N workers that would each fail the same way."""
    from .. import pretrained
    from ..io import read_config
    from ..tokenizer import load_tokenizer

    folder = Path(settings.model) if settings.model else pretrained.shipped_path()
    read_config(folder)
    load_tokenizer(folder)
