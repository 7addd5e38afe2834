"""Pretraining data: masked-language-model masking and sentence-pair examples.

1. Masking (Devlin et al. 2018, section 3.1): choose 15% of the maskable tokens (never special
   tokens, never padding) for the model to predict; of those, 80% become [MASK], 10% a random
   token and 10% stay as they are, so the model cannot learn that only [MASK] needs predicting.
   `mask_tokens` draws a new mask on every call (RoBERTa's dynamic masking), so each epoch sees
   other masks. Whole-word masking chooses words instead of word pieces.
2. Sentence pairs "[CLS] A [SEP] B [SEP]" for BERT's next sentence prediction (NSP) and ALBERT's
   sentence order prediction (SOP, Lan et al. 2019), built as google-research/bert's
   create_pretraining_data.py builds them (differences are marked "Unlike Google's code").

Every random choice comes from the np.random.Generator passed in: same seed, same output.
Shapes: B sequences in a batch, T tokens per row, V vocabulary size, W words in a batch.
"""

from functools import lru_cache

import numpy as np

from ..config import IGNORE_INDEX
from ..errors import MinibertError
from .text import split_sentences

MLM_PROBABILITY = 0.15  # share of the maskable tokens the model predicts
MASK_SHARE, RANDOM_SHARE = 0.8, 0.1  # of the chosen tokens; the remaining 10% stay unchanged


def mask_tokens(
    input_ids,
    maskable,
    rng,
    vocab_size,
    mask_token_id,
    mlm_probability=MLM_PROBABILITY,
    special_ids=(),
    continuation=None,
):
    """Choose tokens to predict and corrupt them with BERT's 80/10/10 recipe.

    maskable: (B, T) nonzero where a token may be chosen; the attention mask will do, as ids in
    special_ids are never chosen, nor drawn as random tokens. continuation: optional (V,) bool,
    True for pieces that continue a word ("##ing"): then whole words are chosen.
    Shapes: input_ids (B, T) -> masked_ids (B, T) int64, labels (B, T) int64 (-100: not chosen)
    """
    ids = _check_ids(input_ids, vocab_size)
    can_choose = np.asarray(maskable) != 0  # (B, T)
    if can_choose.shape != ids.shape:
        raise MinibertError(f"maskable has shape {can_choose.shape}, input_ids {ids.shape}")
    if not isinstance(rng, np.random.Generator):
        raise MinibertError(f"rng must be an np.random.Generator, got {type(rng).__name__}")
    if not 0.0 <= mlm_probability <= 1.0:
        raise MinibertError(f"mlm_probability must be in [0, 1], got {mlm_probability}")
    if not 0 <= mask_token_id < vocab_size:
        raise MinibertError(f"mask_token_id {mask_token_id} is outside the vocabulary")
    special = np.asarray(sorted(special_ids), dtype=np.int64)
    candidates = np.setdiff1d(np.arange(vocab_size), special)  # ids a random token can take
    if len(candidates) == 0:
        raise MinibertError("every id is special: no id is left for random replacements")
    B, T = ids.shape
    can_choose &= ~np.isin(ids, special)

    # Words: a maskable token starts a word unless it continues the maskable token before it.
    # Without `continuation` every maskable token is a word of its own.
    starts = can_choose.copy()  # (B, T)
    if continuation is not None:
        continuation = np.asarray(continuation, dtype=bool)
        if continuation.shape != (vocab_size,):
            raise MinibertError(f"continuation has shape {continuation.shape}, not ({vocab_size},)")
        starts[:, 1:] &= ~(continuation[ids[:, 1:]] & can_choose[:, :-1])
    word_of = np.cumsum(starts.ravel()).reshape(B, T) - 1  # (B, T) word index, where can_choose
    word_row = np.nonzero(starts)[0]  # (W,) the row of each word
    W = len(word_row)
    word_length = np.bincount(word_of[can_choose], minlength=W)  # (W,)

    # Google's code predicts round(0.15 n) tokens of a row of n; we round p n up or down at random
    # (stochastic rounding), so the expected count is exactly p n, even on short rows. transformers
    # draws a Bernoulli(p) per token instead: the same mean, but the count varies much more.
    row_count = can_choose.sum(1)  # (B,)
    target = np.floor(mlm_probability * row_count + rng.random(B))  # (B,)
    # Take each row's words in a random order until `target` tokens are covered. The word that
    # crosses the target is taken with probability (the part of it that fits) / (its length), so
    # whole words also cover p n tokens on average; a one-token word never crosses it.
    order = np.lexsort((rng.random(W), word_row))  # (W,) by row, then at random within a row
    length = word_length[order]  # (W,)
    row_start = np.concatenate([[0], np.cumsum(row_count)[:-1]])  # (B,) tokens in earlier rows
    before = np.cumsum(length) - length - row_start[word_row[order]]  # (W,) covered before
    take = np.zeros(W + 1, dtype=bool)  # the extra last entry stays False for unmaskable places
    take[order] = before + length * rng.random(W) < target[word_row[order]]
    chosen = take[np.where(can_choose, word_of, W)]  # (B, T)

    # 80% [MASK], 10% a random non-special token, 10% unchanged: one draw per chosen token.
    masked_ids = ids.copy()
    rows, cols = np.nonzero(chosen)
    draw = rng.random(len(rows))
    to_mask = draw < MASK_SHARE
    to_random = (draw >= MASK_SHARE) & (draw < MASK_SHARE + RANDOM_SHARE)
    masked_ids[rows[to_mask], cols[to_mask]] = mask_token_id
    random_ids = candidates[rng.integers(len(candidates), size=int(to_random.sum()))]
    masked_ids[rows[to_random], cols[to_random]] = random_ids
    labels = np.where(chosen, ids, IGNORE_INDEX)  # (B, T)
    return masked_ids, labels


