"""Tests of minibert/data/: text.py, batches.py and masking.py.

Tokenizers are built here: one whose every corpus word is a whole token that occurs once, so each
id tells the document and the place it came from (sentence-pair tests), and one WordPiece
vocabulary trained on generated words, so words split into "##" pieces (whole-word masking).
"""

import bz2
import json

import numpy as np
import pytest
import tokenizers
from hypothesis import given
from hypothesis import strategies as st
from tokenizers import models, normalizers, pre_tokenizers, processors, trainers

from minibert.config import IGNORE_INDEX
from minibert.data.batches import batches, classification_examples, collate, count_tokens
from minibert.data.masking import (
    make_nsp_examples,
    make_sop_examples,
    mask_batch,
    mask_tokens,
    word_continuations,
)
from minibert.data.text import documents_from_text, group_split, read_labelled, split_sentences
from minibert.tokenizer import Tokenizer

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0 to 4
PAD, CLS, SEP, MASK = 0, 2, 3, 4
SYLLABLES = ["ka", "lo", "mi", "tre", "su", "van", "or", "pel", "dax", "in", "ru", "zo"]


def wrap(backend, vocab_of) -> Tokenizer:
    """BERT's normaliser, pre-tokenizer and [CLS]/[SEP] template around a WordPiece model."""
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab_of("[CLS]")), ("[SEP]", vocab_of("[SEP]"))],
    )
    return backend


def make_corpus(seed=0, num_documents=400):
    """Documents of 1-12 sentences of 2-14 words; every word is new ("w0", "w1", ...), so its
    token id is its place in the corpus. A few documents have a single sentence."""
    rng = np.random.default_rng(seed)
    documents, count = [], 0
    for _ in range(num_documents):
        document = []
        for _ in range(int(rng.integers(1, 13))):
            words = int(rng.integers(2, 15))
            document.append(" ".join(f"w{count + k}" for k in range(words)) + " .")
            count += words
        documents.append(document)
    return documents, count


@pytest.fixture(scope="module")
def corpus():
    return make_corpus()[0]


@pytest.fixture(scope="module")
def word_tokenizer():
    """Ids 0-4 are the specials, 5 is ".", and "wK" has id 6 + K."""
    _, count = make_corpus()
    vocab = {token: i for i, token in enumerate([*SPECIALS, ".", *(f"w{k}" for k in range(count))])}
    backend = tokenizers.Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.add_special_tokens(SPECIALS)
    return Tokenizer.from_tokenizers(wrap(backend, vocab.get))


def generated_words(rng, count):
    return ["".join(rng.choice(SYLLABLES, size=rng.integers(1, 5))) for _ in range(count)]


@pytest.fixture(scope="module")
def wordpiece():
    """A 120-token WordPiece vocabulary trained on words of 1-4 generated syllables."""
    rng = np.random.default_rng(1)
    texts = [" ".join(generated_words(rng, 12)) for _ in range(300)]
    backend = tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.train_from_iterator(
        texts, trainers.WordPieceTrainer(vocab_size=120, special_tokens=SPECIALS)
    )
    return Tokenizer.from_tokenizers(wrap(backend, backend.token_to_id))


def random_batch(rng, B, T, vocab_size=100):
    """[CLS] ids [SEP] then padding, rows of random lengths 2..T. Shapes: (B, T) twice."""
    lengths = rng.integers(2, T + 1, size=B)
    ids = rng.integers(5, vocab_size, size=(B, T))
    ids[:, 0] = CLS
    ids[np.arange(B), lengths - 1] = SEP
    attention = (np.arange(T) < lengths[:, None]).astype(np.int64)
    return np.where(attention == 1, ids, PAD), attention


# Masking.


