"""Counters, gauges and histograms, written out in Prometheus' text format by hand.

The format (version 0.0.4) is lines of `name{label="value"} number`, each family introduced by
`# HELP` and `# TYPE`; a histogram is cumulative `_bucket{le="..."}` counts plus `_sum` and
`_count`. Requests are counted by route and status, latency and batch shapes are histograms,
queue depth and requests in flight are gauges read when /metrics is asked for.

Metrics are per process: with --workers N each worker keeps and reports its own (a scrape
through the shared port reaches one of them; the `pid` in /info tells which).

Updated from the event loop and from the worker thread, so every change takes one lock.
"""

import threading
from collections.abc import Callable

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
BATCH_TOKENS_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Histogram:
    """Observations counted into fixed buckets (upper bounds), plus their sum and count."""

    def __init__(self, buckets):
        self.buckets = tuple(float(b) for b in buckets)
        self.counts = [0] * len(self.buckets)  # per bucket, not cumulative
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
                break
        self.sum += value
        self.count += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        sep = "," if labels else ""
        out, running = [], 0
        for bound, count in zip(self.buckets, self.counts, strict=True):
            running += count
            out.append(f'{name}_bucket{{{labels}{sep}le="{_number(bound)}"}} {running}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.count}')
        braces = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{braces} {_number(self.sum)}")
        out.append(f"{name}_count{braces} {self.count}")
        return out


class Metrics:
    """The server's metrics. `gauges` are read when rendering: {name: (help, callable)}."""

    def __init__(self, gauges: dict[str, tuple[str, Callable[[], float]]] | None = None):
        self._lock = threading.Lock()
        self.requests = {}  # (route, status) -> count
        self.latency = {}  # route -> Histogram of seconds
        self.batch_size = Histogram(BATCH_SIZE_BUCKETS)
        self.batch_tokens = Histogram(BATCH_TOKENS_BUCKETS)
        self.batch_seconds = Histogram(LATENCY_BUCKETS)
        self.tokens = 0  # real (unpadded) tokens of the requests answered
        self.gauges = dict(gauges or {})

    def observe_request(self, route: str, status: int, seconds: float, tokens: int = 0) -> None:
        with self._lock:
            key = (route, status)
            self.requests[key] = self.requests.get(key, 0) + 1
            self.latency.setdefault(route, Histogram(LATENCY_BUCKETS)).observe(seconds)
            self.tokens += tokens

    def observe_batch(self, size: int, padded_tokens: int, seconds: float) -> None:
        with self._lock:
            self.batch_size.observe(size)
            self.batch_tokens.observe(padded_tokens)
            self.batch_seconds.observe(seconds)

    def render(self) -> str:
        """The Prometheus text exposition of every metric."""
        with self._lock:
            lines = _family(
                "minibert_requests_total", "counter", "HTTP requests answered, by route and status"
            )
            for (route, status), count in sorted(self.requests.items()):
                lines.append(
                    f'minibert_requests_total{{route="{_escape(route)}",status="{status}"}} {count}'
                )
            lines += _family(
                "minibert_request_duration_seconds",
                "histogram",
                "time from the request's arrival to its response, by route",
            )
            for route, histogram in sorted(self.latency.items()):
                labels = f'route="{_escape(route)}"'
                lines += histogram.lines("minibert_request_duration_seconds", labels)
            lines += _family("minibert_batch_size", "histogram", "sequences per model batch")
            lines += self.batch_size.lines("minibert_batch_size")
            lines += _family(
                "minibert_batch_tokens", "histogram", "padded tokens per batch (size x longest)"
            )
            lines += self.batch_tokens.lines("minibert_batch_tokens")
            lines += _family(
                "minibert_batch_duration_seconds", "histogram", "time of one batch's forward pass"
            )
            lines += self.batch_seconds.lines("minibert_batch_duration_seconds")
            lines += _family("minibert_tokens_total", "counter", "tokens of the inputs answered")
            lines.append(f"minibert_tokens_total {self.tokens}")
        for name, (help_text, read) in sorted(self.gauges.items()):
            lines += _family(name, "gauge", help_text)
            lines.append(f"{name} {_number(read())}")
        return "\n".join(lines) + "\n"


def _family(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def _number(value: float) -> str:
    """Integers without a decimal point, other values as Python's shortest repr."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _escape(value: str) -> str:
    """A label value: backslash, double quote and newline escaped, as the format asks."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
