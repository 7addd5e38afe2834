"""A small load client for embedding servers on this machine: closed-loop concurrency levels and
fixed-rate (open-loop) runs, with latency percentiles, errors, sampled correctness checks and the
server's memory over time.

    python benchmarks/load_test.py --url http://127.0.0.1:8000 --pid 12345 --json out.json
    python benchmarks/load_test.py --url http://127.0.0.1:8000 --concurrency 1 8 --duration 5 \\
        --reference minibert:path/to/all-MiniLM-L6-v2
    python benchmarks/load_test.py --url http://127.0.0.1:8000 --rate 20 --duration 60

What it does:
  1. Texts: two workloads from a seeded generator of English-like sentences (`make_texts`):
     "short" queries of about 10 tokens and "mixed" texts of 10 to 256 tokens ([CLS] and [SEP]
     included), their lengths drawn uniformly. The same seed gives the same texts on every run
     and for every server.
  2. Closed loop: for each concurrency level N, N clients each send a request, wait for the
     answer and send the next, for --duration seconds or --requests requests in all, whichever
     comes first. Before the levels of a workload, --warmup requests go out one at a time and
     are not counted; after a failed request a client pauses 10 ms, so that a server refusing
     work is not flooded. Throughput is completed requests (and texts) over the wall time of the
     level; latency is the time from sending a request to having parsed its answer.
  3. Open loop (--rate R): a request starts every 1/R seconds whatever the server does, so a
     slow server builds a backlog instead of slowing the client down; at most --max-in-flight
     requests wait at once (more count as errors of kind "client backlog full").
  4. Correctness: the first --samples texts of each workload are watched (each level starts
     from the first text, so they are sent at every level); every answer that holds one of them
     is kept (up to 4 per text, so answers batched with different neighbours are compared), and
     after the run each is compared with a reference vector computed offline.
     The reference is pluggable (--reference): "minibert:PATH" (minibert.SentenceEncoder),
     "sentence-transformers:PATH", or "MODULE:FUNCTION" taking a list of texts and returning
     one vector per text. Cosine similarity must reach --min-cosine (0.9999 by default).
  5. Memory: with --pid, the server's resident set size (the process and its children) is
     sampled every --rss-interval seconds (psutil when installed, else /proc/PID/status).

Requests go to 127.0.0.1 only: any other host is refused before anything is sent, and the
client ignores proxy settings from the environment. The client runs on the same CPUs as the
server, so on a small machine it takes part of the time it measures (see bench_serve.py).
"""

import argparse
import asyncio
import contextlib
import datetime
import importlib
import json
import os
import platform
import random
import sys
import threading
import time
import urllib.parse
from collections import Counter
from pathlib import Path

from provenance import cpu_model

LOOPBACK = "127.0.0.1"
WORKLOADS = ("short", "mixed")
LEVELS = (1, 8, 64)
# word pieces per text, without [CLS] and [SEP]: with them, short queries have 10-14 tokens and
# mixed texts 10-256, so that none is longer than MiniLM's 256 and nothing is truncated
SHORT_TOKENS = (8, 12)
MIXED_TOKENS = (8, 254)
KEEP_PER_TEXT = 4  # answers kept per watched text
ERROR_PAUSE_S = 0.01  # a closed-loop client waits this long after a failed request


# --- 1. texts -----------------------------------------------------------------------------------
# Common English words that BERT's uncased vocabulary holds whole, so that a text's length in
# word pieces is close to its number of words plus its punctuation.
SUBJECTS = (
    "the old farmer|a young doctor|the city council|my neighbour|the small company|our teacher|"
    "the river|a tired student|the new manager|the local team|her brother|the police|"
    "the museum|a famous writer|the village|the government|his sister|the children"
).split("|")
VERBS = (
    "found|built|opened|closed|sold|bought|painted|moved|cleaned|visited|changed|followed|"
    "watched|carried|planned|wrote|read|played|answered|called|helped|started|finished|lost"
).split("|")
ADJECTIVES = (
    "old|new|small|large|quiet|busy|green|dark|bright|empty|heavy|simple|strange|famous|"
    "cold|warm|long|short|early|late|public|private|local|open"
).split("|")
NOUNS = (
    "house|bridge|garden|letter|market|school|window|road|boat|station|office|church|library|"
    "kitchen|island|forest|report|song|picture|machine|door|table|field|wall|plan|story|car"
).split("|")
PLACES = (
    "near the station|after the storm|before the meeting|in the morning|at the end of the day|"
    "during the summer|on the other side of town|without a word|for the first time|"
    "in front of the school|along the river|under the bridge|by the end of the week"
).split("|")
QUERIES = (
    "how to fix a|where is the nearest|best time to visit the|what is a good|"
    "why does my|cheap way to clean a|who built the|when does the"
).split("|")


