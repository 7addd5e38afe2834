"""The explain report's attention views as one self-contained HTML file.

    write_page(report, "explain.html")

page.html (beside this file) holds the page: its style, its script and a placeholder for the
data, which this module fills with the report's tokens and every head's attention weights as
JSON. Nothing is loaded from anywhere: no fonts, scripts or images, so the file works offline
and can be mailed around. The views follow bertviz's: a head view (lines from each token to
the tokens it attends to, for the layer and head picked) and a model view (a small attention
map per head, layers x heads).
"""

import json
from pathlib import Path

from ..errors import InputError

TEMPLATE = Path(__file__).with_name("page.html")
PLACEHOLDER = "__MINIBERT_EXPLAIN_DATA__"
DECIMALS = 4  # attention weights in the page, enough for a line's shade and a tooltip


def page_data(report) -> dict:
    """What the page's script reads: texts, token strings and per step x head the weights."""
    attentions = report.attentions.round(DECIMALS).tolist()  # (S, H, T, T)
    return {
        "model": report.model_name or report.architecture,
        "text": report.text,
        "pair": report.pair,
        "tokens": [t.text for t in report.tokens],
        "special_names": list(report.special_names),
        "attentions": attentions,
        "entropy": [s.entropy.round(DECIMALS).tolist() for s in report.steps],
        "cls_share": [s.cls_share.round(DECIMALS).tolist() for s in report.steps],
        "sep_share": [s.sep_share.round(DECIMALS).tolist() for s in report.steps],
    }


def render_page(report) -> str:
    """The page as a string: page.html with the report's data in its JSON block."""
    text = json.dumps(page_data(report), ensure_ascii=True, separators=(",", ":"))
    # inside <script>, "</script>" or "<!--" in a token would end the block: escape every "<"
    text = text.replace("<", "\\u003c")
    return TEMPLATE.read_text(encoding="utf-8").replace(PLACEHOLDER, text)


def write_page(report, path) -> Path:
    """Write the page to `path` (replacing it); returns the path."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder: give the HTML file to write")
    if not path.parent.is_dir():
        raise InputError(f"cannot write {path}: the folder {path.parent} does not exist")
    path.write_text(render_page(report), encoding="utf-8")
    return path