@given(
    seed=st.integers(0, 2**32 - 1),
    B=st.integers(1, 6),
    T=st.integers(2, 30),
    probability=st.floats(0, 1),
    whole_word=st.booleans(),
)
def test_masking_never_touches_specials_or_padding(seed, B, T, probability, whole_word):
    rng = np.random.default_rng(seed)
    ids, attention = random_batch(rng, B, T)
    continuation = rng.random(100) < 0.3 if whole_word else None
    masked, labels = mask_tokens(
        ids, attention, rng, 100, MASK, probability, set(range(5)), continuation
    )
    assert masked.dtype == labels.dtype == np.int64
    maskable = (attention == 1) & (ids >= 5)
    chosen = labels != IGNORE_INDEX
    assert not (chosen & ~maskable).any()  # never a special token or padding
    assert (masked[~chosen] == ids[~chosen]).all()  # labels are -100 exactly where not chosen
    assert (labels[chosen] == ids[chosen]).all()
    assert (masked[chosen] >= 4).all()  # [MASK], or a random token that is not special
    if not whole_word:  # p n rounded up or down in each row
        assert (np.abs(chosen.sum(1) - probability * maskable.sum(1)) < 1).all()


def test_masking_proportions_on_200k_tokens():
    rng = np.random.default_rng(0)
    ids, attention = random_batch(rng, 700, 600, vocab_size=30000)
    masked, labels = mask_tokens(ids, attention, rng, 30000, MASK, special_ids=set(range(5)))
    maskable = (attention == 1) & (ids >= 5)
    chosen = labels != IGNORE_INDEX
    assert maskable.sum() > 200_000
    assert abs(chosen.sum() / maskable.sum() - 0.15) < 0.005
    to_mask = (masked[chosen] == MASK).mean()
    kept = (masked[chosen] == ids[chosen]).mean()  # includes random draws of the same id (1/30k)
    assert abs(to_mask - 0.8) < 0.01
    assert abs(kept - 0.1) < 0.01
    assert abs(1 - to_mask - kept - 0.1) < 0.01


def test_masking_is_deterministic_for_a_seed_and_dynamic_across_calls():
    ids, attention = random_batch(np.random.default_rng(0), 8, 40)

    def mask(rng):
        return mask_tokens(ids, attention, rng, 100, MASK, special_ids=set(range(5)))

    first, again = mask(np.random.default_rng(7)), mask(np.random.default_rng(7))
    assert all((a == b).all() for a, b in zip(first, again, strict=True))
    rng = np.random.default_rng(7)
    one, two = mask(rng), mask(rng)  # one generator, two epochs
    assert (one[1] != two[1]).any()


def test_masking_all_or_nothing():
    ids, attention = random_batch(np.random.default_rng(0), 4, 20)
    maskable = (attention == 1) & (ids >= 5)
    rng = np.random.default_rng(0)
    _, labels = mask_tokens(ids, attention, rng, 100, MASK, 1.0, set(range(5)))
    assert ((labels != IGNORE_INDEX) == maskable).all()
    masked, labels = mask_tokens(ids, attention, rng, 100, MASK, 0.0, set(range(5)))
    assert (labels == IGNORE_INDEX).all()
    assert (masked == ids).all()


def test_whole_word_masking_masks_whole_words(wordpiece):
    rng = np.random.default_rng(0)
    texts = [" ".join(generated_words(rng, 30)) for _ in range(200)]
    batch = wordpiece(texts)
    continuation = word_continuations(wordpiece)
    assert continuation.sum() > 10  # the vocabulary does split words
    masked = mask_batch(batch, wordpiece, rng, whole_word=True)
    ids, chosen = batch["input_ids"], masked["labels"] != IGNORE_INDEX
    multi_piece_words = 0
    for row in range(len(texts)):
        encoding = wordpiece.backend.encode(texts[row])
        words = np.array([-1 if w is None else w for w in encoding.word_ids])
        words = np.pad(words, (0, ids.shape[1] - len(words)), constant_values=-1)
        for word in range(words.max() + 1):
            picked = chosen[row, words == word]
            assert picked.all() or not picked.any()  # a word is masked whole or not at all
            multi_piece_words += picked.all() and len(picked) > 1
    assert multi_piece_words > 50
    maskable = (batch["attention_mask"] == 1) & ~np.isin(ids, list(wordpiece.special_ids))
    assert abs(chosen.sum() / maskable.sum() - 0.15) < 0.01


