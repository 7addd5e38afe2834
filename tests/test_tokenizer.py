"""Tests of minibert/tokenizer.py and minibert/wordpiece.py.

The reference is always the `tokenizers` library itself, configured in the test: the
from-scratch WordPiece must give its ids, and the Tokenizer wrapper its arrays. Tests marked
`minilm` use the real all-MiniLM-L6-v2 vocabulary; the others train tiny vocabularies here, so they
run everywhere.
"""

import json
import random
import shutil
import unicodedata

import numpy as np
import pytest
import tokenizers
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

from minibert.errors import CheckpointError
from minibert.pretrained import MINILM_INSTALL, minilm_available, minilm_path
from minibert.tokenizer import Tokenizer, load_tokenizer
from minibert.wordpiece import BasicTokenizer, WordPiece, WordPieceTokenizer


def needs_minilm(test):
    """Mark a test that uses the real all-MiniLM-L6-v2 files (CI installs them)."""
    reason = f"all-MiniLM-L6-v2 not installed: {MINILM_INSTALL}"
    return pytest.mark.minilm(pytest.mark.skipif(not minilm_available(), reason=reason)(test))


BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Unicode blocks on which Python's character database and the library's agree. The library's
# character classes are older (about Unicode 8), so marks and punctuation added since, in rare
# scripts, are classed differently there (see the note in minibert/wordpiece.py).
BLOCKS = [
    (0x0000, 0x036F),  # ASCII with controls, Latin-1, Latin Extended A/B, IPA, combining accents
    (0x0370, 0x05FF),  # Greek, Cyrillic, Armenian, Hebrew
    (0x0620, 0x06FF),  # Arabic (U+061D, new in Unicode 14, is punctuation only in Python)
    (0x0900, 0x097F),  # Devanagari
    (0x0E00, 0x0E7F),  # Thai
    (0x1E00, 0x1FFF),  # Latin Extended Additional, Greek Extended
    (0x2000, 0x22FF),  # general punctuation, super/subscripts, currency, letterlike, arrows, math
    (0x2500, 0x27BF),  # box drawing, shapes, miscellaneous symbols, dingbats
    (0x3000, 0x30FF),  # CJK symbols and punctuation, hiragana, katakana
    (0xE000, 0xE0FF),  # private use (deleted as control characters)
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF00, 0xFFFF),  # half- and full-width forms, specials (U+FFFD)
    (0x1F300, 0x1F6FF),  # emoji
    (0x1F900, 0x1F9FF),  # more emoji
]
SPARSE_BLOCKS = [  # big blocks: every 37th character
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xAC00, 0xD7A3),  # Hangul syllables
    (0x20000, 0x2A6DF),  # CJK Extension B
    (0x2B740, 0x2B9FF),  # around the library's gap in Extension E (see CJK_RANGES)
]
ALPHABET = [chr(c) for low, high in BLOCKS for c in range(low, high + 1)]
ALPHABET += [chr(c) for low, high in SPARSE_BLOCKS for c in range(low, high + 1, 37)]