def _check_ids(input_ids, vocab_size) -> np.ndarray:
    """input_ids as a 2-D int64 array of ids in [0, vocab_size)."""
    ids = np.asarray(input_ids)
    if ids.ndim != 2 or ids.dtype.kind not in "iu":
        raise MinibertError(f"input_ids must be a 2-D integer array, got {ids.ndim}-D {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise MinibertError(f"input_ids must be in [0, {vocab_size}), got {ids.min()}..{ids.max()}")
    return ids.astype(np.int64)


@lru_cache(maxsize=8)
def word_continuations(tokenizer) -> np.ndarray:
    """(V,) bool, True for WordPiece pieces that continue a word ("##ing"): whole-word masking.

    Only WordPiece marks continuations; BPE and Unigram mark word starts instead, so they raise.
    The array is cached per tokenizer and read-only.
    """
    model = tokenizer.backend.model
    if type(model).__name__ != "WordPiece":
        raise MinibertError(f"whole-word masking needs a WordPiece tokenizer, got {tokenizer!r}")
    prefix = model.continuing_subword_prefix
    flags = np.zeros(tokenizer.vocab_size, dtype=bool)
    for token, token_id in tokenizer.backend.get_vocab(with_added_tokens=True).items():
        flags[token_id] = token.startswith(prefix) and len(token) > len(prefix)
    flags.setflags(write=False)
    return flags


def mask_batch(batch, tokenizer, rng, mlm_probability=MLM_PROBABILITY, whole_word=False) -> dict:
    """A copy of a batch (from data.batches) with input_ids masked and MLM labels added.

    Padding (attention_mask 0) and the tokenizer's special tokens are never chosen.
    Shapes: batch input_ids, attention_mask (B, T) -> the same plus labels (B, T) int64.
    """
    if tokenizer.mask_token_id is None:
        raise MinibertError(f"the tokenizer has no mask token: {tokenizer!r}")
    masked_ids, labels = mask_tokens(
        batch["input_ids"],
        batch["attention_mask"],
        rng,
        tokenizer.vocab_size,
        tokenizer.mask_token_id,
        mlm_probability,
        special_ids=tokenizer.special_ids,
        continuation=word_continuations(tokenizer) if whole_word else None,
    )
    return {**batch, "input_ids": masked_ids, "labels": labels}


# Part 2: sentence pairs.


def make_nsp_examples(documents, tokenizer, max_length, rng, short_seq_prob=0.1) -> list[dict]:
    """BERT's next-sentence pairs: B follows A in its document, or (half the time) is random.

    documents: a list of documents, each a list of sentences or a text (cut by split_sentences).
    next_sentence_label is 1 when B is random, 0 when it follows A, as in transformers.
    Shapes: each example: input_ids, token_type_ids (T_i <= max_length,) int64, label () int64.
    """
    return _pair_examples(documents, tokenizer, max_length, rng, short_seq_prob, "nsp")


def make_sop_examples(documents, tokenizer, max_length, rng, short_seq_prob=0.1) -> list[dict]:
    """ALBERT's sentence-order pairs: two consecutive segments of one document, half swapped.

    documents: as make_nsp_examples. sentence_order_label is 1 when swapped (B came before A),
    0 in the original order, as in transformers.
    Shapes: each example: input_ids, token_type_ids (T_i <= max_length,) int64, label () int64.
    """
    return _pair_examples(documents, tokenizer, max_length, rng, short_seq_prob, "sop")


def _pair_examples(documents, tokenizer, max_length, rng, short_seq_prob, task) -> list[dict]:
    if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)):
        raise MinibertError(f"max_length must be an int, got {type(max_length).__name__}")
    if max_length < 5:  # [CLS] A [SEP] B [SEP] with one token in each segment
        raise MinibertError(f"max_length must be at least 5, got {max_length}")
    if not isinstance(rng, np.random.Generator):
        raise MinibertError(f"rng must be an np.random.Generator, got {type(rng).__name__}")
    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise MinibertError(f"sentence pairs need cls and sep tokens: {tokenizer!r}")
    docs = _tokenize_documents(documents, tokenizer)
    if task == "nsp" and len(docs) < 2:
        raise MinibertError(f"NSP needs at least 2 non-empty documents, got {len(docs)}")
    key = "next_sentence_label" if task == "nsp" else "sentence_order_label"  # model arguments
    examples = []
    for index in range(len(docs)):
        for a, b, label in _document_pairs(docs, index, max_length - 3, rng, short_seq_prob, task):
            tokens = [tokenizer.cls_token_id, *a, tokenizer.sep_token_id, *b]
            tokens.append(tokenizer.sep_token_id)
            example = {
                "input_ids": np.array(tokens, dtype=np.int64),
                "token_type_ids": np.array([0] * (len(a) + 2) + [1] * (len(b) + 1), np.int64),
                key: np.int64(label),
            }
            examples.append(example)
    return examples


