"""A corpus file -> one file of vectors: shard by shard, on worker processes, resumable.

`encode_file` reads the corpus as a stream (corpus.py) and hands each shard to a worker
process, which loads the model once (process.py), embeds the shard and writes its part file
(parts.py); the parent notes each finished shard in the manifest, and at the end assembles the
output from the parts, in input order. This is what `minibert encode --input FILE --output
FILE.parquet --workers N` runs.

Workers are started with the "spawn" method, which works alike on Linux, macOS and Windows and
never forks a parent holding threads or a loaded model: each worker imports minibert afresh
and loads the model on its first shard (0.3-1 s for a small model). With one worker the shards
run in this process, and nothing is started.

At most two shards per worker are in flight, so memory holds a few shards of text, never the
corpus; the shards run out of order but land in order, since each has its own part file.
"""

import itertools
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from ..kernels.threads import limit_threads, threads_per_worker
from .corpus import SHARD_SIZE, Corpus
from .parts import PartFiles, output_kind, write_vectors
from .process import EncoderOptions, encode_texts

SHARDS_IN_FLIGHT_PER_WORKER = 2  # one running, one queued, so a worker never waits for work


@dataclass(frozen=True)
class BulkResult:
    """What a run did: the output's shape, and how many shards it encoded or found finished."""

    output: Path
    rows: int
    dim: int
    shards: int
    encoded: int  # shards this run encoded
    reused: int  # shards an earlier run had finished
    encoded_rows: int  # texts this run encoded
    seconds: float  # from the first shard to the assembled output

    @property
    def texts_per_second(self) -> float:
        return self.encoded_rows / self.seconds if self.seconds > 0 else 0.0


def run_settings(corpus: Corpus, options: EncoderOptions, shard_size: int, output) -> dict:
    """What the vectors of a run depend on; a resumed run must match them. The kernels and the
    batch size change the vectors only by rounding (~1e-6), so they may differ."""
    return {
        "corpus": corpus.fingerprint(),
        "model": str(Path(options.model).resolve()),
        "pooling": options.pooling,
        "normalize": options.normalize,
        "max_length": options.max_length,
        "shard_size": shard_size,
        "output": output_kind(output),
    }


def encode_file(
    corpus: Corpus,
    output,
    options: EncoderOptions,
    workers: int = 1,
    shard_size: int = SHARD_SIZE,
    restart: bool = False,
    keep_parts: bool = False,
    progress: bool = False,
) -> BulkResult:
    """Embed every text of `corpus` into `output` (.parquet: columns id and embedding; .npy:
    the (N, C) float32 array), in input order.

    Shards finished by an earlier run with the same settings are reused; other settings are
    refused unless `restart`. The part files are deleted once the output is written, unless
    `keep_parts`. `workers` processes share the machine's cores, max(1, cpus // workers)
    threads each; `progress` shows a bar on stderr counting texts.
    """
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    shards = corpus.shards(shard_size)
    first = next(shards)  # an empty corpus stops here, before any folder is made
    settings = run_settings(corpus, options, shard_size, output)
    parts = PartFiles(output, settings, restart=restart)
    started = time.perf_counter()
    bar = tqdm(desc="encode", unit="text", file=sys.stderr, disable=not progress)
    pool = _start_pool(workers)
    pending, count, encoded, reused, encoded_rows = {}, 0, 0, 0, 0

    def collect() -> None:
        """Wait for a shard in flight to finish, and note it (and any others done by then)."""
        nonlocal encoded, encoded_rows
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            index = pending.pop(future)
            rows = future.result()  # a worker's error is raised here
            parts.record(index, rows)
            encoded, encoded_rows = encoded + 1, encoded_rows + rows
            bar.update(rows)

    try:
        for shard in itertools.chain([first], shards):
            count += 1
            if parts.shards.get(shard.index) == len(shard.texts):
                reused += 1
                bar.update(len(shard.texts))
                continue
            while len(pending) >= SHARDS_IN_FLIGHT_PER_WORKER * workers:
                collect()
            job = (options, parts.path(shard.index), shard.ids, shard.texts, settings)
            pending[pool.submit(_encode_shard, *job)] = shard.index
        while pending:
            collect()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        if not parts.shards:  # nothing worth resuming (a wrong model path, say): leave no folder
            parts.remove()
        raise
    finally:
        bar.close()
    pool.shutdown()
    rows, dim = parts.assemble(count)
    if not keep_parts:
        parts.remove()
    seconds = time.perf_counter() - started
    return BulkResult(Path(output), rows, dim, count, encoded, reused, encoded_rows, seconds)


def _encode_shard(options: EncoderOptions, part: Path, ids, texts, settings: dict) -> int:
    """In a worker: embed one shard and write its part file; returns its rows."""
    vectors = encode_texts(options, texts)  # (rows, C)
    write_vectors(part, ids, vectors, metadata=settings)
    return len(texts)


def _start_pool(workers: int):
    """`workers` spawned processes with their share of the cores, or this process for one."""
    if workers == 1:
        return _InProcess()
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=get_context("spawn"),
        initializer=limit_threads,
        initargs=(threads_per_worker(workers),),
    )


class _InProcess:
    """The executor interface, running each job in this process as it is submitted."""

    def submit(self, fn, *args) -> Future:
        future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass
