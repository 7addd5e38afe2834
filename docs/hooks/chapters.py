"""mkdocs hook: the tutorial chapters as pages, and links to repository files.

The chapters stay what they are, runnable scripts in tutorials/NN_<topic>.py with `# %%` cells.
At build time every chapter becomes an in-memory page tutorials/NN_<topic>.md (nothing is
written into the repository), and the "Tutorials" section of the nav lists them, so a new
chapter appears without editing mkdocs.yml:

    module docstring          -> title (its first line) and introduction
    # %% Title                -> "## Title"; the cell's leading comment lines become prose and
                                 the rest of the cell a python code block
    # %% [markdown]           -> the cell's comment lines, as Markdown

The docs pages are GitHub-readable, so they may link to source files outside docs/ (for example
../tutorials/01_attention.py or ../minibert/nn.py). The site does not serve those files: a link
to a chapter script is pointed at the chapter's page, and any other link that leaves docs/
becomes a link into the repository when mkdocs.yml sets repo_url, else plain text.

`chapter_to_markdown` is plain Python, so tests/test_docs.py runs it on every chapter.
"""

import ast
import posixpath
import re
from pathlib import Path

CHAPTER_GLOB = "[0-9][0-9]_*.py"
CHAPTER_DIR = "tutorials"  # relative to the repository root (beside mkdocs.yml)
NAV_SECTION = "Tutorials"

CELL_MARKER = re.compile(r"^# %%(?P<rest>.*)$")
CELL_KIND = re.compile(r"\[(?P<kind>[A-Za-z]+)\]")
LIST_ITEM = re.compile(r"^(?P<marker>\s*(?:\d+[.)]|[-*+])\s+)")
LABEL = re.compile(r"^(?P<label>[A-Z][A-Za-z ]{0,30}):(?=\s)")  # "Goal:", "Code explained:"
CODE_SPAN = re.compile(r"(`+).*?\1")
INLINE_LINK = re.compile(r"(?P<image>!?)\[(?P<text>[^\]\n]*)\]\((?P<target>[^)\s]+)\)")
BRACKETS = re.compile(r"(?<![!\\])\[(?P<inner>[^\[\]\n]*)\](?!\()")
FENCE = re.compile(r"^\s*(```|~~~)")


# --- chapter script -> Markdown -----------------------------------------------------------
def chapter_files(root) -> list[Path]:
    """Every chapter script, in chapter order."""
    return sorted((Path(root) / CHAPTER_DIR).glob(CHAPTER_GLOB))


def page_uri(chapter: Path) -> str:
    """Where a chapter's page lives inside the site: tutorials/NN_<topic>.md."""
    return f"{CHAPTER_DIR}/{chapter.stem}.md"


def chapter_title(source: str, stem: str) -> str:
    """The first line of the module docstring, or words made from the file name."""
    docstring = ast.get_docstring(ast.parse(source))
    if docstring and docstring.strip():
        return docstring.strip().splitlines()[0].strip().rstrip(".")
    number, _, topic = stem.partition("_")
    return f"Chapter {int(number)}: {topic.replace('_', ' ')}"


def nav_title(source: str, stem: str) -> str:
    """A short nav label: "3. Tokenization" from "Chapter 3: tokenization, from text to ids"."""
    number = int(stem[:2])
    title = chapter_title(source, stem)
    topic = re.sub(r"^Chapter\s+\d+\s*[:.-]\s*", "", title)
    topic = re.split(r",|;| - | -- |: ", topic)[0].strip() or stem[3:].replace("_", " ")
    return f"{number}. {topic[0].upper()}{topic[1:]}"


def chapter_to_markdown(source: str, relpath: str) -> str:
    """Render a percent-format chapter script as a Markdown page.

    Args:
        source: the script's text.
        relpath: its path from the repository root, shown on the page (tutorials/NN_x.py).
    """
    tree = ast.parse(source)
    lines = source.splitlines()
    docstring = ast.get_docstring(tree)
    body_start = 0
    if docstring is not None:
        body_start = tree.body[0].end_lineno
    stem = Path(relpath).stem
    out = [f"# {escape_prose(chapter_title(source, stem))}", ""]
    out += [
        '!!! note "Runnable chapter"',
        f"    This page is generated from `{relpath}`, a plain Python script that the test",
        f"    suite runs. Run it yourself with `python {relpath}`, or open it in an editor",
        "    that understands `# %%` cells to run it cell by cell.",
        "",
    ]
    if docstring:
        intro = docstring.strip().splitlines()[1:]
        out += docstring_to_markdown("\n".join(intro)) + [""]
    for title, kind, cell in split_cells(lines[body_start:]):
        if title:
            out += [f"## {escape_prose(title)}", ""]
        if kind == "markdown":
            out += markdown_cell(cell) + [""]
        else:
            prose, code = split_leading_comments(cell)
            if prose:
                out += comments_to_markdown(prose) + [""]
            if code:
                out += fenced(code, "python") + [""]
    return "\n".join(out).rstrip() + "\n"


