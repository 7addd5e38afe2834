"""One text (or a question and its context) encoded with everything the task pipelines read:
ids, character offsets, which tokens are special, which word and which sequence each token
belongs to, and, for long texts, the overlapping windows.

Each window is a plain dict of lists, one entry per token:
    input_ids, attention_mask, token_type_ids   what the model takes
    offsets            (start, end) characters of the token in its own text ((0, 0) if special)
    special_tokens_mask   1 for [CLS], [SEP], `<s>`, ... added by the tokenizer
    word_ids           index of the word the token comes from, None for special tokens
    sequence_ids       0 for the first text, 1 for the second (the pair), None for special tokens
"""

from ..errors import InputError


def encode_windows(
    tokenizer,
    text: str,
    pair: str | None = None,
    max_length: int | None = None,
    stride: int = 0,
    truncation: str = "longest_first",
    overflow: bool = False,
) -> list[dict]:
    """Encode `text` (and `pair`) with special tokens, cut to max_length tokens.

    With overflow=True the tokens cut off are not dropped: they come back as further windows,
    each overlapping the one before by `stride` tokens of the truncated text (transformers'
    return_overflowing_tokens with stride). max_length None is the tokenizer's own limit.
    Returns the windows in text order.
    """
    try:
        enc = tokenizer(
            text,
            None if pair is None else [pair],
            padding=True,  # windows of a long text differ in length; each is cut back below
            truncation=truncation,
            max_length=max_length,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            return_overflowing_tokens=overflow,
            stride=stride,
        )
    except InputError:
        raise
    except ValueError as e:  # e.g. a question that leaves no room for its context
        raise InputError(f"cannot encode the text for this task: {e}") from e
    return [_window(enc, row) for row in range(len(enc["input_ids"]))]


def _window(enc, row: int) -> dict:
    """Row `row` of a Tokenizer call as lists, without the padding at its end."""
    T = int(enc["attention_mask"][row].sum())  # the row's true length: padding comes last
    return {
        "input_ids": enc["input_ids"][row, :T].tolist(),
        "attention_mask": enc["attention_mask"][row, :T].tolist(),
        "token_type_ids": enc["token_type_ids"][row, :T].tolist(),
        "offsets": [tuple(o) for o in enc["offset_mapping"][row, :T].tolist()],
        "special_tokens_mask": enc["special_tokens_mask"][row, :T].tolist(),
        "word_ids": enc.word_ids(row)[:T],
        "sequence_ids": enc.sequence_ids(row)[:T],
    }


def tokens_to_string(tokenizer, tokens: list[str]) -> str:
    """Tokens joined back into text by the tokenizer's decoder ("new", "##er" -> "newer")."""
    decoder = tokenizer.backend.decoder
    return decoder.decode(tokens) if decoder is not None else " ".join(tokens)