def _sentence(rng: random.Random) -> str:
    words = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} the {rng.choice(ADJECTIVES)} "
    words += f"{rng.choice(NOUNS)} {rng.choice(PLACES)}"
    if rng.random() < 0.4:
        words += f" and {rng.choice(VERBS)} a {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}"
    return words[0].upper() + words[1:] + "."


def _query(rng: random.Random) -> str:
    return (
        f"{rng.choice(QUERIES)} {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {rng.choice(PLACES)}"
    )


def approx_tokens(text: str) -> int:
    """Word pieces of a generated text (no [CLS]/[SEP]): its words plus its punctuation."""
    return len(text.split()) + sum(text.count(p) for p in ".,?")


def _finish(words: list[str], end: str) -> str:
    return " ".join(words).rstrip(".,?") + end


def make_texts(workload: str, n: int, seed: int = 0) -> list[str]:
    """n English-like texts for a workload ("short" or "mixed"), the same for the same seed.

    "short": queries of 8-12 word pieces; "mixed": running text whose length in word pieces is
    drawn uniformly from 8 to 254 (sentences are added, then the last one is cut to length);
    a text may come out one piece shorter than drawn.
    """
    if workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {WORKLOADS}, got {workload!r}")
    rng = random.Random(f"{workload}-{seed}")
    low, high = SHORT_TOKENS if workload == "short" else MIXED_TOKENS
    texts = []
    for _ in range(n):
        target = rng.randint(low, high)
        words = (_query(rng) if workload == "short" else _sentence(rng)).split()
        end = "?" if workload == "short" else "."
        while approx_tokens(_finish(words, end)) < target:
            words += _sentence(rng).split()
        while len(words) > 1 and approx_tokens(_finish(words, end)) > target:
            words.pop()  # each word popped takes one or two pieces: target - 1 or target remain
        if words[-1].lower() in ("the", "a", "and", "of", "to"):
            words[-1] = rng.choice(NOUNS)  # one piece for one: the length stays
        texts.append(_finish(words, end))
    return texts