def _tokenize_documents(documents, tokenizer) -> list[list[list[int]]]:
    """Documents as lists of sentences as lists of ids; empty sentences and documents dropped."""
    if isinstance(documents, str) or not isinstance(documents, (list, tuple)):
        raise MinibertError(f"documents must be a list, got {type(documents).__name__}")
    sentences, owners = [], []  # every sentence of the corpus and its document
    for index, document in enumerate(documents):
        document = split_sentences(document) if isinstance(document, str) else document
        if not isinstance(document, (list, tuple)):
            kind = type(document).__name__
            raise MinibertError(f"documents[{index}] must be a text or a list of str, got {kind}")
        for position, sentence in enumerate(document):
            if not isinstance(sentence, str):
                kind = type(sentence).__name__
                raise MinibertError(f"documents[{index}][{position}] must be a str, got {kind}")
        sentences += document
        owners += [index] * len(document)
    # One batched call for the whole corpus is much faster than one call per sentence.
    encoded = tokenizer.backend.encode_batch(sentences, add_special_tokens=False)
    docs = [[] for _ in documents]
    for owner, encoding in zip(owners, encoded, strict=True):
        if encoding.ids:
            docs[owner].append(list(encoding.ids))
    return [doc for doc in docs if doc]


def _document_pairs(docs, index, max_tokens, rng, short_seq_prob, task):
    """Yield (A, B, label) from document `index`, following Google's create_instances_from_document.

    Sentences are gathered into a chunk until it reaches the target length; a random number of
    them go to A and the rest to B. NSP: half the time B is instead taken from another document,
    and the sentences not used go back to be used next. SOP: half the time A and B are swapped.
    """
    document = docs[index]
    # Usually fill the whole sequence; sometimes (short_seq_prob) aim shorter, so the model also
    # sees the short inputs of fine-tuning.
    target = max_tokens
    if rng.random() < short_seq_prob:
        target = int(rng.integers(2, max_tokens + 1))
    chunk, length, i = [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        length += len(document[i])
        if i == len(document) - 1 or length >= target:
            a_end = int(rng.integers(1, len(chunk))) if len(chunk) >= 2 else 1
            a = [token for sentence in chunk[:a_end] for token in sentence]
            b = [token for sentence in chunk[a_end:] for token in sentence]
            label = int(rng.random() < 0.5)  # a fair coin; NSP: 1 = B is random, SOP: 1 = swapped
            if not b and (task == "sop" or not label):
                # A one-sentence chunk has no next segment. Unlike Google's code, which then always
                # takes B from another document (so NSP labels lean to "random" and SOP pairs mix
                # documents), we cut the sentence in two at a random token.
                if len(a) >= 2:
                    cut = int(rng.integers(1, len(a)))
                    a, b = a[:cut], a[cut:]
                elif task == "nsp":
                    label = 1  # a one-token sentence: B can only be random
                else:
                    chunk, length, i = [], 0, i + 1
                    continue  # one token has no order to predict
            if task == "nsp" and label:
                b = _random_segment(docs, index, target - len(a), rng)
                i -= len(chunk) - a_end  # put the unused sentences back
            elif task == "sop" and label:
                a, b = b, a
            yield _truncate_pair(a, b, max_tokens, rng) + (label,)
            chunk, length = [], 0
        i += 1


def _random_segment(docs, index, target_length, rng) -> list[int]:
    """Consecutive sentences from a random place in another document, until target_length."""
    # Unlike Google's code, which retries up to 10 times to miss `index`, one draw suffices.
    other = int(rng.integers(len(docs) - 1))
    other += other >= index
    document = docs[other]
    segment = []
    for sentence in document[int(rng.integers(len(document))) :]:
        segment += sentence
        if len(segment) >= target_length:
            break
    return segment


def _truncate_pair(a, b, max_tokens, rng) -> tuple:
    """Cut the longer segment (B on ties) one token at a time, from the front or back at random,
    until both fit in max_tokens. Cutting both ends avoids a bias towards sentence starts."""
    a_start, a_stop, b_start, b_stop = 0, len(a), 0, len(b)
    excess = len(a) + len(b) - max_tokens
    for from_front in rng.random(max(excess, 0)) < 0.5:
        if a_stop - a_start > b_stop - b_start:
            a_start, a_stop = (a_start + 1, a_stop) if from_front else (a_start, a_stop - 1)
        else:
            b_start, b_stop = (b_start + 1, b_stop) if from_front else (b_start, b_stop - 1)
    return a[a_start:a_stop], b[b_start:b_stop]
