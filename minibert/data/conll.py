"""Token-classification data: CoNLL-style files read into sentences, tags moved onto sub-tokens.

The file format (CoNLL-2003's, and the one transformers' token-classification examples read):
one token per line with its tag in the last whitespace-separated column (columns between, such
as CoNLL-2003's part-of-speech and chunk tags, are skipped), a blank line between sentences,
and `-DOCSTART-` lines ignored:

    EU B-ORG
    rejects O
    German B-MISC

A model sees sub-tokens, not words, so each word's tag goes on the word's first sub-token and
every other sub-token (and each special token) gets IGNORE_INDEX, which the loss skips: the
default of transformers' examples (label_all_tokens=False). The sentence is tokenized as its
words joined by single spaces; each sub-token belongs to the word its last character falls in
(character offsets). For WordPiece that equals tokenizing the words one by one, as
transformers does with is_split_into_words=True; for byte-level BPE (RoBERTa) the first word
gets no leading space, as in running text.
Shapes: N sentences, T_i sub-tokens of sentence i.
"""

import bisect
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import IGNORE_INDEX
from ..errors import MinibertError

DOCUMENT_START = "-DOCSTART-"


@dataclass
class TaggedSentences:
    """What read_conll returns: N sentences of words, the tag id of each word, the tag names.

    tag_ids[i] is an int64 array as long as words[i], indices into label_names (sorted, as
    transformers' examples sort them).
    """

    words: list
    tag_ids: list
    label_names: list


def read_conll(path) -> TaggedSentences:
    """Read a CoNLL-style file (see the module docstring); MinibertError naming the line for a
    line with no tag, or a file with no sentence."""
    path = Path(path)
    if not path.is_file():
        raise MinibertError(
            f"{path} does not exist" if not path.exists() else f"{path} is not a file"
        )
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise MinibertError(f"cannot read {path}: {e}") from e
    sentences, current = [], []
    for number, line in enumerate([*lines, ""], start=1):  # a blank line ends the last sentence
        fields = line.split()
        if not fields or fields[0] == DOCUMENT_START:
            if current:
                sentences.append(current)
            current = []
            continue
        if len(fields) < 2:
            raise MinibertError(
                f"{path} line {number} has no tag: expected a token and its tag, e.g. 'Paris "
                f"B-LOC', got {line.strip()!r}"
            )
        current.append((fields[0], fields[-1]))
    if not sentences:
        raise MinibertError(f"{path} has no sentences: expected lines of 'token tag'")
    label_names = sorted({tag for sentence in sentences for _, tag in sentence})
    ids = {name: index for index, name in enumerate(label_names)}
    return TaggedSentences(
        words=[[word for word, _ in sentence] for sentence in sentences],
        tag_ids=[np.array([ids[tag] for _, tag in sentence], np.int64) for sentence in sentences],
        label_names=label_names,
    )


def word_of_tokens(words, offsets, special_mask) -> list:
    """The index of the word each sub-token belongs to (None for special tokens), given the
    sub-tokens' character offsets in " ".join(words)."""
    starts, position = [], 0
    for word in words:
        starts.append(position)
        position += len(word) + 1  # the word and one space
    owners = []
    for (start, end), special in zip(offsets, special_mask, strict=True):
        if special or end <= start:
            owners.append(None)
        else:  # the token's last character: a leading space (byte-level BPE) cannot mislead
            owners.append(bisect.bisect_right(starts, end - 1) - 1)
    return owners


def token_classification_examples(words, tag_ids, tokenizer, max_length: int = 128) -> list:
    """One example per sentence: input_ids, token_type_ids and per-token labels, the tag of each
    word on its first sub-token and IGNORE_INDEX elsewhere; cut to max_length sub-tokens (the
    words cut off are not trained on).
    Shapes: each example: input_ids, token_type_ids, labels (T_i,) int64.
    """
    if len(words) != len(tag_ids):
        raise MinibertError(f"{len(words)} sentences but {len(tag_ids)} tag lists")
    backend = tokenizer.backend
    room = max_length - backend.num_special_tokens_to_add(False)
    if room < 1:
        raise MinibertError(f"max_length={max_length} leaves no room beside the special tokens")
    examples = []
    for index, (sentence, tags) in enumerate(zip(words, tag_ids, strict=True)):
        if len(sentence) != len(tags):
            raise MinibertError(f"sentence {index} has {len(sentence)} words but {len(tags)} tags")
        content = backend.encode(" ".join(sentence), add_special_tokens=False)
        content.truncate(room)
        encoding = backend.post_process(content)  # the special tokens around it
        owners = word_of_tokens(sentence, encoding.offsets, encoding.special_tokens_mask)
        labels, previous = [], None
        for owner in owners:
            first = owner is not None and owner != previous
            labels.append(int(tags[owner]) if first else IGNORE_INDEX)
            previous = owner if owner is not None else previous
        examples.append(
            {
                "input_ids": np.array(encoding.ids, np.int64),
                "token_type_ids": np.array(encoding.type_ids, np.int64),
                "labels": np.array(labels, np.int64),
            }
        )
    return examples
