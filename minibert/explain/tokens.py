"""The tokenization part of the explain report: each word piece with its character offsets,
and the word-piece -> word map read the other way (each word and the pieces it was cut into).

    tokens = token_rows(encoding, tokenizer)   # [Token], from a one-row Encoding with offsets
    words = word_rows(tokens, text, pair)      # [Word]
"""

from dataclasses import dataclass


@dataclass
class Token:
    """One word piece: its position, id and text, the characters it covers in its text
    (start, end), the word it belongs to (None for special tokens) and its text (0 or 1)."""

    index: int
    id: int
    text: str
    start: int
    end: int
    word: int | None
    sequence: int | None
    special: bool


@dataclass
class Word:
    """A word of the input and the word pieces (token positions) it was cut into."""

    sequence: int
    word: int
    text: str
    tokens: list


def token_rows(encoding, tokenizer) -> list:
    """The Token rows of a one-row Encoding made with offsets."""
    ids = encoding["input_ids"][0]
    offsets = encoding["offset_mapping"][0]
    words, sequences = encoding.word_ids(0), encoding.sequence_ids(0)
    texts = encoding.tokens(0)
    special = tokenizer.special_ids
    return [
        Token(
            index=i,
            id=int(ids[i]),
            text=texts[i],
            start=int(offsets[i][0]),
            end=int(offsets[i][1]),
            word=words[i],
            sequence=sequences[i],
            special=int(ids[i]) in special,
        )
        for i in range(len(ids))
    ]


def bare_token_rows(ids) -> list:
    """Token rows for ids without a tokenizer: named by their ids."""
    return [Token(i, int(t), f"#{int(t)}", 0, 0, None, None, False) for i, t in enumerate(ids)]


def word_rows(tokens, text, pair) -> list:
    """The word-piece -> word map read backwards: each word, its text and its pieces."""
    words = {}
    for token in tokens:
        if token.word is None:
            continue
        key = (token.sequence or 0, token.word)
        words.setdefault(key, []).append(token)
    sources = (text, pair)
    return [
        Word(
            sequence=seq,
            word=word,
            text=sources[seq][pieces[0].start : pieces[-1].end],
            tokens=[t.index for t in pieces],
        )
        for (seq, word), pieces in words.items()
    ]
