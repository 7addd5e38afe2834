"""Tokenized examples and padded batches.

`text_examples` and `classification_examples` tokenize texts into examples (one dict of arrays
per text, without padding); `batches` groups examples of similar length (so little padding is
wasted), pads them with `collate` and yields dicts of arrays ready for `model(**batch)`;
`count_tokens` counts the real tokens of a batch.

Every random choice comes from the np.random.Generator passed in: same seed, same output.
Shapes: B examples in a batch, T tokens per row after padding, N examples in a data set.
"""

import numpy as np

from ..config import IGNORE_INDEX
from ..errors import MinibertError

# Padding for per-token fields other than input_ids, which is padded with the tokenizer's pad id.
PAD_VALUES = {"attention_mask": 0, "token_type_ids": 0, "labels": IGNORE_INDEX}
BUCKET_BATCHES = 50  # batches per sorted chunk, as in transformers' group_by_length
CHUNK = 1024  # texts tokenized per call: keeps the padded arrays small


def text_examples(texts, tokenizer, max_length: int = 128, text_pairs=None) -> list[dict]:
    """Tokenize texts (or text pairs) into examples for `batches`, cut to max_length tokens,
    with no labels and no masking. The tokenizer needs a pad token.
    Shapes: each example: input_ids, token_type_ids (T_i,) int64.
    """
    examples = []
    for start in range(0, len(texts), CHUNK):
        pairs = None if text_pairs is None else list(text_pairs[start : start + CHUNK])
        encoded = tokenizer(list(texts[start : start + CHUNK]), pairs, max_length=max_length)
        for row, length in enumerate(encoded["attention_mask"].sum(1)):
            examples.append(
                {
                    "input_ids": encoded["input_ids"][row, :length],
                    "token_type_ids": encoded["token_type_ids"][row, :length],
                }
            )
    return examples


def classification_examples(texts, labels, tokenizer, max_length=128, text_pairs=None) -> list:
    """text_examples with a label each. labels: one int per text (e.g. LabelledTexts.label_ids),
    or one float row of 0/1 per text for multi-label classification.
    Shapes: each example: input_ids, token_type_ids (T_i,) int64, labels () int64 or (K,)
    float32.
    """
    if len(labels) != len(texts):
        raise MinibertError(f"{len(texts)} texts but {len(labels)} labels: give one per text")
    examples = text_examples(texts, tokenizer, max_length, text_pairs)
    for example, label in zip(examples, labels, strict=True):
        label = np.asarray(label)
        example["labels"] = label.astype(np.float32) if label.ndim else np.int64(label)
    return examples


def collate(examples: list, pad_id: int) -> dict:
    """Pad a list of examples into one batch.

    Each example is a dict with a 1-D "input_ids" and any other fields: integer 1-D arrays as
    long as input_ids (padded with PAD_VALUES, else 0), or what each sequence has once, stacked:
    scalars (a label) or float arrays of one shape (multi-label targets, K each).
    Shapes: -> input_ids, attention_mask and per-token fields (B, T) int64; scalars (B,);
    float arrays (B, K).
    """
    if not examples:
        raise MinibertError("cannot collate an empty list of examples")
    lengths = [len(example["input_ids"]) for example in examples]
    B, T = len(examples), max(lengths)
    batch = {"input_ids": np.full((B, T), pad_id, dtype=np.int64)}
    batch["attention_mask"] = (np.arange(T) < np.array(lengths)[:, None]).astype(np.int64)
    keys = list(examples[0])
    for index, example in enumerate(examples):
        if list(example) != keys:
            raise MinibertError(f"example {index} has fields {list(example)}, the first {keys}")
    for key in keys:
        if key == "attention_mask":
            continue  # rebuilt above from the lengths
        values = [np.asarray(example[key]) for example in examples]
        if all(value.ndim == 0 for value in values):
            stacked = np.array(values)
            batch[key] = stacked.astype(np.int64) if stacked.dtype.kind in "iub" else stacked
            continue
        if key != "input_ids" and all(value.dtype.kind == "f" for value in values):
            shapes = {value.shape for value in values}
            if len(shapes) > 1:
                raise MinibertError(f"{key} has shapes {sorted(shapes)}: expected one shape")
            batch[key] = np.stack(values)  # (B, K)
            continue
        if key != "input_ids":
            batch[key] = np.full((B, T), PAD_VALUES.get(key, 0), dtype=np.int64)
        for row, value in enumerate(values):
            if value.shape != (lengths[row],):
                raise MinibertError(
                    f"example {row}: {key} has shape {value.shape}, expected "
                    f"({lengths[row]},) like its input_ids, or a scalar"
                )
            batch[key][row, : lengths[row]] = value
    return batch


def batches(examples, batch_size, rng=None, *, pad_id, shuffle=True, bucket=True, drop_last=False):
    """Padded batches over every example once, with similar lengths batched together.

    Bucketing: shuffle, cut into chunks of BUCKET_BATCHES batches, sort each chunk by length, cut
    it into batches, then shuffle the order of the batches. The last batch may be smaller (dropped
    with drop_last). rng is needed only with shuffle=True. Returns an iterator of collate() dicts.
    Shapes: each batch: input_ids, attention_mask, token_type_ids (B, T) int64; labels as collate.
    """
    examples = list(examples)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise MinibertError(f"batch_size must be a positive int, got {type(batch_size).__name__}")
    if batch_size < 1:
        raise MinibertError(f"batch_size must be a positive int, got {batch_size}")
    if shuffle and not isinstance(rng, np.random.Generator):
        raise MinibertError("shuffle=True needs rng, an np.random.Generator")
    n = len(examples)
    order = rng.permutation(n) if shuffle else np.arange(n)  # (N,)
    if bucket:
        lengths = np.array([len(example["input_ids"]) for example in examples], dtype=np.int64)
        chunks = np.split(order, range(batch_size * BUCKET_BATCHES, n, batch_size * BUCKET_BATCHES))
        # A stable sort keeps the shuffled order among examples of equal length.
        order = np.concatenate([c[np.argsort(lengths[c], kind="stable")] for c in chunks])
    groups = [order[start : start + batch_size] for start in range(0, n, batch_size)]
    if drop_last and groups and len(groups[-1]) < batch_size:
        groups.pop()
    if shuffle and bucket:  # else batch lengths would grow through each chunk
        groups = [groups[i] for i in rng.permutation(len(groups))]
    return (collate([examples[i] for i in group], pad_id) for group in groups)


def count_tokens(batch: dict) -> int:
    """Real (not padding) tokens in a batch, for tokens-per-second reports."""
    return int(np.asarray(batch["attention_mask"]).sum())