def split_cells(lines: list[str]) -> list[tuple[str, str, list[str]]]:
    """(title, kind, lines) per cell; code before the first marker is an untitled code cell."""
    cells = []
    title, kind, current = "", "code", []
    for line in lines:
        match = CELL_MARKER.match(line)
        if match is None:
            current.append(line)
            continue
        if any(s.strip() for s in current) or title:
            cells.append((title, kind, current))
        rest = match.group("rest")
        kind_match = CELL_KIND.search(rest)
        kind = kind_match.group("kind").lower() if kind_match else "code"
        kind = "markdown" if kind in ("markdown", "md") else "code"
        rest = CELL_KIND.sub("", rest)
        title = rest.split(' key="', 1)[0].strip()  # drop jupytext cell metadata, if any
        current = []
    if any(s.strip() for s in current) or title:
        cells.append((title, kind, current))
    return cells


def strip_comment(line: str) -> str:
    """'# text' -> 'text', '#' -> ''."""
    stripped = line.strip()
    if stripped.startswith("# "):
        return stripped[2:]
    return stripped[1:]


def markdown_cell(lines: list[str]) -> list[str]:
    """A markdown cell: comment lines, or one string literal, written as Markdown."""
    text = "\n".join(lines).strip()
    if text[:3] in ('"""', "'''"):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = None
        if isinstance(value, str):
            return value.strip().splitlines()
    lines = [strip_comment(line) if line.strip() else "" for line in lines]
    while lines and not lines[-1]:
        lines = lines[:-1]
    return [_outside_code_spans(line, _escape_brackets) for line in lines]


def _escape_brackets(text: str) -> str:
    """[CLS] -> \\[CLS\\], leaving [text](url) links alone: mkdocs-autorefs would read "[CLS] [SEP]"
    as a cross-reference to an object called SEP and fail the strict build."""
    return BRACKETS.sub(lambda m: "\\[" + m.group("inner") + "\\]", text)


def split_leading_comments(lines: list[str]) -> tuple[list[str], list[str]]:
    """A code cell's opening comment block (the prose) and the code after it."""
    while lines and not lines[0].strip():
        lines = lines[1:]
    i = 0
    while i < len(lines) and lines[i].lstrip().startswith("#") and lines[i].startswith("#"):
        i += 1
    prose = [strip_comment(line) for line in lines[:i]]
    code = lines[i:]
    while code and not code[-1].strip():
        code = code[:-1]
    while code and not code[0].strip():
        code = code[1:]
    return prose, code


def fenced(code: list[str], language: str) -> list[str]:
    fence = "```"
    while any(line.lstrip().startswith(fence) for line in code):
        fence += "`"
    return [f"{fence}{language}", *code, fence]


def docstring_to_markdown(text: str) -> list[str]:
    """Docstring paragraphs as Markdown: "Goal:"-style labels in bold, indented blocks as code."""
    out = []
    for paragraph in re.split(r"\n\s*\n", text.strip("\n")):
        lines = paragraph.splitlines()
        if not lines:
            continue
        if all(line.startswith("    ") for line in lines if line.strip()):
            out += fenced([line[4:] for line in lines], "text") + [""]
            continue
        prose = comments_to_markdown(lines)
        label = LABEL.match(prose[0])
        if label and label.group("label") == "Run" and len(lines) == 1:  # a command line
            prose = [f"**Run:** `{lines[0][label.end() :].strip()}`"]
        elif label:
            prose[0] = f"**{label.group('label')}:**" + prose[0][label.end() :]
        out += prose + [""]
    return out[:-1]


def comments_to_markdown(lines: list[str]) -> list[str]:
    """Plain-text prose (from comments or a docstring) as Markdown that shows it unchanged.

    Characters Markdown would read as markup are escaped outside `code spans`; list items get
    the blank line before them that Python-Markdown needs.
    """
    out = []
    previous = ""
    for raw in lines:
        line = raw.rstrip()
        item = LIST_ITEM.match(line)
        if item:
            marker = item.group("marker")
            starts_list = previous.strip() and not LIST_ITEM.match(previous)
            if starts_list and not previous.startswith(" "):
                out.append("")
            line = marker + escape_prose(line[len(marker) :])
        elif re.fullmatch(r"\s*[-=_*]{3,}\s*", line):  # would be a rule or a heading underline
            line = "\\" + line.strip()
        else:
            line = escape_prose(line)
            if line.lstrip().startswith(("#", ">")):
                line = "\\" + line.lstrip()
        out.append(line)
        previous = raw
    return out


