"""What the `minibert serve` tests share (this file holds no tests): small model folders with a
tokenizer, and an in-process server driven through httpx's ASGI transport.

The folders copy the tiny fixtures (vocabulary 99, 20 positions) and train a WordPiece
tokenizer on WORDS: a base model (embeddings), its int8 copy, a three-label classifier with
named labels, and a one-label cross-encoder (reranker). InProcessServer runs the app's
lifespan and requests on an event loop in a background thread (anyio's blocking portal), so
plain synchronous tests can call it, and concurrent requests can be started and awaited.
"""

import functools
import io
import json
import shutil
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from anyio.from_thread import start_blocking_portal

import minibert
from conftest import case_dir
from minibert.serve.app import ServeApp
from minibert.serve.settings import Settings
from minibert.tokenizer import train_wordpiece

WORDS = (
    "the cat sat on a mat while dogs ran over green hills and birds sang in tall trees "
    "near cold rivers"
).split()
LABELS = ["negative", "neutral", "positive"]


def sentences(n: int, seed: int = 0, low: int = 2, high: int = 9) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, rng.integers(low, high))) + "." for _ in range(n)]


def add_tokenizer(folder: Path) -> Path:
    """Train a WordPiece tokenizer on WORDS into folder (its ids fit a vocabulary of 99)."""
    tok = train_wordpiece(sentences(200, seed=1), 99, folder)
    assert tok.vocab_size <= 99
    return folder


def copy_case(case: str, folder: Path) -> Path:
    shutil.copytree(case_dir(case), folder)
    for name in ("reference.npz", "training.npz"):
        (folder / name).unlink(missing_ok=True)
    return add_tokenizer(folder)


def build_models(root: Path) -> dict:
    """{"base", "int8", "classifier", "reranker"}: model folders with tokenizers under root."""
    folders = {"base": copy_case("bert-base", root / "base")}
    minibert.quantize(minibert.load(folders["base"])).save_pretrained(root / "int8")
    folders["int8"] = add_tokenizer(root / "int8")

    folders["classifier"] = copy_case("bert-seqcls", root / "classifier")
    config_file = folders["classifier"] / "config.json"
    config = json.loads(config_file.read_text())
    config["id2label"] = {str(i): name for i, name in enumerate(LABELS)}
    config["label2id"] = {name: i for i, name in enumerate(LABELS)}
    config_file.write_text(json.dumps(config))

    reranker = minibert.load(
        folders["base"], architecture="BertForSequenceClassification", num_labels=1, seed=3
    )
    reranker.save_pretrained(root / "reranker")
    folders["reranker"] = add_tokenizer(root / "reranker")
    return folders


class InProcessServer:
    """A ServeApp on a background event loop, with synchronous request helpers.

    `log` collects the JSON access-log lines. Settings default to a cache in `cache_dir`
    (never the user's), the rest as given.
    """

    def __init__(self, folder, cache_dir, wait: bool = True, **settings):
        self.log = io.StringIO()
        options = {"model": str(folder), "cache_dir": str(cache_dir), "threads": 1} | settings
        self.app = ServeApp(Settings(**options), access_log=self.log)
        self._portal_context = start_blocking_portal()
        self.portal = self._portal_context.__enter__()
        transport = httpx.ASGITransport(app=self.app)
        self.client = self.portal.call(
            functools.partial(httpx.AsyncClient, transport=transport, base_url="http://serve.test")
        )
        self.portal.call(self.app.startup)
        if wait:
            self.portal.call(self.app.wait_ready)

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        return self.portal.call(functools.partial(self.client.request, method, path, **kwargs))

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def start_post(self, path: str, **kwargs):
        """Send a POST without waiting: a concurrent.futures.Future of its response."""
        return self.portal.start_task_soon(
            functools.partial(self.client.request, "POST", path, **kwargs)
        )

    def log_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.log.getvalue().splitlines()]

    def close(self) -> None:
        self.portal.call(self.client.aclose)
        self.portal.call(self.app.shutdown)
        self._portal_context.__exit__(None, None, None)


class Gate:
    """Holds the scheduler's worker inside run_batch until opened, and records what ran: a
    way to have requests wait in the queue without relying on timing."""

    def __init__(self, app: ServeApp):
        self.app = app
        self.opened = threading.Event()
        self.entered = threading.Event()
        self.batches = []  # the sequences of each batch that ran
        self._run = app.scheduler.run_batch
        app.scheduler.run_batch = self._gated

    def _gated(self, sequences):
        self.entered.set()
        self.opened.wait(30)
        self.batches.append([s.input_ids.tolist() for s in sequences])
        return self._run(sequences)

    def open(self) -> None:
        self.opened.set()

    def restore(self) -> None:
        self.opened.set()
        self.app.scheduler.run_batch = self._run


def wait_until(condition, timeout: float = 20.0) -> None:
    """Poll until condition() is true (a bounded wait, not a timing assertion)."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)