def test_mask_batch_keeps_the_batch_and_adds_labels(wordpiece):
    batch = wordpiece(["kalo mitre su", "van"])
    before = {key: value.copy() for key, value in batch.items()}
    masked = mask_batch(batch, wordpiece, np.random.default_rng(0), mlm_probability=1.0)
    assert all((batch[key] == before[key]).all() for key in before)  # not changed in place
    assert set(masked) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    specials = np.isin(batch["input_ids"], list(wordpiece.special_ids))
    assert ((masked["labels"] == IGNORE_INDEX) == specials).all()


def test_word_continuations_needs_wordpiece():
    backend = tokenizers.Tokenizer(models.BPE({"a": 0, "[MASK]": 1}, []))
    with pytest.raises(ValueError, match="WordPiece"):
        word_continuations(Tokenizer.from_tokenizers(backend))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"input_ids": np.array([2, 5, 3])}, "2-D"),
        ({"input_ids": np.array([[2, 500, 3]])}, r"\[0, 100\)"),
        ({"maskable": np.ones((1, 4))}, "maskable has shape"),
        ({"mlm_probability": 1.5}, "mlm_probability"),
        ({"continuation": np.zeros(7, bool)}, "continuation has shape"),
        ({"rng": 0}, "Generator"),
    ],
)
def test_mask_tokens_rejects_bad_input(change, message):
    arguments = {
        "input_ids": np.array([[2, 5, 3]]),
        "maskable": np.ones((1, 3)),
        "rng": np.random.default_rng(0),
        "vocab_size": 100,
        "mask_token_id": MASK,
    }
    with pytest.raises(ValueError, match=message):
        mask_tokens(**{**arguments, **change})


# Sentence pairs.


def segments(example):
    """(A, B) token ids of "[CLS] A [SEP] B [SEP]", after checking that structure."""
    ids, types = example["input_ids"], example["token_type_ids"]
    assert ids.dtype == types.dtype == np.int64
    assert ids.shape == types.shape
    assert ids[0] == CLS
    assert ids[-1] == SEP
    assert (ids == SEP).sum() == 2
    middle = int(np.nonzero(ids == SEP)[0][0])
    assert (types[: middle + 1] == 0).all()
    assert (types[middle + 1 :] == 1).all()
    a, b = ids[1:middle], ids[middle + 1 : -1]
    assert len(a) >= 1
    assert len(b) >= 1
    assert (a >= 5).all()
    assert (b >= 5).all()
    return a, b


def places(segment):
    """Corpus places of a segment's words ("." dropped), checked to be one contiguous run."""
    words = segment[segment >= 6] - 6
    assert (np.diff(words) == 1).all()
    return words


def document_of_each_word(corpus):
    owners = [index for index, doc in enumerate(corpus) for s in doc for _ in s.split()[:-1]]
    return np.array(owners)


@pytest.mark.parametrize("max_length", [5, 24, 64])
def test_nsp_examples(corpus, word_tokenizer, max_length):
    rng = np.random.default_rng(0)
    examples = make_nsp_examples(corpus, word_tokenizer, max_length, rng)
    owner = document_of_each_word(corpus)
    labels = np.array([example["next_sentence_label"] for example in examples])
    for example, label in zip(examples, labels, strict=True):
        assert len(example["input_ids"]) <= max_length
        a, b = (places(segment) for segment in segments(example))
        if len(a) and len(b) and label == 0:  # B follows A in the same document
            assert len(set(owner[a]) | set(owner[b])) == 1
            assert a.max() < b.min()
        if len(a) and len(b) and label == 1:  # B comes from another document
            assert set(owner[a]).isdisjoint(owner[b])
    # A fair coin, even for one-sentence chunks: within 4 standard deviations of one half.
    assert abs(labels.mean() - 0.5) < 4 * 0.5 / np.sqrt(len(labels))