def escape_prose(text: str) -> str:
    """Escape Markdown markup outside `code spans`, so that plain text shows as written."""
    return _outside_code_spans(text, _escape)


def _outside_code_spans(text: str, change) -> str:
    """Apply change() to the parts of one line that are not `code spans`."""
    pieces, last = [], 0
    for match in CODE_SPAN.finditer(text):
        pieces.append(change(text[last : match.start()]))
        pieces.append(match.group(0))
        last = match.end()
    pieces.append(change(text[last:]))
    return "".join(pieces)


def _escape(text: str) -> str:
    text = text.replace("\\", "\\\\")
    for char in "*_[]":
        text = text.replace(char, "\\" + char)
    return text.replace("&", "&amp;").replace("<", "&lt;")


# --- links that leave docs/ ----------------------------------------------------------------
def rewrite_links(
    markdown: str,
    page_src: str,
    base: Path,
    docs_dir: Path,
    root: Path,
    repo_url: str | None = None,
) -> str:
    """Make a page's relative links (and images) work on the site. Code blocks and spans are
    left alone.

    Args:
        page_src: the page's path inside the site (tutorials/01_attention.md).
        base: the real folder its links are relative to (docs/, or tutorials/ for a chapter).
        repo_url: where links to other repository files point; None makes them plain text.
    """
    page_dir = posixpath.dirname(page_src)

    def replace(match):
        image, text, target = match.group("image"), match.group("text"), match.group("target")
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
            return match.group(0)  # a URL, an anchor on this page, or site-absolute
        path, _, anchor = target.partition("#")
        anchor = "#" + anchor if anchor else ""
        resolved = (base / path).resolve()
        if resolved == docs_dir or docs_dir in resolved.parents:
            if base == docs_dir / page_dir:
                return match.group(0)  # a docs page as written: mkdocs checks it
            link = posixpath.relpath(resolved.relative_to(docs_dir).as_posix(), page_dir or ".")
            return f"{image}[{text}]({link}{anchor})"
        try:
            in_repo = Path(resolved.relative_to(root).as_posix())
        except ValueError:
            return text  # outside the repository: nothing to point at
        if in_repo.parent.as_posix() == CHAPTER_DIR and in_repo.match(CHAPTER_GLOB):
            link = posixpath.relpath(page_uri(in_repo), page_dir or ".")
            return f"[{text}]({link}{anchor})"
        if image:
            return text  # the site has no copy of the picture: show its description
        if repo_url:
            kind = "tree" if resolved.is_dir() else "blob"
            return f"[{text}]({repo_url.rstrip('/')}/{kind}/main/{in_repo.as_posix()})"
        return text

    out, in_fence = [], False
    for line in markdown.split("\n"):
        if FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence:
            line = _outside_code_spans(line, lambda part: INLINE_LINK.sub(replace, part))
        out.append(line)
    return "\n".join(out)


# --- mkdocs events -------------------------------------------------------------------------
def _root(config) -> Path:
    return Path(config.config_file_path).resolve().parent


def on_config(config):
    """Fill the Tutorials section of the nav with one entry per chapter, in order."""
    entries = []
    for chapter in chapter_files(_root(config)):
        source = chapter.read_text(encoding="utf-8")
        entries.append({nav_title(source, chapter.stem): page_uri(chapter)})
    nav = config.nav or []
    for item in nav:
        if isinstance(item, dict) and NAV_SECTION in item:
            item[NAV_SECTION] = entries
            break
    else:
        nav.append({NAV_SECTION: entries})
    config.nav = nav
    return config


def on_files(files, config):
    """Add each chapter's rendered page to the site (in memory only)."""
    from mkdocs.structure.files import File

    root = _root(config)
    for chapter in chapter_files(root):
        uri = page_uri(chapter)
        source = chapter.read_text(encoding="utf-8")
        markdown = chapter_to_markdown(source, chapter.relative_to(root).as_posix())
        if files.get_file_from_path(uri) is not None:
            files.remove(files.get_file_from_path(uri))
        files.append(File.generated(config, uri, content=markdown))
    return files


def on_page_markdown(markdown, page, config, files):
    docs_dir, root = Path(config.docs_dir).resolve(), _root(config)
    src = page.file.src_uri
    is_chapter = page.file.generated_by is not None and src.startswith(CHAPTER_DIR + "/")
    base = root / CHAPTER_DIR if is_chapter else docs_dir / posixpath.dirname(src)
    return rewrite_links(markdown, src, base, docs_dir, root, config.repo_url)


def on_serve(server, config, builder):
    """`mkdocs serve` rebuilds when a chapter changes."""
    server.watch(str(_root(config) / CHAPTER_DIR))
    return server