def varied_sentences() -> list[str]:
    """About 400 texts: hand-written tricky cases, then seeded random combinations of words."""
    tricky = [
        "",
        " ",
        "\t\n\r ",
        "Hello, world!",
        "HELLO WORLD",
        "hElLo WoRlD",
        "The quick brown fox jumps over the lazy dog.",
        "Don't stop-believing... (or do?) [really] {maybe} <tag> a/b\\c",
        "e-mail: someone@example.com, web: https://example.org/path?q=1&x=2#frag",
        "$100.50 + 20% = ~120; 3.14159, 1,000,000 and 2^10 | `code` _under_",
        "Numbers: 0 1 12 123 1234 12345 123456 1234567 3rd 21st 1990s 10km",
        "Café naïve résumé façade jalapeño Ångström Øresund Straße",
        "ÀÁÂÃÄÅ àáâãäå ÈÉÊË èéêë Ññ Çç",
        "İstanbul ıi İI",  # dotted capital I: strip accents, then lower-case
        "ΟΔΟΣ Σοφία σοφός ΣΟΦΟΣ",  # capital sigma, lower-cased one character at a time
        "Привет, мир! Ёлка",
        "مرحبا بالعالم",
        "שלום עולם",
        "नमस्ते दुनिया",
        "สวัสดีชาวโลก",
        "你好，世界！我爱自然语言处理。",
        "日本語のテキスト：こんにちは、カタカナ、ひらがな。",
        "한국어 문장입니다",
        "mixed中文and English文字",
        "emoji 😀🙃🤖 👍🏽 👨‍👩‍👧 ❤️ 🇫🇷",
        "control\x00chars\x01here\x7f and\u200bzero\u200dwidth\ufeffbom",
        "replacement \ufffd char",
        "tabs\tand\nnewlines\r\nand\x0bvertical\x0cform\x85next",
        "line\u2028separator\u2029paragraph\u00a0nbsp\u3000ideographic space",
        "private\ue000use",
        "unassigned\u0378code point",
        "combining e\u0301 a\u0308 n\u0303 (decomposed accents)",
        "ﬁ ligature ﬀ and fullwidth ＡＢＣ１２３",
        "a" * 99,
        "a" * 100,
        "a" * 101,
        "x" * 150 + " short",
        "supercalifragilisticexpialidocious antidisestablishmentarianism",
        "pneumonoultramicroscopicsilicovolcanoconiosis",
        "qwxzvbnmkj zzzzqqq xxyyzz",
        "unaffable unbelievable untranslatability",
        "[CLS] [SEP] [MASK] [PAD] [UNK]",
        "fill the [MASK] here, and [mask] lower-case is not special",
        "a[MASK]b[SEP]c",
        "[[MASK]] [MAS K]",
        "...!!!???",
        "'''\"\"\"",
        "«guillemets» „quotes“ ‘single’ —dash– …ellipsis",
        "C++ C# F# .NET node.js",
        "#hashtag @mention",
        "x" * 30 + "ing " + "re" * 20,
        "the " * 50,
    ]
    words = (
        "the a of and to in is was for on that with as by at from it be this are which or "
        "tokenization tokenizer tokenize tokens token embeddings transformer bidirectional "
        "unsupervised pretraining fine-tuning hyperparameter backpropagation quantization "
        "Paris London Tokyo München Zürich São Paulo Kraków Reykjavík "
        "2019 3.5 42 1e-9 0x1F 100% $5 #1 "
        "naïve coöperate rôle fiancée über smörgåsbord "
        "北京 東京 中华人民共和国 ありがとう ソフトウェア 서울 "
        "😀 🚀 ✓ ★ → ∑ ∞ © ™ "
        "don't can't it's o'clock rock'n'roll well-known state-of-the-art e.g. i.e. U.S.A. "
        "[MASK] [SEP] "
        "xylophone zygote quizzically jazzed fjord rhythm crwth"
    ).split()
    separators = [" ", " ", " ", "  ", "\t", "\n", ", ", ". ", "-", "/", ""]
    rng = random.Random(0)
    generated = []
    for _ in range(350):
        parts = []
        for _ in range(rng.randint(1, 14)):
            word = rng.choice(words)
            case = rng.random()
            if case < 0.15:
                word = word.upper()
            elif case < 0.3:
                word = word.capitalize()
            parts.extend([word, rng.choice(separators)])
        generated.append("".join(parts).strip(" "))
    return tricky + generated


SENTENCES = varied_sentences()


# Fixtures.


def bert_library_tokenizer(vocab, lowercase=True, strip_accents=None):
    """The library's BERT tokenizer, built here by hand: the reference for a vocab dict."""
    tok = tokenizers.Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=strip_accents)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens([t for t in BERT_SPECIALS if t in vocab])
    return tok


@pytest.fixture(scope="module")
def tiny_vocab_dir(tmp_path_factory):
    """A folder with a vocab.txt of ~400 WordPieces trained here on generated sentences."""
    tok = tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=BERT_SPECIALS)
    tok.train_from_iterator(SENTENCES[60:], trainer)  # leave the tricky ones unseen
    folder = tmp_path_factory.mktemp("tiny-wordpiece")
    tok.model.save(str(folder))  # writes vocab.txt
    return folder


@pytest.fixture(scope="module")
def tiny_vocab(tiny_vocab_dir):
    lines = (tiny_vocab_dir / "vocab.txt").read_text(encoding="utf-8").rstrip("\n").split("\n")
    return {token: i for i, token in enumerate(lines)}