def test_sop_examples(corpus, word_tokenizer):
    owner = document_of_each_word(corpus)
    examples = make_sop_examples(corpus, word_tokenizer, 48, np.random.default_rng(0))
    labels = np.array([example["sentence_order_label"] for example in examples])
    for example, label in zip(examples, labels, strict=True):
        assert len(example["input_ids"]) <= 48
        a, b = (places(segment) for segment in segments(example))
        if len(a) and len(b):
            assert len(set(owner[a]) | set(owner[b])) == 1  # one document
            assert (a.max() < b.min()) if label == 0 else (b.max() < a.min())
    assert abs(labels.mean() - 0.5) < 4 * 0.5 / np.sqrt(len(labels))


def test_pairs_are_deterministic_and_short_when_asked(corpus, word_tokenizer):
    def make(seed, probability=0.1):
        rng = np.random.default_rng(seed)
        return make_nsp_examples(corpus, word_tokenizer, 128, rng, short_seq_prob=probability)

    first, again, other = make(5), make(5), make(6)
    assert [e["input_ids"].tolist() for e in first] == [e["input_ids"].tolist() for e in again]
    assert [e["input_ids"].tolist() for e in first] != [e["input_ids"].tolist() for e in other]
    mean_length = np.mean([len(e["input_ids"]) for e in make(5, 0.0)])
    assert np.mean([len(e["input_ids"]) for e in make(5, 1.0)]) < 0.8 * mean_length


def test_pairs_from_text_documents_and_bad_input(word_tokenizer):
    texts = ["W1 w2 w3. W4 w5. W6 w7 w8.", "W9 w10. W11 w12 w13."]
    examples = make_sop_examples(texts, word_tokenizer, 16, np.random.default_rng(0))
    assert examples
    assert all(len(segments(example)[0]) for example in examples)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="at least 2"):
        make_nsp_examples([["w1 w2", "w3"]], word_tokenizer, 16, rng)
    with pytest.raises(ValueError, match="at least 5"):
        make_sop_examples(texts, word_tokenizer, 4, rng)
    with pytest.raises(ValueError, match=r"documents\[1\]\[0\] must be a str"):
        make_sop_examples([["w1"], [3]], word_tokenizer, 16, rng)


# Batching.


def numbered_examples(rng, n):
    """Examples of random lengths whose ids repeat their number, with a per-token label."""
    examples = []
    for index in range(n):
        length = int(rng.integers(1, 40))
        examples.append(
            {
                "input_ids": np.full(length, 10 + index, dtype=np.int64),
                "token_type_ids": np.ones(length, dtype=np.int64),
                "labels": np.full(length, 7, dtype=np.int64),
                "index": index,
            }
        )
    return examples


@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 300),
    batch_size=st.integers(1, 40),
    shuffle=st.booleans(),
    bucket=st.booleans(),
    drop_last=st.booleans(),
)
def test_batches_cover_every_example_once(seed, n, batch_size, shuffle, bucket, drop_last):
    rng = np.random.default_rng(seed)
    examples = numbered_examples(rng, n)
    options = {"shuffle": shuffle, "bucket": bucket, "drop_last": drop_last}
    seen = []
    for batch in batches(examples, batch_size, rng, pad_id=PAD, **options):
        lengths = batch["attention_mask"].sum(1)
        for row, index in enumerate(batch["index"]):
            example = examples[index]
            assert lengths[row] == len(example["input_ids"])
            assert (batch["input_ids"][row, : lengths[row]] == example["input_ids"]).all()
        padding = batch["attention_mask"] == 0
        assert (batch["input_ids"][padding] == PAD).all()
        assert (batch["token_type_ids"][padding] == 0).all()
        assert (batch["labels"][padding] == IGNORE_INDEX).all()
        assert count_tokens(batch) == lengths.sum()
        assert all(value.dtype == np.int64 for value in batch.values())
        seen += batch["index"].tolist()
    expected = n - n % batch_size if drop_last else n
    assert len(seen) == len(set(seen)) == expected
    assert set(seen) <= set(range(n))
    if not shuffle and not bucket:
        assert seen == list(range(expected))


