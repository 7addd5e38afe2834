"""BERT's WordPiece tokenizer written from scratch in plain Python, to be read.

tokenizer.py's Tokenizer wraps the Hugging Face `tokenizers` library (Rust) for real use; the
classes here give the same ids as that library for BERT's vocabularies (the tests check it),
one readable step at a time.

BERT turns text into ids in three steps (Devlin et al. 2018; Wu et al. 2016 for WordPiece):
  1. BasicTokenizer: clean the text, put spaces around Chinese characters, lower-case and strip
     accents, then split on whitespace and punctuation into words;
  2. WordPiece: split each word into the longest pieces found in the vocabulary;
  3. add [CLS] in front and [SEP] after each segment.
We follow the `tokenizers` library where it differs from Google's original code, so ids match:
  - unassigned code points are kept (Google's code deletes them with the control characters);
  - line and paragraph separators (U+2028, U+2029) count as whitespace, as other spaces do;
  - the CJK Extension E range starts at 0x2B920, not 0x2B820;
  - accents are stripped before lower-casing, one character at a time (so no final-sigma rule);
  - special tokens written in the text ("[MASK]") stay whole, as Hugging Face does.
One difference remains: the library classes characters with older Unicode tables (about
version 8, 2015) than Python's, so on marks and punctuation added since then, mostly in rare
scripts, the two may disagree. The tests list the blocks where they agree.
"""

import unicodedata
from pathlib import Path

from .errors import CheckpointError

# CJK ideograph blocks, as the library has them. Chinese has no spaces between words, so BERT
# makes each ideograph its own word. Hangul and kana are not in these blocks.
CJK_RANGES = (
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0x3400, 0x4DBF),  # Extension A
    (0x20000, 0x2A6DF),  # Extension B
    (0x2A700, 0x2B73F),  # Extension C
    (0x2B740, 0x2B81F),  # Extension D
    (0x2B920, 0x2CEAF),  # Extension E (Google's BERT starts it at 0x2B820)
    (0xF900, 0xFAFF),  # Compatibility Ideographs
    (0x2F800, 0x2FA1F),  # Compatibility Ideographs Supplement
)


def is_whitespace(char: str) -> bool:
    """Space, tab, newline, carriage return, or a Unicode separator (categories Zs, Zl, Zp)."""
    return char in " \t\n\r" or unicodedata.category(char) in ("Zs", "Zl", "Zp")


def is_control(char: str) -> bool:
    """A character BERT deletes: control (Cc), format (Cf), private use (Co) or surrogate (Cs).

    Tab, newline and carriage return are Cc too, but count as whitespace instead.
    """
    if char in "\t\n\r":
        return False
    return unicodedata.category(char) in ("Cc", "Cf", "Co", "Cs")


def is_punctuation(char: str) -> bool:
    """Unicode punctuation (P*), plus every ASCII symbol that is not a letter, digit or space.

    "$", "+", "^" and "`" are symbols (S*) in Unicode, but BERT splits on them too.
    """
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def is_cjk(char: str) -> bool:
    """True for a CJK ideograph (see CJK_RANGES)."""
    code = ord(char)
    return any(low <= code <= high for low, high in CJK_RANGES)


def strip_accents(text: str) -> str:
    """Remove accents: decompose (NFD, "é" -> "e" + U+0301) and drop the nonspacing marks (Mn)."""
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(char for char in decomposed if unicodedata.category(char) != "Mn")


def split_on_punctuation(word: str) -> list[str]:
    """Make every punctuation character its own piece: "don't!" -> ["don", "'", "t", "!"]."""
    pieces, current = [], ""
    for char in word:
        if is_punctuation(char):
            if current:
                pieces.append(current)
            pieces.append(char)
            current = ""
        else:
            current += char
    if current:
        pieces.append(current)
    return pieces


class BasicTokenizer:
    """Step 1: clean and normalise the text, then split it into words and punctuation.

    Args:
        lowercase: lower-case the text (uncased models).
        strip_accents: remove accents; None means "do it when lower-casing", BERT's default.
        tokenize_chinese_chars: make each CJK ideograph a word of its own.
    """

    def __init__(self, lowercase=True, strip_accents=None, tokenize_chinese_chars=True):
        self.lowercase = lowercase
        self.strip_accents = lowercase if strip_accents is None else strip_accents
        self.tokenize_chinese_chars = tokenize_chinese_chars

    def clean(self, text: str) -> str:
        """Delete NUL, U+FFFD (the replacement for undecodable bytes) and control characters;
        turn every kind of whitespace into a plain space."""
        out = []
        for char in text:
            if char in ("\0", "\ufffd") or is_control(char):
                continue
            out.append(" " if is_whitespace(char) else char)
        return "".join(out)

    def normalize(self, text: str) -> str:
        """Everything before the split: clean, space out ideographs, strip accents, lower-case."""
        text = self.clean(text)
        if self.tokenize_chinese_chars:
            text = "".join(f" {char} " if is_cjk(char) else char for char in text)
        if self.strip_accents:
            text = strip_accents(text)
        if self.lowercase:
            # One character at a time, as the library does: str.lower() on the whole string would
            # turn a word-final Greek capital sigma into the final form, which has another id.
            text = "".join(char.lower() for char in text)
        return text

    def tokenize(self, text: str) -> list[str]:
        """Normalise, split on spaces, then split each word on punctuation."""
        words = []
        for word in self.normalize(text).split(" "):
            if word:  # consecutive spaces leave empty strings
                words.extend(split_on_punctuation(word))
        return words


