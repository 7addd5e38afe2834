"""The batching scheduler: sequences from many requests, run together in one thread.

It knows nothing of HTTP. A caller submits jobs (one per sequence, each with its length in
tokens and a deadline) and gets a concurrent.futures.Future per job. One worker thread takes
jobs from the queue in batches and calls `run_batch` on each; the event loop that serves
requests never runs the model, so it keeps answering /health, /metrics and new requests while
a batch runs.

How a batch is chosen. Padding costs what real tokens cost, so a batch is budgeted in padded
tokens, its size times its longest sequence (max_batch_tokens). The oldest waiting job picks
the batch, so no job waits behind a stream of others forever; the other jobs join it in order
of how close their length is to its length, as long as the padded size stays within the
budget and padding stays at most `max_padding` of it (half, by default): with a deep queue of
mixed lengths, one batch of everything that fits the budget holds more padding (58% of
tutorial 12's 48 texts in one batch of 43, against 46% in two batches with the cap), while a
second batch costs one more pass through the model's Python, about a millisecond. A single
job longer than the budget still runs, alone.

Dropped work. A job whose future was cancelled (its client went away, or the request gave up
waiting) is never run; a job still queued when its deadline passes fails with
DeadlineExceeded instead of running for nobody. A job already running finishes.
"""

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any


class DeadlineExceeded(Exception):
    """A job's deadline passed while it waited in the queue."""


class SchedulerStopped(Exception):
    """A job was submitted after stop() was called."""


@dataclass
class Job:
    """One sequence waiting for (or done with) the model.

    `started` and `finished` (time.monotonic) are those of the batch it ran in, filled in by
    the worker thread before the future is resolved.
    """

    payload: Any  # what run_batch receives: for the server, a tokenized sequence
    tokens: int  # its length, for the batch budget
    deadline: float  # time.monotonic() after which it is not started any more
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None


@dataclass
class BatchRecord:
    """What the scheduler tells its observer about each batch it ran."""

    size: int  # sequences
    padded_tokens: int  # size x longest
    seconds: float  # time in run_batch


class Scheduler:
    """A queue of jobs and the one thread that runs them in token-budgeted batches.

    Args:
        run_batch: payloads -> one result per payload, in order; runs on the worker thread.
        max_batch_tokens: the budget of a batch in padded tokens (size x longest).
        max_padding: the largest share of a batch's padded tokens that may be padding, for the
            jobs that join the oldest one (the oldest runs whatever its batch holds).
        on_batch: called (on the worker thread) with a BatchRecord after each batch.
        on_start: called once on the worker thread before it takes any job (thread settings).
    """

    def __init__(
        self,
        run_batch: Callable[[list], list],
        max_batch_tokens: int,
        on_batch: Callable[[BatchRecord], None] | None = None,
        on_start: Callable[[], None] | None = None,
        max_padding: float = 0.5,
    ):
        if max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be >= 1, got {max_batch_tokens}")
        if not 0 <= max_padding < 1:
            raise ValueError(f"max_padding must be in [0, 1), got {max_padding}")
        self.max_padding = max_padding
        self.run_batch = run_batch
        self.max_batch_tokens = max_batch_tokens
        self.on_batch = on_batch
        self.on_start = on_start
        self.dropped = {"cancelled": 0, "deadline": 0}  # jobs never run, by reason
        self._queue: list[Job] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # The caller's side: any thread.

    def start(self) -> None:
        """Start the worker thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="minibert-infer", daemon=True)
            self._thread.start()

    def submit(self, payloads: list, lengths: list[int], deadline: float) -> list[Job]:
        """Queue one job per payload; their futures resolve to run_batch's results."""
        jobs = [Job(p, int(n), deadline) for p, n in zip(payloads, lengths, strict=True)]
        with self._cond:
            if self._stopping:
                raise SchedulerStopped("the scheduler is stopping and takes no new work")
            self._queue.extend(jobs)
            self._cond.notify()
        return jobs

    @property
    def depth(self) -> int:
        """Jobs waiting in the queue (not the batch that is running)."""
        return len(self._queue)

    def stop(self, timeout: float | None = None) -> None:
        """Take no new jobs, finish the queued ones (drain), then end the worker thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    # The worker thread.

    def _work(self) -> None:
        if self.on_start is not None:
            try:
                self.on_start()
            except Exception:  # thread settings are an optimisation: serve without them
                logging.getLogger("minibert.serve").exception("worker thread set-up failed")
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:  # stopping, and nothing left to drain
                    return
                batch = self._take_batch(time.monotonic())
            if batch:
                self._run(batch)

    def _take_batch(self, now: float) -> list[Job]:
        """Remove and return the next batch (called with the lock held). Cancelled jobs leave
        the queue here; expired ones leave with DeadlineExceeded."""
        live = []
        for job in self._queue:
            if job.future.cancelled():
                self.dropped["cancelled"] += 1
            elif job.deadline < now:
                self.dropped["deadline"] += 1
                if job.future.set_running_or_notify_cancel():
                    job.future.set_exception(DeadlineExceeded("deadline passed in the queue"))
            else:
                live.append(job)
        if not live:
            self._queue = []
            return []
        anchor = live[0]  # the oldest: the queue is in arrival order
        by_closeness = sorted(live[1:], key=lambda job: abs(job.tokens - anchor.tokens))
        batch, longest, real = [anchor], anchor.tokens, anchor.tokens
        for job in by_closeness:
            wider = max(longest, job.tokens)
            padded = (len(batch) + 1) * wider
            if padded <= self.max_batch_tokens and padded - real - job.tokens <= (
                self.max_padding * padded
            ):
                batch.append(job)
                longest, real = wider, real + job.tokens
        chosen = {id(job) for job in batch}
        self._queue = [job for job in live if id(job) not in chosen]
        # a future cancelled since the scan above is dropped now: after this call, cancel()
        # can no longer succeed, so what runs is exactly what some request still waits for
        running = [job for job in batch if job.future.set_running_or_notify_cancel()]
        self.dropped["cancelled"] += len(batch) - len(running)
        return running

    def _run(self, batch: list[Job]) -> None:
        batch.sort(key=lambda job: job.tokens)  # shortest first: the order run_batch sees
        started = time.monotonic()
        try:
            results = self.run_batch([job.payload for job in batch])
            error = None
        except Exception as exc:  # a failure belongs to the requests of this batch only
            results, error = None, exc
        finished = time.monotonic()
        for i, job in enumerate(batch):
            job.started, job.finished = started, finished
            if error is None:
                job.future.set_result(results[i])
            else:
                job.future.set_exception(error)
        if self.on_batch is not None:
            longest = max(job.tokens for job in batch)
            self.on_batch(BatchRecord(len(batch), len(batch) * longest, finished - started))