@pytest.fixture(scope="module")
def minilm_library():
    """MiniLM's tokenizer.json loaded straight into the library, without its saved 128 limits."""
    tok = tokenizers.Tokenizer.from_file(str(minilm_path() / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


@pytest.fixture(scope="module")
def minilm_scratch():
    return WordPieceTokenizer(minilm_path() / "vocab.txt")


@pytest.fixture(scope="module")
def minilm_tok():
    return load_tokenizer(minilm_path())


def library_arrays(tok, texts, pairs=None, max_length=512, pad_length=None, truncate=True):
    """Arrays from the library configured by hand: the reference for Tokenizer.__call__."""
    tok = tokenizers.Tokenizer.from_str(tok.to_str())
    if truncate:
        tok.enable_truncation(max_length)
    tok.enable_padding(pad_id=tok.token_to_id("[PAD]"), length=pad_length)
    encodings = tok.encode_batch(texts if pairs is None else list(zip(texts, pairs, strict=True)))
    return {
        "input_ids": np.array([e.ids for e in encodings]),
        "attention_mask": np.array([e.attention_mask for e in encodings]),
        "token_type_ids": np.array([e.type_ids for e in encodings]),
    }


def assert_same_arrays(ours, expected):
    assert set(ours) == {"input_ids", "attention_mask", "token_type_ids"}
    for key, value in expected.items():
        assert ours[key].dtype == np.int64, key
        np.testing.assert_array_equal(ours[key], value, err_msg=key)


# From-scratch WordPiece against the library, real MiniLM vocab.


def test_sentence_list_is_varied():
    assert len(SENTENCES) >= 300
    assert len(set(SENTENCES)) >= 300


@needs_minilm
def test_scratch_matches_library_on_minilm(minilm_scratch, minilm_library):
    expected = [e.ids for e in minilm_library.encode_batch(SENTENCES)]
    for text, ids in zip(SENTENCES, expected, strict=True):
        assert minilm_scratch.encode(text) == ids, repr(text)
    pairs = list(zip(SENTENCES[::2], SENTENCES[1::2], strict=True))
    expected = [e.ids for e in minilm_library.encode_batch(pairs)]
    for (a, b), ids in zip(pairs, expected, strict=True):
        assert minilm_scratch.encode(a, b) == ids, (a, b)


@needs_minilm
def test_scratch_matches_library_on_every_character_of_common_blocks(
    minilm_scratch, minilm_library
):
    # Each character inside a word, alone, and after a word: exercises cleaning, CJK spacing,
    # accent stripping, lower-casing and punctuation splitting one code point at a time.
    texts = [f"a{char}b {char} x{char}" for char in ALPHABET]
    expected = minilm_library.encode_batch(texts)
    mismatches = [
        t for t, e in zip(texts, expected, strict=True) if minilm_scratch.encode(t) != e.ids
    ]
    assert not mismatches, [hex(ord(t[1])) for t in mismatches[:20]]


@needs_minilm
@settings(max_examples=150, deadline=None)
@given(text=st.text(st.sampled_from(ALPHABET) | st.sampled_from("abc xyz.,'-"), max_size=60))
def test_scratch_matches_library_hypothesis(text, minilm_scratch, minilm_library):
    assert minilm_scratch.encode(text) == minilm_library.encode(text).ids


@needs_minilm
def test_basic_tokenizer_matches_library_pre_tokenization(minilm_library):
    basic = BasicTokenizer()
    for text in SENTENCES[:80]:
        normalized = minilm_library.normalizer.normalize_str(text)
        words = [w for w, _ in minilm_library.pre_tokenizer.pre_tokenize_str(normalized)]
        assert basic.tokenize(text) == words, repr(text)


@needs_minilm
def test_wordpiece_matches_library_model(minilm_scratch, minilm_library):
    pieces = WordPiece(minilm_scratch.vocab)
    words = ["playing", "unaffable", "tokenization", "a" * 100, "a" * 101, "xqzvkwjh", "##", "é"]
    words += ["supercalifragilisticexpialidocious", "1234567890", "\u0378", "😀"]
    for word in words:
        expected = [t.value for t in minilm_library.model.tokenize(word)]
        assert pieces.tokenize(word) == expected, word
    assert pieces.tokenize("a" * 101) == ["[UNK]"]  # longer than 100 characters
    assert len(pieces.tokenize("a" * 100)) > 1


@needs_minilm
def test_pinned_differences_from_google_bert(minilm_scratch, minilm_library):
    """Where we follow the library rather than Google's tokenization.py (see the module note)."""
    basic = BasicTokenizer()
    assert unicodedata.category("\u0378") == "Cn"
    # Unassigned code points are kept (Google deletes them), so they make the word unknown.
    assert basic.tokenize("a\u0378b") == ["a\u0378b"]
    # The library's CJK Extension E range starts at 0x2B920: 0x2B820 is not spaced out.
    assert basic.tokenize("a\U0002b820b") == ["a\U0002b820b"]
    assert basic.tokenize("a\U0002b920b") == ["a", "\U0002b920", "b"]
    # Capital sigma lower-cases to the medial form even at the end of a word.
    assert basic.tokenize("ΟΔΟΣ") == ["οδοσ"]
    for text in ["a\u0378b", "a\U0002b820b", "a\U0002b920b", "ΟΔΟΣ", "a [MASK] b"]:
        assert minilm_scratch.encode(text) == minilm_library.encode(text).ids


# From-scratch WordPiece against the library, tiny vocab trained here (runs everywhere).


@pytest.mark.parametrize(
    ("lowercase", "strip_accents"), [(True, None), (False, None), (False, True)]
)
def test_scratch_matches_library_on_trained_vocab(
    tiny_vocab_dir, tiny_vocab, lowercase, strip_accents
):
    ours = WordPieceTokenizer(tiny_vocab_dir / "vocab.txt", lowercase, strip_accents)
    library = bert_library_tokenizer(tiny_vocab, lowercase, strip_accents)
    expected = library.encode_batch(SENTENCES)
    for text, encoding in zip(SENTENCES, expected, strict=True):
        assert ours.encode(text) == encoding.ids, repr(text)
    assert ours.encode("a b", "c") == library.encode("a b", "c").ids


@settings(max_examples=150, deadline=None)
@given(text=st.text(st.sampled_from(ALPHABET) | st.sampled_from("the nd s.-"), max_size=50))
def test_scratch_matches_library_on_trained_vocab_hypothesis(text, tiny_vocab):
    ours = WordPieceTokenizer(tiny_vocab)
    assert ours.encode(text) == bert_library_tokenizer(tiny_vocab).encode(text).ids


def test_wordpiece_greedy_longest_match_first():
    vocab = {"[UNK]": 0, "un": 1, "una": 2, "##ff": 3, "##ffa": 4, "##ble": 5, "##able": 6, "b": 7}
    pieces = WordPiece(vocab)
    assert pieces.tokenize("unaffable") == ["una", "##ffa", "##ble"]  # longest first, not "un"
    assert pieces.tokenize("unaffablex") == ["[UNK]"]  # one unmatched piece spoils the word
    assert pieces.tokenize("b" * 100) == ["[UNK]"]  # "##b" is not in the vocab
    assert WordPiece(vocab, max_chars=3).tokenize("una") == ["una"]
    assert WordPiece(vocab, max_chars=2).tokenize("una") == ["[UNK]"]


# The Tokenizer wrapper: MiniLM.


@needs_minilm
def test_vocab_txt_matches_tokenizer_json(tmp_path, minilm_tok):
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(minilm_path() / name, tmp_path / name)
    from_vocab = load_tokenizer(tmp_path)
    assert from_vocab.special_tokens == minilm_tok.special_tokens
    assert from_vocab.special_ids == minilm_tok.special_ids == {0, 100, 101, 102, 103}
    assert from_vocab.vocab_size == minilm_tok.vocab_size == 30522
    assert from_vocab.model_max_length == minilm_tok.model_max_length == 512
    assert_same_arrays(from_vocab(SENTENCES), minilm_tok(SENTENCES))
    pairs = SENTENCES[1::2][: len(SENTENCES) // 2]
    texts = SENTENCES[::2][: len(pairs)]
    assert_same_arrays(
        from_vocab(texts, pairs, max_length=40), minilm_tok(texts, pairs, max_length=40)
    )
    ids = minilm_tok(SENTENCES[:50])["input_ids"]
    assert from_vocab.batch_decode(ids) == minilm_tok.batch_decode(ids)


@needs_minilm
def test_minilm_specials_and_saved_limits_switched_off(minilm_tok):
    assert (minilm_tok.pad_token_id, minilm_tok.unk_token_id) == (0, 100)
    assert (minilm_tok.cls_token_id, minilm_tok.sep_token_id, minilm_tok.mask_token_id) == (
        101,
        102,
        103,
    )
    # tokenizer.json saves truncation at 128 and padding to 128: neither may leak into a call.
    assert minilm_tok.backend.truncation is None
    assert minilm_tok.backend.padding is None
    assert minilm_tok("hello")["input_ids"].shape == (1, 3)
    assert minilm_tok("word " * 300)["input_ids"].shape == (1, 302)
    assert minilm_tok.backend.truncation is None
    assert minilm_tok.backend.padding is None


@needs_minilm
@pytest.mark.parametrize(
    ("kwargs", "library_kwargs"),
    [
        ({}, {}),
        ({"max_length": 8}, {"max_length": 8}),
        ({"padding": "max_length", "max_length": 64}, {"max_length": 64, "pad_length": 64}),
        ({"padding": "longest", "max_length": 10}, {"max_length": 10}),
        ({"truncation": False}, {"truncate": False}),
    ],
)
def test_padding_and_truncation_match_library(minilm_tok, minilm_library, kwargs, library_kwargs):
    texts = ["Short one.", "A somewhat longer sentence with more words in it!", "", "日本語"]
    ours = minilm_tok(texts, **kwargs)
    assert_same_arrays(ours, library_arrays(minilm_library, texts, **library_kwargs))
    assert ours["input_ids"].shape[0] == 4
    mask = ours["attention_mask"].astype(bool)
    assert (ours["input_ids"][~mask] == minilm_tok.pad_token_id).all()


@needs_minilm
@pytest.mark.parametrize("max_length", [None, 5, 12, 30])
def test_pairs_match_library(minilm_tok, minilm_library, max_length):
    texts = ["How old are you?", "what is the capital of France, and why is it Paris?"]
    pairs = ["I am six years old and I like trains very much.", "Paris."]
    ours = minilm_tok(texts, pairs, max_length=max_length)
    expected = library_arrays(minilm_library, texts, pairs, max_length=max_length or 512)
    assert_same_arrays(ours, expected)
    assert set(np.unique(ours["token_type_ids"])) == {0, 1}


@needs_minilm
def test_default_truncation_is_model_max_length(minilm_tok, minilm_library):
    text = "tokenization " * 400  # two pieces per word: 800 + 2 tokens before truncation
    ours = minilm_tok([text, "short"])
    assert ours["input_ids"].shape == (2, 512)
    assert_same_arrays(ours, library_arrays(minilm_library, [text, "short"], max_length=512))


@needs_minilm
def test_decode_tokenize_and_conversions(minilm_tok, minilm_library):
    for text in ["hello, world!", "the cat sat on the mat.", "tokenization is fun."]:
        ids = minilm_tok(text)["input_ids"][0]
        assert minilm_tok.decode(ids) == text  # lower-case text without apostrophes round-trips
        assert minilm_tok.decode(ids.tolist()) == text
        assert minilm_tok.decode([np.int32(i) for i in ids]) == text
        with_specials = minilm_tok.decode(ids, skip_special_tokens=False)
        assert with_specials == minilm_library.decode(ids.tolist(), skip_special_tokens=False)
        assert with_specials.startswith("[CLS]")
        assert with_specials.endswith("[SEP]")
    batch = minilm_tok(["hello there", "a much longer sentence here"])["input_ids"]
    assert minilm_tok.batch_decode(batch) == ["hello there", "a much longer sentence here"]
    assert minilm_tok.tokenize("Tokenization!") == ["token", "##ization", "!"]
    assert minilm_tok.tokenize("") == []
    assert minilm_tok.convert_tokens_to_ids(["token", "##ization"]) == [19204, 3989]
    assert minilm_tok.convert_tokens_to_ids("not-a-token") == 100  # unknown -> [UNK], as in HF
    assert minilm_tok.convert_ids_to_tokens([101, 19204]) == ["[CLS]", "token"]
    assert minilm_tok.convert_ids_to_tokens(np.int64(102)) == "[SEP]"
    assert minilm_tok("")["input_ids"].tolist() == [[101, 102]]


@needs_minilm
def test_save_and_load_round_trip(tmp_path, minilm_tok):
    minilm_tok.save(tmp_path / "saved")
    again = load_tokenizer(tmp_path / "saved")
    assert again.special_tokens == minilm_tok.special_tokens
    assert again.model_max_length == minilm_tok.model_max_length
    assert_same_arrays(again(SENTENCES[:100]), minilm_tok(SENTENCES[:100]))
    config = json.loads((tmp_path / "saved" / "tokenizer_config.json").read_text())
    assert config["model_max_length"] == 512
    assert config["mask_token"] == "[MASK]"


# The Tokenizer wrapper: RoBERTa (BPE) and ALBERT (Unigram) tokenizers built here.


@pytest.fixture(scope="module")
def roberta_like(tmp_path_factory):
    """A byte-level BPE tokenizer.json with RoBERTa's special tokens (<pad> has id 1)."""
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(SENTENCES[60:], trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    folder = tmp_path_factory.mktemp("roberta-like")
    tok.save(str(folder / "tokenizer.json"))
    return folder, tok


@pytest.fixture(scope="module")
def albert_like(tmp_path_factory):
    """A Unigram tokenizer.json with ALBERT's special tokens ([CLS], [SEP], <pad>, [MASK])."""
    tok = tokenizers.Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    specials = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.UnigramTrainer(vocab_size=200, special_tokens=specials, unk_token="<unk>")
    tok.train_from_iterator(SENTENCES[60:], trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    folder = tmp_path_factory.mktemp("albert-like")
    tok.save(str(folder / "tokenizer.json"))
    return folder, tok


def test_roberta_like_specials_and_padding(roberta_like):
    folder, library = roberta_like
    tok = load_tokenizer(folder)
    assert tok.special_tokens == {
        "unk": "<unk>",
        "cls": "<s>",
        "sep": "</s>",
        "pad": "<pad>",
        "mask": "<mask>",
    }
    assert (tok.cls_token_id, tok.pad_token_id, tok.sep_token_id, tok.mask_token_id) == (0, 1, 2, 4)
    texts = ["Hello world", "A longer sentence, with naïve words and 😀", "the <mask> here"]
    ours = tok(texts, ["pair", "b", "c"])
    reference = tokenizers.Tokenizer.from_str(library.to_str())
    reference.enable_truncation(512)
    reference.enable_padding(pad_id=1, pad_token="<pad>")
    encodings = reference.encode_batch(list(zip(texts, ["pair", "b", "c"], strict=True)))
    np.testing.assert_array_equal(ours["input_ids"], [e.ids for e in encodings])
    np.testing.assert_array_equal(ours["attention_mask"], [e.attention_mask for e in encodings])
    assert (ours["input_ids"][ours["attention_mask"] == 0] == 1).all()  # padded with id 1
    assert tok.decode(tok("Hello world")["input_ids"][0]) == "Hello world"


def test_albert_like_specials_and_padding(albert_like):
    folder, library = albert_like
    tok = load_tokenizer(folder)
    assert tok.special_tokens == {
        "unk": "<unk>",
        "cls": "[CLS]",
        "sep": "[SEP]",
        "pad": "<pad>",
        "mask": "[MASK]",
    }
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id) == (0, 1, 2, 3)
    texts = ["hello world", "a longer sentence here"]
    ours = tok(texts, padding="max_length", max_length=20)
    reference = tokenizers.Tokenizer.from_str(library.to_str())
    reference.enable_truncation(20)
    reference.enable_padding(pad_id=0, pad_token="<pad>", length=20)
    np.testing.assert_array_equal(ours["input_ids"], [e.ids for e in reference.encode_batch(texts)])
    assert ours["input_ids"].shape == (2, 20)


def test_config_files_name_the_special_tokens(roberta_like, tmp_path):
    folder, _ = roberta_like
    shutil.copy(folder / "tokenizer.json", tmp_path / "tokenizer.json")
    config = {
        "model_max_length": 1000000000000000019884624838656,  # HF's "no limit": not sane
        "mask_token": {"__type": "AddedToken", "content": "<unk>", "lstrip": True},
    }
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    (tmp_path / "special_tokens_map.json").write_text(json.dumps({"pad_token": "</s>"}))
    tok = load_tokenizer(tmp_path)
    assert tok.mask_token_id == 3
    assert tok.pad_token_id == 2
    assert tok.model_max_length == 512


def test_from_tokenizers_wraps_without_changing(tiny_vocab):
    library = bert_library_tokenizer(tiny_vocab)
    library.enable_truncation(4)
    tok = Tokenizer.from_tokenizers(library, model_max_length=64)
    assert library.truncation is not None  # the caller's tokenizer is left as it was
    assert tok.model_max_length == 64
    assert tok.pad_token_id == tiny_vocab["[PAD]"]
    assert tok.cls_token_id == tiny_vocab["[CLS]"]
    chosen = Tokenizer.from_tokenizers(library, special_tokens={"mask": "[UNK]", "pad": "nope"})
    assert chosen.mask_token_id == tiny_vocab["[UNK]"]  # the caller's choice wins
    assert chosen.pad_token_id is None  # a token outside the vocabulary plays no role
    ours = tok(["the end", "the nd s"])["input_ids"]
    library.no_truncation()
    library.enable_padding(pad_id=tiny_vocab["[PAD]"])
    np.testing.assert_array_equal(
        ours, [e.ids for e in library.encode_batch(["the end", "the nd s"])]
    )


def test_tokenizer_without_pad_token(tiny_vocab):
    vocab = {token: i for i, token in enumerate(t for t in tiny_vocab if t != "[PAD]")}
    tok = Tokenizer.from_tokenizers(bert_library_tokenizer(vocab))
    assert tok.pad_token_id is None
    assert tok(["the", "the"])["input_ids"].shape == (2, 3)  # same lengths need no padding
    with pytest.raises(ValueError, match="no pad token"):
        tok(["the", "the the the"])
    with pytest.raises(ValueError, match="needs a pad token"):
        tok(["the"], padding="max_length", max_length=8)


# Bad input.


@pytest.fixture(scope="module")
def tiny_tok(tiny_vocab_dir):
    return load_tokenizer(tiny_vocab_dir)


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (None, "texts must be a str or a list of str, got NoneType"),
        (5, "got int"),
        (b"bytes", "got bytes"),
        ([], "empty list"),
        (["ok", None], r"texts\[1\] must be a str, got NoneType"),
        (["ok", "fine", 3], r"texts\[2\] must be a str, got int"),
        ([["nested"]], r"texts\[0\] must be a str, got list"),
        ([b"x"], r"texts\[0\] must be a str, got bytes"),
    ],
)
def test_bad_texts(tiny_tok, texts, message):
    with pytest.raises(ValueError, match=message):
        tiny_tok(texts)


def test_bad_call_arguments(tiny_tok):
    with pytest.raises(ValueError, match="texts has 2 items but text_pairs has 3"):
        tiny_tok(["a", "b"], ["c", "d", "e"])
    with pytest.raises(ValueError, match=r"text_pairs\[0\] must be a str, got int"):
        tiny_tok(["a"], [1])
    with pytest.raises(ValueError, match="padding must be"):
        tiny_tok("a", padding="sideways")
    with pytest.raises(ValueError, match="truncation must be"):
        tiny_tok("a", truncation="middle")
    with pytest.raises(ValueError, match="max_length must be a positive int, got 0"):
        tiny_tok("a", max_length=0)
    with pytest.raises(ValueError, match="max_length must be a positive int, got str"):
        tiny_tok("a", max_length="8")
    with pytest.raises(ValueError, match="no room for the 3 special tokens"):
        tiny_tok("a b c", "d e", max_length=2)
    with pytest.raises(ValueError, match="cannot encode with max_length=4"):
        tiny_tok("a b c d e f", "g", truncation="only_second", max_length=4)
    with pytest.raises(ValueError, match="padding=False"):
        tiny_tok(["the", "the end of the"], padding=False)
    assert tiny_tok("the end", padding=False)["input_ids"].shape[0] == 1  # a batch of one is fine
    with pytest.raises(ValueError, match="text must be a str"):
        tiny_tok.tokenize(["a"])
    assert tiny_tok.backend.truncation is None
    assert tiny_tok.backend.padding is None


def test_bad_ids(tiny_tok):
    with pytest.raises(ValueError, match="1-D integer array, got 2-D"):
        tiny_tok.decode(np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="1-D integer array, got 1-D float64"):
        tiny_tok.decode(np.zeros(3))
    with pytest.raises(ValueError, match=r"ids\[1\] = 99999 is not in the vocabulary"):
        tiny_tok.decode([2, 99999])
    with pytest.raises(ValueError, match=r"ids\[0\] = -1 is not in the vocabulary"):
        tiny_tok.decode([-1])
    with pytest.raises(ValueError, match=r"ids\[0\] must be an int, got bool"):
        tiny_tok.decode([True])
    with pytest.raises(ValueError, match=r"ids\[0\] must be an int, got str"):
        tiny_tok.decode(["hello"])
    with pytest.raises(ValueError, match="batch_decode takes a 2-D array, got 1-D"):
        tiny_tok.batch_decode(np.zeros(3, dtype=np.int64))


def test_bad_folders(tmp_path, tiny_vocab_dir):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_tokenizer(tmp_path / "missing")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(CheckpointError, match="is not a folder"):
        load_tokenizer(tmp_path / "file.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="neither tokenizer.json nor vocab.txt"):
        load_tokenizer(tmp_path / "empty")
    assert issubclass(CheckpointError, ValueError)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("tokenizer.json", "{not json", "tokenizer.json is not valid JSON"),
        ("tokenizer.json", '{"model": 1}', "tokenizer.json is not a valid tokenizer.json"),
        ("tokenizer.json", "[1, 2]", "tokenizer.json must hold a JSON object"),
        ("vocab.txt", b"\xff\xfe\x00bad", "cannot read the vocabulary"),
        ("vocab.txt", "", "vocab.txt is empty"),
        ("vocab.txt", "[CLS]\n[SEP]\nhello\n", r"vocab.txt has no \[UNK\] token"),
        ("vocab.txt", "[UNK]\n[SEP]\nhello\n", r"vocab.txt has no \[CLS\] token"),
    ],
)
def test_malformed_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(CheckpointError, match=message):
        load_tokenizer(tmp_path)


def test_malformed_config(tmp_path, tiny_vocab_dir):
    shutil.copy(tiny_vocab_dir / "vocab.txt", tmp_path / "vocab.txt")
    (tmp_path / "tokenizer_config.json").write_text("{oops")
    with pytest.raises(CheckpointError, match="tokenizer_config.json is not valid JSON"):
        load_tokenizer(tmp_path)


def test_vocab_txt_config_options(tmp_path, tiny_vocab_dir, tiny_vocab):
    """do_lower_case / strip_accents in tokenizer_config.json reach the vocab.txt tokenizer."""
    shutil.copy(tiny_vocab_dir / "vocab.txt", tmp_path / "vocab.txt")
    (tmp_path / "tokenizer_config.json").write_text('{"do_lower_case": false}')
    tok = load_tokenizer(tmp_path)
    library = bert_library_tokenizer(tiny_vocab, lowercase=False)
    library.enable_padding(pad_id=tiny_vocab["[PAD]"])
    texts = ["The End of Naïve THE", "the end"]
    np.testing.assert_array_equal(
        tok(texts)["input_ids"], [e.ids for e in library.encode_batch(texts)]
    )
    assert (
        tok(["THE"])["input_ids"].tolist()
        != load_tokenizer(tiny_vocab_dir)("THE")["input_ids"].tolist()
    )


@pytest.mark.parametrize("tokenizer_class", ["BertTokenizer", None])
def test_config_options_win_over_saved_bert_normalizer(tmp_path, tiny_vocab, tokenizer_class):
    """As in Hugging Face's BertTokenizerFast: tokenizer_config.json's do_lower_case wins."""
    bert_library_tokenizer(tiny_vocab).save(str(tmp_path / "tokenizer.json"))  # lower-cases
    config = {"do_lower_case": False}
    if tokenizer_class:
        config["tokenizer_class"] = tokenizer_class
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    expected = bert_library_tokenizer(tiny_vocab, lowercase=False).encode("The END").ids
    assert load_tokenizer(tmp_path)("The END")["input_ids"].tolist() == [expected]
    # Hugging Face's generic class keeps the saved normalizer, which lower-cases.
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({**config, "tokenizer_class": "PreTrainedTokenizerFast"})
    )
    expected = bert_library_tokenizer(tiny_vocab).encode("The END").ids
    assert load_tokenizer(tmp_path)("The END")["input_ids"].tolist() == [expected]
