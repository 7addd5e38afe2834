"""Run every tutorial chapter end to end: a library change that breaks a chapter's story fails here.

Each chapter asserts its own claims against the library, so finishing without an exception is
the test. Chapters run in a fresh working directory with matplotlib's non-interactive Agg
backend; chapters that load all-MiniLM-L6-v2 are skipped only when it is not installed.
"""

import runpy
import tempfile
from pathlib import Path

import pytest

from minibert.pretrained import MINILM_INSTALL, minilm_available

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
CHAPTERS = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))


def needs_minilm(chapter: Path) -> bool:
    """A chapter needs the real MiniLM weights when it asks where they are installed."""
    source = chapter.read_text(encoding="utf-8")
    return "minilm_path" in source or "SentenceEncoder()" in source


def test_chapters_found():
    assert CHAPTERS, f"no chapters found in {TUTORIALS}"


@pytest.mark.parametrize(
    "chapter",
    [
        pytest.param(c, id=c.stem, marks=[pytest.mark.minilm] if needs_minilm(c) else [])
        for c in CHAPTERS
    ],
)
def test_chapter_runs(chapter, tmp_path, monkeypatch):
    if needs_minilm(chapter) and not minilm_available():
        pytest.skip(f"{chapter.name} needs all-MiniLM-L6-v2: {MINILM_INSTALL}")
    monkeypatch.setenv("MPLBACKEND", "Agg")  # no window, no display needed
    monkeypatch.chdir(tmp_path)  # chapters must find their files relative to themselves
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # figures land in tmp_path too
    runpy.run_path(str(chapter), run_name="__main__")