# --- 2. statistics ------------------------------------------------------------------------------
def percentile(values, q: float) -> float | None:
    """The q-th percentile (0 <= q <= 100) by linear interpolation between closest ranks, as
    numpy.percentile's default; None for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within [0, 100], got {q}")
    ordered = sorted(values)
    if not ordered:
        return None
    rank = q / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarise(latencies_s, errors: Counter, seconds: float, texts_per_request: int) -> dict:
    """Throughput and latency figures (milliseconds) of one run."""
    done = len(latencies_s)
    ms = [x * 1e3 for x in latencies_s]
    return {
        "requests": done,
        "texts": done * texts_per_request,
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "seconds": seconds,
        "req_per_s": done / seconds if seconds > 0 else None,
        "texts_per_s": done * texts_per_request / seconds if seconds > 0 else None,
        "latency_ms": {
            "p50": percentile(ms, 50),
            "p95": percentile(ms, 95),
            "p99": percentile(ms, 99),
            "mean": sum(ms) / done if done else None,
            "max": max(ms) if done else None,
        },
    }


def cosine(a, b) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = (sum(x * x for x in a) * sum(y * y for y in b)) ** 0.5
    return dot / norm if norm else 0.0


# --- 3. the server's address and its answers ------------------------------------------------------
def check_loopback(url: str) -> str:
    """The URL without a trailing slash, if it is http://127.0.0.1[:port]; else ValueError."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.hostname != LOOPBACK or parts.username or parts.password:
        raise ValueError(f"only http://{LOOPBACK}[:port] is allowed, got {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"give the server's base URL without a path, got {url!r}")
    return f"http://{parts.netloc}"


class Route:
    """How to ask a server for embeddings and read them back: "openai" (POST /v1/embeddings) or
    "tei" (POST /embed, text-embeddings-inference's shape)."""

    def __init__(self, shape: str = "openai", model: str = "default"):
        if shape not in ("openai", "tei"):
            raise ValueError(f"route must be 'openai' or 'tei', got {shape!r}")
        self.shape, self.model = shape, model
        self.path = "/v1/embeddings" if shape == "openai" else "/embed"

    def body(self, texts: list[str]) -> dict:
        if self.shape == "openai":
            return {"input": texts, "model": self.model, "encoding_format": "float"}
        return {"inputs": texts}

    def vectors(self, answer, count: int) -> list[list[float]]:
        """The embeddings in input order; ValueError if the answer has the wrong shape."""
        if self.shape == "openai":
            if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
                raise ValueError("no 'data' list")
            items = sorted(answer["data"], key=lambda item: item["index"])
            vectors = [item["embedding"] for item in items]
        else:
            vectors = answer
        if not isinstance(vectors, list) or len(vectors) != count:
            raise ValueError(f"expected {count} embeddings")
        if not all(isinstance(v, list) and v and isinstance(v[0], float) for v in vectors):
            raise ValueError("an embedding is not a list of floats")
        return vectors


async def _refuse_other_hosts(request) -> None:
    # a second guard: no redirect or relative URL may take a request off the loopback address
    if request.url.host != LOOPBACK:
        raise RuntimeError(f"refusing to send to {request.url.host}")


def make_client(url: str, connections: int, timeout_s: float, api_key: str | None = None):
    base_url = check_loopback(url)
    import httpx  # here, so that the statistics import without it

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.AsyncClient(
        base_url=base_url,
        headers=headers,
        timeout=timeout_s,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        trust_env=False,  # no proxies from the environment
        follow_redirects=False,
        event_hooks={"request": [_refuse_other_hosts]},
    )


class _HTTPStatus(Exception):
    pass


def _error_kind(exc: Exception) -> str:
    if isinstance(exc, _HTTPStatus):
        return str(exc)
    name = type(exc).__name__
    return "timeout" if "Timeout" in name else name


async def _send(client, route: Route, texts: list[str]):
    """(latency seconds, vectors) or raises; an HTTP error status becomes "http NNN"."""
    start = time.perf_counter()
    answer = await client.post(route.path, json=route.body(texts))
    if answer.status_code != 200:
        raise _HTTPStatus(f"http {answer.status_code}")
    vectors = route.vectors(answer.json(), len(texts))
    return time.perf_counter() - start, vectors


class Watcher:
    """Keeps the answers for the first `samples` texts, to compare with a reference. The texts
    are in random order already, and every level starts from the first text, so these are sent
    at every level, batched with other neighbours each time."""

    def __init__(self, count: int, samples: int):
        self.watched = set(range(min(samples, count)))
        self.kept: dict[int, list] = {}

    def offer(self, indices, vectors) -> None:
        for i, vector in zip(indices, vectors, strict=True):
            if i in self.watched and len(self.kept.setdefault(i, [])) < KEEP_PER_TEXT:
                self.kept[i].append(vector)


def _batch(texts, request: int, per_request: int):
    indices = [(request * per_request + j) % len(texts) for j in range(per_request)]
    return indices, [texts[i] for i in indices]


# --- 4. closed and open loops ---------------------------------------------------------------------
async def closed_loop(
    client, route, texts, concurrency, duration_s, max_requests, per_request=1, watcher=None
) -> dict:
    """`concurrency` clients, each sending its next request when the last one is answered.

    `client`: one httpx client for all, or a list, one per client: httpx's pool scans every
    connection it holds for each request, so 64 connections in one pool made this client use
    a whole core (6 ms a request) on the machine it shares with the server; one pool of one
    connection per client costs a few times less."""
    clients = client if isinstance(client, list) else [client]
    latencies, errors, examples = [], Counter(), {}
    next_request = 0
    deadline = time.perf_counter() + duration_s

    async def one_client(k):
        nonlocal next_request
        own = clients[k % len(clients)]
        while time.perf_counter() < deadline and next_request < max_requests:
            indices, batch = _batch(texts, next_request, per_request)
            next_request += 1
            try:
                seconds, vectors = await _send(own, route, batch)
            except Exception as exc:  # every failure is data: counted by kind
                errors[_error_kind(exc)] += 1
                examples.setdefault(_error_kind(exc), str(exc)[:200])
                await asyncio.sleep(ERROR_PAUSE_S)
                continue
            latencies.append(seconds)
            if watcher is not None:
                watcher.offer(indices, vectors)

    start = time.perf_counter()
    await asyncio.gather(*(one_client(k) for k in range(concurrency)))
    result = summarise(latencies, errors, time.perf_counter() - start, per_request)
    return {**result, "error_examples": examples}


async def open_loop(
    client,
    route,
    texts,
    rate,
    duration_s,
    max_in_flight=256,
    per_request=1,
    window_s=10.0,
    watcher=None,
) -> dict:
    """A request every 1/rate seconds for duration_s; a summary of the whole run plus one per
    window of window_s seconds (the "timeline")."""
    latencies, errors = [], Counter()
    windows: dict[int, tuple[list, Counter]] = {}
    examples: dict[str, str] = {}
    in_flight: set = set()
    start = time.perf_counter()

    async def one_request(request: int, window: int):
        indices, batch = _batch(texts, request, per_request)
        lat, errs = windows.setdefault(window, ([], Counter()))
        try:
            seconds, vectors = await _send(client, route, batch)
        except Exception as exc:
            kind = _error_kind(exc)
            examples.setdefault(kind, str(exc)[:200])
            errors[kind] += 1
            errs[kind] += 1
            return
        latencies.append(seconds)
        lat.append(seconds)
        if watcher is not None:
            watcher.offer(indices, vectors)

    total = int(rate * duration_s)
    for request in range(total):
        delay = start + request / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        window = int((time.perf_counter() - start) // window_s)
        if len(in_flight) >= max_in_flight:
            errors["client backlog full"] += 1
            windows.setdefault(window, ([], Counter()))[1]["client backlog full"] += 1
            continue
        task = asyncio.create_task(one_request(request, window))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    await asyncio.gather(*in_flight)
    result = summarise(latencies, errors, time.perf_counter() - start, per_request)
    result.update(rate=rate, error_examples=examples)
    result["timeline"] = [
        {"t_s": w * window_s, **summarise(lat, errs, window_s, per_request)}
        for w, (lat, errs) in sorted(windows.items())
    ]
    return result


# --- 5. memory of the server ----------------------------------------------------------------------
def rss_mib(pid: int) -> float | None:
    """Resident set size of a process and all its children, in MiB (None if it is gone)."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            parent = psutil.Process(pid)
            procs = [parent, *parent.children(recursive=True)]
            total = 0
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            return total / 2**20
        except psutil.Error:
            return None
    total, stack, found = 0, [pid], False
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        found = True
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                stack += [int(child) for child in task.read_text().split()]
            except OSError:
                pass
    return total / 2**20 if found else None


class RSSSampler:
    """Samples rss_mib(pid) every interval_s seconds in a thread: `with RSSSampler(pid) as s`."""

    def __init__(self, pid: int | None, interval_s: float = 0.5):
        self.pid, self.interval_s = pid, interval_s
        self.series: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._start = time.perf_counter()

    def __enter__(self):
        if self.pid is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            value = rss_mib(self.pid)
            if value is not None:
                self.series.append((round(time.perf_counter() - self._start, 2), round(value, 1)))
            self._stop.wait(self.interval_s)

    def __exit__(self, *exc):
        self._stop.set()
        if self.pid is not None:
            self._thread.join()

    def summary(self) -> dict | None:
        if not self.series:
            return None
        values = [v for _, v in self.series]
        return {"start": values[0], "peak": max(values), "end": values[-1], "series": self.series}


# --- 6. references --------------------------------------------------------------------------------
def load_reference(spec: str | None):
    """A function texts -> vectors from "minibert:PATH", "sentence-transformers:PATH" or
    "MODULE:FUNCTION"; None for None or "none"."""
    if spec in (None, "none"):
        return None
    kind, _, target = spec.partition(":")
    if not target:
        raise ValueError(f"reference must look like KIND:TARGET, got {spec!r}")
    if kind == "minibert":
        import minibert

        encoder = minibert.SentenceEncoder(target, pooling="mean", normalize=True)
        return lambda texts: encoder.encode(texts, batch_size=16).tolist()
    if kind == "sentence-transformers":
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(target, device="cpu")
        return lambda texts: model.encode(texts, normalize_embeddings=True).tolist()
    return getattr(importlib.import_module(kind), target)


def check_answers(watchers, reference, min_cosine: float) -> dict | None:
    """Cosines of every kept answer against the reference vector of its text, and the largest
    difference of any number in them (a served vector should not depend on what it was batched
    with: the server's tests bound it by 1e-6)."""
    if reference is None:
        return None
    cosines, largest = [], 0.0
    for texts, watcher in watchers:
        order = sorted(watcher.kept)
        expected = reference([texts[i] for i in order]) if order else []
        for i, want in zip(order, expected, strict=True):
            cosines += [cosine(got, want) for got in watcher.kept[i]]
            for got in watcher.kept[i]:
                largest = max([largest] + [abs(x - y) for x, y in zip(got, want, strict=True)])
    return {
        "answers_checked": len(cosines),
        "min_cosine": min(cosines) if cosines else None,
        "max_abs_difference": largest if cosines else None,
        "threshold": min_cosine,
        "passed": bool(cosines) and min(cosines) >= min_cosine,
    }


# --- 7. a whole run -------------------------------------------------------------------------------
def machine() -> dict:
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


async def _closed_suite(args, route) -> tuple[list, list]:
    runs, watchers = [], []
    async with contextlib.AsyncExitStack() as stack:
        cl = [  # one connection per client (see closed_loop)
            await stack.enter_async_context(make_client(args.url, 1, args.timeout, args.api_key))
            for _ in range(max(args.concurrency))
        ]
        for workload in args.workloads:
            texts = make_texts(workload, args.texts, args.seed)
            watcher = Watcher(len(texts), args.samples)
            watchers.append((texts, watcher))
            await closed_loop(cl, route, texts, 1, args.duration, args.warmup, args.per_request)
            for level in args.concurrency:
                row = await closed_loop(
                    cl, route, texts, level, args.duration, args.requests, args.per_request, watcher
                )
                row.update(workload=workload, concurrency=level, load=load_average())
                runs.append(row)
                print(_row_line(row), file=sys.stderr)
    return runs, watchers


async def _open_run(args, route) -> tuple[list, list]:
    workload = args.workloads[0]
    texts = make_texts(workload, args.texts, args.seed)
    watcher = Watcher(len(texts), args.samples)
    async with make_client(args.url, args.max_in_flight + 4, args.timeout, args.api_key) as cl:
        row = await open_loop(
            cl,
            route,
            texts,
            args.rate,
            args.duration,
            args.max_in_flight,
            args.per_request,
            args.window,
            watcher,
        )
    row.update(workload=workload, concurrency=None, load=load_average())
    return [row], [(texts, watcher)]


def run(args) -> dict:
    """Everything a command line asks for, as the JSON-ready result."""
    check_loopback(args.url)
    route = Route(args.route, args.model)
    reference = load_reference(args.reference)  # before the run, so a bad spec fails early
    loads = [load_average()]
    started = datetime.datetime.now().isoformat(timespec="seconds")
    with RSSSampler(args.pid, args.rss_interval) as sampler:
        suite = _open_run if args.rate else _closed_suite
        runs, watchers = asyncio.run(suite(args, route))
    loads.append(load_average())
    return {
        "tool": "benchmarks/load_test.py",
        "started": started,
        "machine": machine(),
        "url": check_loopback(args.url),
        "route": route.path,
        "mode": f"open loop at {args.rate:.2f} req/s" if args.rate else "closed loop",
        "texts_per_request": args.per_request,
        "load_average_1min": loads,
        "runs": runs,
        "correctness": check_answers(watchers, reference, args.min_cosine),
        "reference": args.reference,
        "rss_mib": sampler.summary(),
    }


def _row_line(row) -> str:
    lat = row["latency_ms"]
    level = row["concurrency"] if row["concurrency"] is not None else f"{row['rate']:.1f}/s"
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    return (
        f"{row['workload']:>6} {level!s:>7} {row['requests']:>7} {fmt(row['req_per_s']):>8} "
        f"{fmt(row['texts_per_s']):>8} {fmt(lat['p50']):>8} {fmt(lat['p95']):>8} "
        f"{fmt(lat['p99']):>8} {row['errors']:>6}"
    )


def table(result: dict) -> str:
    """The printed report: machine, then one line per run."""
    m = result["machine"]
    lines = [
        f"{m['cpu']}, {m['logical_cpus']} logical CPUs, {m['os']}; {result['url']}"
        f"{result['route']}, {result['mode']}",
        f"{'load':>6} {'level':>7} {'requests':>7} {'req/s':>8} {'texts/s':>8} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6}",
        *(_row_line(row) for row in result["runs"]),
    ]
    if result["correctness"]:
        c = result["correctness"]
        worst = "-" if c["min_cosine"] is None else f"{c['min_cosine']:.6f}"
        largest = c.get("max_abs_difference")
        largest = "-" if largest is None else f"{largest:.1e}"
        lines.append(
            f"correctness: {c['answers_checked']} answers, min cosine {worst} "
            f"(>= {c['threshold']}): {'pass' if c['passed'] else 'FAIL'}; "
            f"largest difference from the offline vector {largest}"
        )
    if result["rss_mib"]:
        r = result["rss_mib"]
        lines.append(f"server RSS: {r['start']:.0f} MiB at start, {r['peak']:.0f} peak")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--url", default=f"http://{LOOPBACK}:8000", help="http://127.0.0.1[:PORT]")
    p.add_argument("--route", default="openai", choices=("openai", "tei"))
    p.add_argument("--model", default="default", help="the 'model' field of OpenAI requests")
    p.add_argument("--api-key", default=None)
    p.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    p.add_argument("--concurrency", nargs="+", type=int, default=list(LEVELS))
    p.add_argument("--duration", type=float, default=10.0, help="seconds per level (default 10)")
    p.add_argument("--requests", type=int, default=100_000, help="most requests per level")
    p.add_argument("--warmup", type=int, default=8, help="uncounted requests per workload")
    p.add_argument("--rate", type=float, default=None, help="open loop: requests per second")
    p.add_argument("--max-in-flight", type=int, default=256, help="open loop backlog cap")
    p.add_argument("--window", type=float, default=10.0, help="open loop timeline window (s)")
    p.add_argument("--per-request", type=int, default=1, help="texts per request (default 1)")
    p.add_argument("--texts", type=int, default=512, help="distinct texts per workload")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=60.0, help="per-request timeout (s)")
    p.add_argument("--pid", type=int, default=None, help="server process to sample RSS of")
    p.add_argument("--rss-interval", type=float, default=0.5)
    p.add_argument(
        "--reference",
        default=None,
        help="none | minibert:PATH | sentence-transformers:PATH | MODULE:FUNCTION",
    )
    p.add_argument("--samples", type=int, default=16, help="watched texts per workload")
    p.add_argument("--min-cosine", type=float, default=0.9999)
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        check_loopback(args.url)
    except ValueError as exc:
        parser().error(str(exc))
    result = run(args)
    print(table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    failed = result["correctness"] is not None and not result["correctness"]["passed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
