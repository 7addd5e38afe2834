"""What `minibert serve` is told: the model, the limits and the server's own options.

One frozen dataclass, so that it can travel as JSON to worker processes (--workers N starts
each worker afresh, and the worker rebuilds its app from these settings). The defaults here
are the ones `minibert serve --help` shows.
"""

import dataclasses
import json
from dataclasses import dataclass

DEFAULT_HOST = "127.0.0.1"  # loopback: exposing the server is a choice, not a default
DEFAULT_PORT = 8000
DEFAULT_MAX_BATCH_TOKENS = 4096  # padded tokens per forward pass: ~0.1-0.5 s of CPU for MiniLM
# requests in progress per worker before 429, as text-embeddings-inference's default: the
# deadline (--timeout) bounds their wait; at 64, a 10-minute soak at 80% of the server's best
# rate had 17 refusals in its first 10 s, when the queue briefly held more than 64
DEFAULT_MAX_CONCURRENT = 512
DEFAULT_MAX_INPUTS = 256
DEFAULT_MAX_BODY_BYTES = 2_000_000
DEFAULT_TIMEOUT = 30.0  # seconds from a request's arrival to its answer


@dataclass(frozen=True)
class Settings:
    """The options of one server (every worker process shares them)."""

    model: str | None = None  # a model folder; None: the model bundled with minibert
    model_name: str | None = None  # the id in responses and /info; default the folder's name
    pooling: str | None = None  # None: as the folder's modules.json says (mean without one)
    api_key: str | None = None
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS
    max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT
    max_inputs: int = DEFAULT_MAX_INPUTS
    max_input_length: int | None = None  # tokens; None: the model's own limit
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    timeout: float = DEFAULT_TIMEOUT
    cache_dir: str | None = None  # golden vectors (selfcheck.py); None: the user cache
    threads: int | None = None  # Numba and BLAS threads; None: available_cpus() / workers
    workers: int = 1
    access_log: bool = True

    def __post_init__(self):
        positive = (
            "max_batch_tokens",
            "max_concurrent_requests",
            "max_inputs",
            "max_body_bytes",
            "workers",
        )
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {self.timeout!r}")
        if self.api_key is not None and not self.api_key:
            raise ValueError("the API key must not be empty")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Settings":
        return cls(**json.loads(text))