class WordPiece:
    """Step 2: split one word into vocabulary pieces, greedily, longest match first.

    The first piece must match the start of the word; later pieces are looked up with the "##"
    prefix ("playing" -> "play", "##ing"). If some part of the word matches nothing, or the word is
    longer than `max_chars` characters, the whole word becomes the unknown token.
    """

    def __init__(self, vocab: dict, unk_token="[UNK]", max_chars=100, prefix="##"):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_chars = max_chars
        self.prefix = prefix

    def tokenize(self, word: str) -> list[str]:
        """The pieces of `word`, e.g. "unaffable" -> ["una", "##ffa", "##ble"]."""
        if len(word) > self.max_chars:
            return [self.unk_token]
        pieces, start = [], 0
        while start < len(word):
            # Try word[start:end] for end from the end of the word down to start + 1.
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                if piece in self.vocab:
                    break
            else:  # no break: not even a single character matched
                return [self.unk_token]
            pieces.append(piece)
            start = end
        return pieces


class WordPieceTokenizer:
    """BERT's full tokenizer from scratch: BasicTokenizer, then WordPiece, then [CLS]/[SEP].

    Args:
        vocab: a vocab.txt path (one token per line, the line number is the id) or a dict.
        lowercase, strip_accents, tokenize_chinese_chars: as in BasicTokenizer.
    """

    def __init__(self, vocab, lowercase=True, strip_accents=None, tokenize_chinese_chars=True):
        self.vocab = dict(vocab) if isinstance(vocab, dict) else read_vocab(vocab)
        self.basic = BasicTokenizer(lowercase, strip_accents, tokenize_chinese_chars)
        self.wordpiece = WordPiece(self.vocab, unk_token="[UNK]")
        # The special tokens the library's BERT tokenizer knows, if the vocab has them. Written in
        # the text, they are matched before any normalisation and kept whole.
        names = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
        self.special_tokens = [name for name in names if name in self.vocab]

    def split_special_tokens(self, text: str) -> list[str]:
        """Cut the raw text around special tokens: "a [MASK] b" -> ["a ", "[MASK]", " b"]."""
        chunks, start, i = [], 0, 0
        while i < len(text):
            # Our special tokens never overlap or contain one another, so the first match is it.
            match = next((name for name in self.special_tokens if text.startswith(name, i)), None)
            if match is None:
                i += 1
                continue
            chunks += [text[start:i], match]
            i = start = i + len(match)
        chunks.append(text[start:])
        return [chunk for chunk in chunks if chunk]

    def tokenize(self, text: str) -> list[str]:
        """Word pieces of `text`, without [CLS]/[SEP]."""
        tokens = []
        for chunk in self.split_special_tokens(text):
            if chunk in self.special_tokens:
                tokens.append(chunk)
                continue
            for word in self.basic.tokenize(chunk):
                tokens.extend(self.wordpiece.tokenize(word))
        return tokens

    def encode(self, text: str, pair: str | None = None) -> list[int]:
        """Ids of "[CLS] text [SEP]", or "[CLS] text [SEP] pair [SEP]" when a pair is given."""
        tokens = ["[CLS]", *self.tokenize(text), "[SEP]"]
        if pair is not None:
            tokens += [*self.tokenize(pair), "[SEP]"]
        return [self.vocab[token] for token in tokens]


def read_vocab(path) -> dict:
    """Read a vocab.txt: one token per line, its line number (from 0) is its id.

    As Hugging Face reads it: only the newline is stripped, and a repeated token keeps its last id.
    A missing, unreadable or empty file raises CheckpointError.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"cannot read the vocabulary {path}: {e}") from e
    vocab = {line.rstrip("\n"): index for index, line in enumerate(lines)}
    if not vocab:
        raise CheckpointError(f"the vocabulary {path} is empty: expected one token per line")
    return vocab
