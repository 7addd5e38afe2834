"""Running the app: uvicorn, one process or --workers N, thread pools sized to the CPUs.

One worker: the app is built here (the model loads before the port opens, so a bad folder is
an error at once) and uvicorn serves it. N workers: uvicorn starts N processes, each of which
builds its own app from the settings passed in an environment variable (app_from_environment,
the factory uvicorn imports). The weights are memory-mapped safetensors, so the workers share
the file's pages in the page cache; what each worker adds is its own arrays built at load
(an int8 model's are mostly the mapped file itself), the interpreter and the compiled kernels.

Each process gets available_cpus() // workers threads for Numba and BLAS, at least one.
SIGTERM (or Ctrl-C): uvicorn stops accepting connections, waits for the requests in flight
(at most the request timeout, plus a second), then the app drains its queue and exits 0.
Nothing here opens a connection of its own: no telemetry, no downloads.
"""

import dataclasses
import logging
import os
import signal
import sys

from ..kernels.threads import available_cpus, limit_threads
from .app import ServeApp
from .settings import Settings

SETTINGS_ENV = "MINIBERT_SERVE_SETTINGS"


def run(settings: Settings, host: str, port: int, log_level: str = "info") -> None:
    """Serve until SIGTERM or Ctrl-C. Needs uvicorn (pip install minibert[serve])."""
    try:
        import uvicorn
    except ImportError:
        raise OSError("minibert serve needs uvicorn: pip install 'minibert[serve]'") from None
    threads = settings.threads or max(1, available_cpus() // settings.workers)
    settings = dataclasses.replace(settings, threads=threads)
    _log_to_stderr(log_level)
    options = {
        "host": host,
        "port": port,
        "lifespan": "on",
        "access_log": False,  # the app writes its own JSON access log
        "ws": "none",
        "server_header": False,
        "log_level": log_level,
        "timeout_graceful_shutdown": int(settings.timeout) + 1,
    }
    # uvicorn catches SIGTERM, shuts down gracefully, then puts back the handler it found and
    # raises the signal again, so that the process ends "killed by SIGTERM". A drained
    # shutdown is a clean exit here: the handler it finds takes note and lets run() return 0.
    signal.signal(signal.SIGTERM, _drained)
    if settings.workers == 1:
        limit_threads(threads)
        uvicorn.run(ServeApp(settings), **options)
    else:
        os.environ[SETTINGS_ENV] = settings.to_json()
        target = f"{__name__}:app_from_environment"
        uvicorn.run(target, factory=True, workers=settings.workers, **options)


def _drained(signum, frame) -> None:
    """SIGTERM once uvicorn has finished its graceful shutdown: nothing left to do."""


def app_from_environment() -> ServeApp:
    """The app of one worker process, from the settings run() left in the environment."""
    settings = Settings.from_json(os.environ[SETTINGS_ENV])
    _log_to_stderr("info")
    limit_threads(settings.threads or 1)
    return ServeApp(settings)


def _log_to_stderr(level: str) -> None:
    """minibert.serve's messages (ready, self-check, errors) on stderr, once per process."""
    logger = logging.getLogger("minibert.serve")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     minibert: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(level.upper())
        logger.propagate = False