def test_bucketing_cuts_padding_and_is_deterministic():
    examples = numbered_examples(np.random.default_rng(0), 2000)

    def padded_tokens(bucket, seed=0):
        result = list(batches(examples, 32, np.random.default_rng(seed), pad_id=PAD, bucket=bucket))
        return sum(batch["input_ids"].size for batch in result), result

    plain, _ = padded_tokens(False)
    bucketed, first = padded_tokens(True)
    _, again = padded_tokens(True)
    real = sum(len(example["input_ids"]) for example in examples)
    assert bucketed - real < 0.1 * (plain - real)
    assert all((a["index"] == b["index"]).all() for a, b in zip(first, again, strict=True))
    assert sorted(len(batch["index"]) for batch in first)[0] == 2000 % 32  # the last is kept
    kept = batches(examples, 32, np.random.default_rng(0), pad_id=PAD, drop_last=True)
    assert {len(batch["index"]) for batch in kept} == {32}


def test_collate_and_batches_reject_bad_input():
    good = {"input_ids": np.arange(3), "labels": np.arange(3)}
    with pytest.raises(ValueError, match="shape"):
        collate([good, {"input_ids": np.arange(3), "labels": np.arange(2)}], PAD)
    with pytest.raises(ValueError, match="fields"):
        collate([good, {"input_ids": np.arange(3)}], PAD)
    with pytest.raises(ValueError, match="needs rng"):
        batches([good], 2, pad_id=PAD)
    with pytest.raises(ValueError, match="batch_size"):
        batches([good], 0, np.random.default_rng(0), pad_id=PAD)


# Labelled texts and splits.


def test_read_labelled_csv_and_jsonl(tmp_path):
    csv_file = tmp_path / "reviews.csv"
    csv_file.write_text('text,label,movie\n"good, really",fresh,m1\nbad,rotten,m2\nok,fresh,m3\n')
    data = read_labelled(csv_file)
    assert data.texts == ["good, really", "bad", "ok"]
    assert data.label_names == ["fresh", "rotten"]
    assert data.label_ids.tolist() == [0, 1, 0]
    assert data.label_ids.dtype == np.int64
    assert data.rows[2]["movie"] == "m3"
    jsonl = tmp_path / "scores.jsonl"
    rows = [{"review": "a", "stars": 10}, {"review": "b", "stars": 2}, {"review": "c", "stars": 2}]
    jsonl.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n")
    data = read_labelled(jsonl, text_column="review", label_column="stars")
    assert data.label_names == ["2", "10"]
    assert data.label_ids.tolist() == [1, 0, 0]
    assert data.label2id == {"2": 0, "10": 1}
    compressed = tmp_path / "reviews.tsv.bz2"
    compressed.write_bytes(bz2.compress(b"text\tlabel\nx\tb\ny\ta\n"))
    assert read_labelled(compressed).label_ids.tolist() == [1, 0]
    with pytest.raises(ValueError, match="does not exist"):
        read_labelled(tmp_path / "missing.csv")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.csv", "", "has no rows"),
        ("a.csv", "text,label\n", "has no rows"),
        ("a.csv", "text,topic\nx,y\n", "line 2 has no column 'label'"),
        ("a.csv", "text,label\nx,y\nx,y,z\n", "line 3 has 3 fields but the header has 2"),
        ("a.csv", "text,label\nx,y\nx\n", "line 3 has 1 fields"),
        ("a.csv", "text,label\nx,\n", "line 2: 'label' is empty"),
        ("a.jsonl", '{"text": "x", "label": "y"}\n{"text": "x"\n', "line 2 is not valid JSON"),
        ("a.jsonl", '["x", "y"]\n', "line 1 must hold a JSON object"),
        ("a.jsonl", '{"text": "x", "label": null}\n', "line 1: 'label' is null"),
        ("a.jsonl", '{"text": 3, "label": "y"}\n', "line 1: 'text' is of type int"),
        ("a.txt", "x\n", "expected a .csv"),
    ],
)
def test_read_labelled_errors_name_the_line(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=message):
        read_labelled(tmp_path / name)


