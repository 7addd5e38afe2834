"""The page at / as a person uses it: headless Chromium, driven by Playwright, against the real
`minibert serve` on 127.0.0.1. Type sentences, press Compare, read the similarity table; the
numbers are those of the vectors encoded offline. Without a Chromium on the machine
(`apt-get install chromium`) the test is skipped and says so."""

import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from conftest import needs_chromium
from minibert import pretrained
from minibert.sentence import SentenceEncoder

pytestmark = needs_chromium  # and the browser fixture: conftest.py
TEXTS = ["The chef chopped onions.", "She cooked a stew.", "The striker scored a goal."]
KEY = "page-k3y"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cache = tmp_path_factory.mktemp("serve-cache")
    command = [sys.executable, "-m", "minibert.cli", "serve", "--port", str(port)]
    command += ["--api-key", KEY, "--cache-dir", str(cache), "--threads", "1"]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 60
        with httpx.Client(trust_env=False, timeout=5) as http:
            while True:
                assert process.poll() is None, "minibert serve exited"
                try:
                    if http.get(f"{base}/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < end, "the server did not become ready"
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(30)


def _open(browser, base):
    """A fresh page at /, recording console errors and every URL it requests."""
    page = browser.new_page()
    errors, urls = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: urls.append(r.url))
    page.goto(f"{base}/")
    return page, errors, urls


def test_the_page_shows_the_similarity_of_typed_sentences(server, browser):
    page, errors, urls = _open(browser, server)
    page.fill("#texts", "\n".join(TEXTS))
    page.fill("#key", KEY)
    page.click("#go")
    page.wait_for_selector("#result table td.score", timeout=30_000)
    cells = page.locator("#result td.score").all_text_contents()
    shown = np.array([float(c) for c in cells]).reshape(len(TEXTS), len(TEXTS))

    vectors = SentenceEncoder(pretrained.shipped_path()).encode(TEXTS)  # (3, C), unit length
    expected = vectors @ vectors.T
    np.testing.assert_allclose(shown, expected, atol=0.0005 + 1e-6)  # shown to 3 decimals
    assert shown[0, 1] > shown[0, 2]  # cooking is closer to cooking than to football
    headers = page.locator("#result th.text").all_text_contents()
    assert headers == [f"[{i + 1}] {t}" for i, t in enumerate(TEXTS)]
    assert "3 sentences" in page.text_content("#status")
    assert errors == []
    # nothing outside the server: no CDN, no fonts, no telemetry
    assert urls
    assert all(url.startswith(server) for url in urls), urls
    page.close()


def test_the_page_reports_a_wrong_key_and_an_empty_input(server, browser):
    page, _, _ = _open(browser, server)
    page.fill("#texts", "one sentence")
    page.fill("#key", "wrong")
    page.click("#go")
    page.wait_for_selector("#status.error", timeout=30_000)
    assert page.text_content("#status").startswith("Error: ")
    assert page.locator("#result table").count() == 0

    page.fill("#texts", "  \n ")
    page.click("#go")
    assert page.text_content("#status") == "Type at least one sentence."
    page.close()
