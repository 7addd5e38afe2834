"""The docs: every page in the nav exists, every tutorial chapter renders into a page, relative
links lead somewhere, and the generated tables match the code. Fast and offline: it runs the
mkdocs hooks' plain functions, not mkdocs itself (`make test` builds the site as well)."""

import importlib.util
import re
import sys
import unicodedata
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import needs_minilm

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MKDOCS_YML = ROOT / "mkdocs.yml"
CHAPTERS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))
PAGES = sorted(DOCS.glob("*.md"))
LINK = re.compile(r"!?\[(?P<text>[^\]\n]*)\]\((?P<target>[^)\s]+)\)")
CODE_SPAN = re.compile(r"(`+).*?\1")


def load_hook(name: str):
    """A hook module from docs/hooks/, imported by path as mkdocs does."""
    spec = importlib.util.spec_from_file_location(
        f"docs_hooks_{name}", DOCS / "hooks" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


chapters_hook = load_hook("chapters")


def nav_pages() -> list[str]:
    """The .md files the nav of mkdocs.yml names (the chapter pages are added by the hook)."""
    text = MKDOCS_YML.read_text(encoding="utf-8")
    nav = re.search(r"^nav:\n(?P<body>(?:[ #-].*\n|\n)*)", text, re.MULTILINE)
    assert nav, "mkdocs.yml has no nav"
    return re.findall(r"^\s*-\s*[^:#\n]+:\s*(\S+\.md)\s*$", nav.group("body"), re.MULTILINE)


def prose_lines(markdown: str):
    """(line number, line) outside fenced code blocks, with `code spans` blanked out."""
    in_fence = False
    for number, line in enumerate(markdown.splitlines(), 1):
        if re.match(r"^\s*(```|~~~)", line):
            in_fence = not in_fence
            continue
        if not in_fence:
            yield number, CODE_SPAN.sub("``", line)


def slug(heading: str) -> str:
    """A heading's anchor, as Python-Markdown's toc (and GitHub, for plain headings) makes it."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", page.read_text(), re.M)}


# --- the nav --------------------------------------------------------------------------------
def test_nav_pages_exist():
    pages = nav_pages()
    assert "index.md" in pages
    missing = [p for p in pages if not (DOCS / p).is_file()]
    assert not missing, f"mkdocs.yml's nav names pages that docs/ lacks: {missing}"


def test_every_page_is_in_the_nav():
    listed = set(nav_pages())
    orphans = [p.name for p in PAGES if p.name not in listed]
    assert not orphans, f"docs pages missing from mkdocs.yml's nav: {orphans}"


def test_nav_gets_a_tutorials_section_with_every_chapter():
    config = SimpleNamespace(config_file_path=str(MKDOCS_YML), nav=[{"Home": "index.md"}])
    config.nav.append({"Tutorials": []})
    section = chapters_hook.on_config(config).nav[1]["Tutorials"]
    pages = [next(iter(entry.values())) for entry in section]
    assert pages == [f"tutorials/{c.stem}.md" for c in CHAPTERS]
    titles = [next(iter(entry)) for entry in section]
    assert all(re.match(r"\d+\. \S", t) for t in titles), titles


# --- tutorial chapters -----------------------------------------------------------------------
def test_chapters_exist():
    assert CHAPTERS, "no tutorials/NN_<topic>.py chapters found"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_chapter_renders_with_all_its_code(chapter):
    source = chapter.read_text(encoding="utf-8")
    markdown = chapters_hook.chapter_to_markdown(source, f"tutorials/{chapter.name}")
    lines = markdown.splitlines()
    assert lines[0].startswith("# "), "a chapter page starts with its title"
    assert "```python" in markdown, "a chapter page shows code"
    assert markdown.count("```") % 2 == 0, "unbalanced code fences"
    rendered = set(lines)
    for number, line in enumerate(source.splitlines(), 1):
        code = line.strip() and not line.lstrip().startswith("#")
        if code and line not in rendered and number > _docstring_end(source):
            pytest.fail(f"{chapter.name}:{number} is missing from the page: {line!r}")


def _docstring_end(source: str) -> int:
    import ast

    body = ast.parse(source).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        return body[0].end_lineno
    return 0


def test_cell_kinds_and_escaping(tmp_path):
    source = '''"""Chapter 7: a test chapter, with a subtitle.

Goal: check <s>, [CLS] [SEP] and a_b*c in `code_span*`.

Run: python tutorials/07_test.py
"""
import numpy as np

# %% A code cell
# Prose first: [MASK][PAD] and 2 * 3.
# 1. a list item
x = np.zeros(3)  # (3,)
# a comment inside the code

# %% [markdown]
# ## A markdown cell
# *Emphasis* stays, [CLS] [SEP] become text, and [a link](../docs/index.md) works.

# %%
s = """
```
"""
'''
    markdown = chapters_hook.chapter_to_markdown(source, "tutorials/07_test.py")
    assert markdown.startswith("# Chapter 7: a test chapter, with a subtitle\n")
    assert "**Goal:** check &lt;s>, \\[CLS\\] \\[SEP\\] and a\\_b\\*c in `code_span*`." in markdown
    assert "**Run:** `python tutorials/07_test.py`" in markdown
    assert (
        "## A code cell\n\nProse first: \\[MASK\\]\\[PAD\\] and 2 \\* 3.\n\n1. a list item"
        in markdown
    )
    assert "```python\nx = np.zeros(3)  # (3,)\n# a comment inside the code\n```" in markdown
    assert (
        "*Emphasis* stays, \\[CLS\\] \\[SEP\\] become text, and [a link](../docs/index.md)"
        in markdown
    )
    assert '````python\ns = """\n```\n"""\n````' in markdown  # a longer fence around ```
    assert chapters_hook.nav_title(source, "07_test") == "7. A test chapter"


def test_links_leaving_docs_are_rewritten():
    rewrite = chapters_hook.rewrite_links
    docs, root = DOCS.resolve(), ROOT.resolve()
    page = "[one](../tutorials/01_x.py#step) [nn](../minibert/nn.py) [page](shapes.md#the-letters)"
    out = rewrite(page, "architecture.md", docs, docs, root)
    assert out == "[one](tutorials/01_x.md#step) nn [page](shapes.md#the-letters)"
    out = rewrite("[nn](../minibert/nn.py)", "index.md", docs, docs, root, "https://example.org/r")
    assert out == "[nn](https://example.org/r/blob/main/minibert/nn.py)"
    # a chapter's links are relative to tutorials/, its page lives at docs/tutorials/
    out = rewrite(
        "[n](../docs/numerics.md#gelu) [c](02_y.py)",
        "tutorials/01_x.md",
        root / "tutorials",
        docs,
        root,
    )
    assert out == "[n](../numerics.md#gelu) [c](02_y.md)"
    out = rewrite(
        "![map](../docs/img/a.png) ![b](../b.png)",
        "tutorials/01_x.md",
        root / "tutorials",
        docs,
        root,
    )
    assert out == "![map](../img/a.png) b"
    fenced = "```\n[nn](../minibert/nn.py)\n```"
    assert rewrite(fenced, "index.md", docs, docs, root) == fenced


# --- links and generated tables in the pages ------------------------------------------------
@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_relative_links_resolve(page):
    problems = []
    for number, line in prose_lines(page.read_text(encoding="utf-8")):
        for match in LINK.finditer(line):
            target = match.group("target")
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("/"):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                problems.append(f"line {number}: {target} does not exist")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                problems.append(f"line {number}: {resolved.name} has no heading #{anchor}")
    assert not problems, f"{page.name}: " + "; ".join(problems)


def test_generated_tables_are_up_to_date():
    generated = load_hook("generated")
    stale = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        if generated.fill(text, build=False) != text:
            stale.append(page.name)
    assert not stale, (
        f"the generated tables in {stale} no longer match the code; "
        f"refresh them with: {sys.executable} docs/hooks/generated.py"
    )


@pytest.mark.minilm
@needs_minilm
def test_index_example_runs(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    text = (DOCS / "index.md").read_text(encoding="utf-8")
    code = re.search(r"## Usage\n\n```python\n(.*?)```", text, re.S).group(1)
    exec(compile(code, str(DOCS / "index.md"), "exec"), {})
    printed = capsys.readouterr().out.strip()
    promised = re.search(r"^print\(.*\)\s+# (.*)$", code, re.M).group(1)
    assert printed == promised