def test_classification_examples_batch(wordpiece):
    examples = classification_examples(["kalo mi", "van", "tresu or pel"], [1, 0, 1], wordpiece)
    batch = next(batches(examples, 3, shuffle=False, bucket=False, pad_id=wordpiece.pad_token_id))
    assert batch["labels"].tolist() == [1, 0, 1]
    assert batch["labels"].dtype == np.int64
    assert (batch["input_ids"][:, 0] == wordpiece.cls_token_id).all()
    reference = wordpiece(["kalo mi", "van", "tresu or pel"])
    assert (batch["input_ids"] == reference["input_ids"]).all()


def test_group_split():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(400), rng.integers(1, 10, size=400)).tolist()
    items = list(range(len(groups)))
    splits = group_split(items, groups, (0.8, 0.1, 0.1), seed=3)
    assert sorted(sum(splits, [])) == items
    owner = [{groups[i] for i in split} for split in splits]
    assert all(owner[a].isdisjoint(owner[b]) for a, b in [(0, 1), (0, 2), (1, 2)])
    for split, fraction in zip(splits, (0.8, 0.1, 0.1), strict=True):
        assert abs(len(split) / len(items) - fraction) < 0.02
        assert split == sorted(split)  # items keep their order
    assert group_split(items, groups, (0.8, 0.1, 0.1), seed=3) == splits
    assert group_split(items, groups, (0.8, 0.1, 0.1), seed=4) != splits
    with pytest.raises(ValueError, match="sum to 1"):
        group_split(items, groups, (0.8, 0.1), seed=0)
    with pytest.raises(ValueError, match="one per item"):
        group_split(items[:-1], groups, seed=0)


# Corpus helpers.


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("Hello there! How are you? I am fine.", ["Hello there!", "How are you?", "I am fine."]),
        ("Mr. Smith met Dr. Jones. They talked.", ["Mr. Smith met Dr. Jones.", "They talked."]),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        ("J. R. R. Tolkien wrote it. Yes.", ["J. R. R. Tolkien wrote it.", "Yes."]),
        (
            "It costs 3.5 dollars, e.g. Tea. 12 left.",
            ["It costs 3.5 dollars, e.g. Tea.", "12 left."],
        ),
        ("Wait... (Really?) Yes.\n\n  Fine", ["Wait...", "(Really?)", "Yes.", "Fine"]),
        ("at 5 p.m. on Monday. ok", ["at 5 p.m. on Monday. ok"]),
        ("", []),
    ],
)
def test_split_sentences(text, sentences):
    assert split_sentences(text) == sentences


def test_documents_from_text():
    text = "One. Two\nthree.\n\n \n\r\nFour. Five.\n\n\n"
    assert documents_from_text(text) == [["One.", "Two three."], ["Four.", "Five."]]
    lines = "a b\nc d\n\ne\n"
    assert documents_from_text(lines, one_sentence_per_line=True) == [["a b", "c d"], ["e"]]


def test_abbreviation_opening_a_sentence_does_not_split():
    from minibert.data.text import split_sentences

    assert split_sentences("He left. Mr. Bennet stayed.") == ["He left.", "Mr. Bennet stayed."]
    assert split_sentences("J. Smith came. Dr. Who left.") == ["J. Smith came.", "Dr. Who left."]
