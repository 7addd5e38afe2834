"""The page `minibert explain --html` writes, as a person uses it: headless Chromium, driven by
Playwright, opens the file with no server. It loads without console errors and requests nothing
but itself; the head view draws each weight of the selected head; picking another head (a
button or a thumbnail of the model view) changes the picture to that head's weights; hovering
a token leaves its row alone. Without a Chromium on the machine (`apt-get install chromium`)
the test is skipped and says so."""

import numpy as np
import pytest

import minibert
from conftest import FIXTURES, needs_chromium
from minibert.explain import explain, write_page

pytestmark = needs_chromium  # and the browser fixture: conftest.py
MODEL = FIXTURES / "pipelines" / "bert-encoder"  # 2 layers x 3 heads
MIN_WEIGHT = 0.005  # the page draws no line for a smaller weight


@pytest.fixture(scope="module")
def report_and_page(tmp_path_factory):
    model, tokenizer = minibert.load(MODEL), minibert.load_tokenizer(MODEL)
    # the text holds markup: the page must show it as text, not run it
    text = "The cat sat </script><b>on</b> the mat."
    report = explain(model, tokenizer, text, pair="It slept.", model_name="bert-encoder")
    path = write_page(report, tmp_path_factory.mktemp("explain") / "explain.html")
    return report, path


@pytest.fixture
def opened(browser, report_and_page):
    """The page freshly opened, with the console errors and every URL it requested."""
    report, path = report_and_page
    page = browser.new_page()
    errors, urls = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: urls.append(r.url))
    page.goto(path.as_uri())
    yield page, report, errors, urls, path
    page.close()


def drawn_lines(page) -> dict:
    """{(from token, to token): opacity} of the head view's visible lines."""
    lines = page.eval_on_selector_all(
        "#head-view line:not(.dim)",
        "ls => ls.map(l => [+l.dataset.from, +l.dataset.to, +l.getAttribute('stroke-opacity')])",
    )
    return {(i, j): w for i, j, w in lines}


def expected_lines(report, step, head, row=None) -> dict:
    probs = report.attentions[step][head]  # (T, T)
    return {
        (i, j): float(probs[i, j])
        for i in range(probs.shape[0])
        for j in range(probs.shape[1])
        if probs[i, j].round(4) >= MIN_WEIGHT and (row is None or i == row)
    }


def assert_lines_are(page, report, step, head, row=None):
    drawn, expected = drawn_lines(page), expected_lines(report, step, head, row)
    assert drawn.keys() == expected.keys()
    for key, weight in expected.items():
        assert drawn[key] == pytest.approx(weight, abs=5e-5), key  # 4 decimals in the page


def test_the_page_loads_offline_without_errors(opened):
    page, report, errors, urls, path = opened
    assert errors == []
    assert urls == [path.as_uri()]  # nothing else: no CDN, fonts, images
    tokens = page.locator("#head-view text[data-side='query']").all_text_contents()
    assert tokens == [t.text for t in report.tokens]
    assert "</script>" in page.text_content("#subtitle")  # shown as text
    assert page.locator("#subtitle b").count() == 0
    steps, heads = report.attentions.shape[:2]
    assert page.locator("#model-view canvas").count() == steps * heads
    assert page.text_content("#selection").startswith("layer 0, head 0: entropy ")
    assert_lines_are(page, report, 0, 0)


def test_selecting_another_head_changes_the_picture(opened):
    page, report, errors, _, _ = opened
    before_svg = page.inner_html("#head-view")
    before_shot = page.locator("#head-view").screenshot()
    page.click("#heads button >> text='2'")
    assert page.text_content("#selection").startswith("layer 0, head 2: ")
    assert page.inner_html("#head-view") != before_svg
    assert page.locator("#head-view").screenshot() != before_shot
    assert_lines_are(page, report, 0, 2)
    page.click("#layers button >> text='1'")
    assert_lines_are(page, report, 1, 2)
    selection = page.text_content("#selection")
    assert selection.startswith("layer 1, head 2: entropy ")
    shown = float(selection.split()[5])  # 3 decimals of the 4 the page holds
    assert shown == pytest.approx(report.steps[1].entropy[2], abs=0.0006)
    assert errors == []


def test_a_thumbnail_opens_its_head_and_shows_its_map(opened):
    page, report, errors, _, _ = opened
    page.click("#model-view canvas[data-step='1'][data-head='1']")
    assert page.text_content("#selection").startswith("layer 1, head 1: ")
    assert_lines_are(page, report, 1, 1)
    selected = page.eval_on_selector_all(
        "#model-view canvas.selected", "cs => cs.map(c => [+c.dataset.step, +c.dataset.head])"
    )
    assert selected == [[1, 1]]
    # each thumbnail is its head's map: pixel (i, j) is white for weight 0, blue for weight 1
    T = len(report.tokens)
    for step, head in ((0, 0), (1, 1)):
        pixels = page.eval_on_selector(
            f"#model-view canvas[data-step='{step}'][data-head='{head}']",
            """(c, T) => { const d = c.getContext('2d').getImageData(0, 0, T, T).data;
                const shades = [];
                for (let k = 0; k < T * T; k++) shades.push(d[4 * k]);
                return shades; }""",
            T,
        )
        probs = report.attentions[step][head].round(4)
        expected = np.round(255 * (1 - np.minimum(1, probs))).ravel()
        np.testing.assert_allclose(pixels, expected, atol=1)
    assert errors == []


def test_hovering_a_token_leaves_its_row_alone(opened):
    page, report, errors, _, _ = opened
    page.hover("#head-view text[data-side='query'][data-index='3']")
    assert_lines_are(page, report, 0, 0, row=3)
    assert page.locator("#head-view text.active").all_text_contents() == [report.tokens[3].text]
    page.mouse.move(0, 0)
    assert_lines_are(page, report, 0, 0)
    assert errors == []
