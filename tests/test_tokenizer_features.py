"""Offsets, special-tokens masks, word and sequence ids, overflowing windows with a stride, and the
folders with only vocab.json + merges.txt (RoBERTa) or spiece.model (ALBERT), each compared
exactly with what transformers' tokenizers gave on the same files (tests/fixtures/tokenizers/,
written by tests/fixtures/generate_tokenizers.py); then the errors."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from minibert.errors import CheckpointError
from minibert.tokenizer import Encoding, load_tokenizer

FIXTURES = Path(__file__).parent / "fixtures" / "tokenizers"
SPEC = json.loads((FIXTURES / "cases.json").read_text(encoding="utf-8"))
MODEL_MAX_LENGTH = 40  # generate_tokenizers.py writes it into every tokenizer_config.json
NEEDS_SENTENCEPIECE = {"albert-spiece", "albert-spiece-cased"}


def case_folder(case: str, tmp_path: Path) -> Path:
    """The folder a case reads: its own, or a copy with the case's tokenizer_config.json."""
    described = SPEC["cases"][case]
    folder = FIXTURES / described["folder"]
    if described["tokenizer_config"] is None:
        return folder
    copy = tmp_path / case
    shutil.copytree(folder, copy)
    config = {**described["tokenizer_config"], "model_max_length": MODEL_MAX_LENGTH}
    (copy / "tokenizer_config.json").write_text(json.dumps(config))
    return copy


def load_case(case: str, tmp_path: Path):
    if case in NEEDS_SENTENCEPIECE:
        pytest.importorskip("sentencepiece", reason="spiece.model needs minibert[sentencepiece]")
    return load_tokenizer(case_folder(case, tmp_path))


def call(tok, spec: dict) -> Encoding:
    """Our tokenizer on one of cases.json's calls, with every optional output asked for."""
    options = {k: v for k, v in spec.items() if k not in ("texts", "pairs")}
    pairs = SPEC["texts"][spec["pairs"]] if "pairs" in spec else None
    return tok(
        SPEC["texts"][spec["texts"]],
        pairs,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        **options,
    )


@pytest.mark.parametrize("call_name", sorted(SPEC["calls"]))
@pytest.mark.parametrize("case", sorted(SPEC["cases"]))
def test_equals_transformers(case, call_name, tmp_path):
    ref = np.load(FIXTURES / case / "reference.npz")
    expected = {key.split(".", 1)[1]: ref[key] for key in ref.files if key.startswith(call_name)}
    enc = call(load_case(case, tmp_path), SPEC["calls"][call_name])
    for key in ("input_ids", "attention_mask", "token_type_ids", "special_tokens_mask"):
        np.testing.assert_array_equal(enc[key], expected[key], err_msg=key)
    np.testing.assert_array_equal(enc["offset_mapping"], expected["offset_mapping"])
    assert enc["offset_mapping"].dtype == np.int64
    if "overflow_to_sample_mapping" in expected:
        mapping = enc["overflow_to_sample_mapping"]
        np.testing.assert_array_equal(mapping, expected["overflow_to_sample_mapping"])
    else:
        assert "overflow_to_sample_mapping" not in enc
    rows = len(expected["input_ids"])
    assert len(enc.encodings) == rows
    for i in range(rows):
        word_ids = [-1 if w is None else w for w in enc.word_ids(i)]
        sequence_ids = [-1 if s is None else s for s in enc.sequence_ids(i)]
        assert word_ids == expected["word_ids"][i].tolist()
        assert sequence_ids == expected["sequence_ids"][i].tolist()
        assert enc.tokens(i) == expected["tokens"][i].tolist()


def test_the_fixtures_overflow_and_read_every_format():
    """The calls do what they are there for: windows exist, and each format is a case."""
    for case, described in SPEC["cases"].items():
        assert described["rows"]["windows"] > len(SPEC["texts"]["sentences"]), case
        assert described["rows"]["qa"] > len(SPEC["texts"]["questions"]), case
    files = {p.name for p in FIXTURES.rglob("*") if p.is_file()}
    assert {"vocab.txt", "tokenizer.json", "vocab.json", "merges.txt", "spiece.model"} <= files
    assert not (FIXTURES / "roberta-bpe" / "tokenizer.json").exists()
    assert not (FIXTURES / "albert-spiece" / "tokenizer.json").exists()


def test_windows_overlap_by_stride(tmp_path):
    """With only_second, each window after the first starts with the last `stride` context
    tokens of the one before, and the question is whole in every window."""
    tok = load_case("wordpiece", tmp_path)
    question, context = "Where does the fox jump?", SPEC["texts"]["contexts"][0]
    enc = tok(question, context, truncation="only_second", max_length=24, stride=5,
              return_overflowing_tokens=True, return_offsets_mapping=True)  # fmt: skip
    assert len(enc.input_ids) > 2
    assert set(enc.overflow_to_sample_mapping.tolist()) == {0}
    spans = []
    for i in range(len(enc.input_ids)):
        sequence_ids = enc.sequence_ids(i)
        first = [t for t, s in zip(enc.tokens(i), sequence_ids, strict=True) if s == 0]
        assert first == tok.tokenize(question)
        offsets = enc.offset_mapping[i].tolist()
        spans.append([tuple(o) for o, s in zip(offsets, sequence_ids, strict=True) if s == 1])
    for before, after in zip(spans[:-1], spans[1:], strict=True):
        assert after[:5] == before[-5:]
    assert spans[-1][-1][1] == len(context)  # the last window reaches the end of the context


def test_offsets_point_into_the_text(tmp_path):
    """The real tokens' offsets, in order, cut the whole text but its spaces out of the input.
    Byte-level BPE splits a character of several bytes (à) into tokens that share its span."""
    tok = load_case("roberta-bpe", tmp_path)
    text = "Café déjà vu, 北京!"
    enc = tok(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    real = enc.special_tokens_mask[0] == 0
    spans = list(dict.fromkeys(tuple(span) for span in enc.offset_mapping[0][real].tolist()))
    assert spans == sorted(spans)
    assert "".join(text[start:end] for start, end in spans) == text.replace(" ", "")
    assert len(spans) < real.sum()  # the shared spans are there


def test_plain_calls_are_unchanged(tmp_path):
    """Without the new options, a call returns the three arrays it always did."""
    tok = load_case("wordpiece", tmp_path)
    enc = tok(["one text", "and another, longer text"])
    assert list(enc) == ["input_ids", "attention_mask", "token_type_ids"]
    assert enc.word_ids(1)[:2] == [None, 0]


def test_errors(tmp_path):
    tok = load_case("wordpiece", tmp_path)
    long_text = SPEC["texts"]["contexts"][0]
    with pytest.raises(ValueError, match=r"stride=10 must be less than the 8 tokens"):
        tok(long_text, max_length=10, stride=10, return_overflowing_tokens=True)
    with pytest.raises(ValueError, match=r"stride=8 must be less than the 8 tokens"):
        tok(long_text, max_length=10, stride=8, return_overflowing_tokens=True)
    with pytest.raises(ValueError, match="return_overflowing_tokens=True needs truncation"):
        tok(long_text, truncation=False, return_overflowing_tokens=True)
    with pytest.raises(ValueError, match=r"stride must be an int >= 0, got -1"):
        tok(long_text, stride=-1)
    with pytest.raises(ValueError, match=r"stride must be an int >= 0, got 2.5"):
        tok(long_text, stride=2.5)
    with pytest.raises(ValueError, match="return_offsets_mapping must be True or False"):
        tok(long_text, return_offsets_mapping="yes")
    # only_second: the question leaves too little room for windows of the context
    question = "where does the quick brown fox jump over the lazy dog"
    with pytest.raises(ValueError, match=r"texts\[0\] has \d+ tokens, which leaves \d+ of"):
        tok(question, long_text, truncation="only_second", max_length=16, stride=4,
            return_overflowing_tokens=True)  # fmt: skip
    with pytest.raises(ValueError, match=r"text_pairs\[0\] has \d+ tokens"):
        tok(long_text, question, truncation="only_first", max_length=16, stride=4,
            return_overflowing_tokens=True)  # fmt: skip
    # longest_first: the shorter text keeps half the room (4 of 9 here), and stride 4 is too much
    with pytest.raises(ValueError, match=r"texts\[0\] is cut to windows of 4 tokens"):
        tok("a b c d e f g h", "i j k l m n o p q", max_length=12, stride=4)
    enc = tok("a b c d e f g h", "i j k l m n o p q", max_length=12, stride=3,
              return_overflowing_tokens=True)  # fmt: skip
    assert enc.sequence_ids(0).count(0) == 4
    assert enc.sequence_ids(0).count(1) == 5
    with pytest.raises(ValueError, match="truncation must be True, False, 'longest_first'"):
        tok(long_text, truncation="only_third")
    enc = tok(long_text)
    with pytest.raises(ValueError, match="batch_index 1 is out of range: the batch has 1 rows"):
        enc.word_ids(1)
    with pytest.raises(ValueError, match="batch_index must be an int"):
        enc.sequence_ids("0")
    with pytest.raises(ValueError, match="keeps no rows"):
        Encoding({"input_ids": enc.input_ids}).word_ids(0)


def test_rows_of_different_lengths_need_padding(tmp_path):
    tok = load_case("wordpiece", tmp_path)
    with pytest.raises(ValueError, match="padding=False the rows have different lengths"):
        tok(SPEC["texts"]["contexts"][0], padding=False, max_length=12, stride=2,
            return_overflowing_tokens=True)  # fmt: skip


def test_byte_level_bpe_folder_errors(tmp_path):
    folder = tmp_path / "bpe"
    shutil.copytree(FIXTURES / "roberta-bpe", folder)
    (folder / "merges.txt").unlink()
    with pytest.raises(CheckpointError, match="has no merges.txt: a byte-level BPE needs both"):
        load_tokenizer(folder)
    (folder / "merges.txt").write_text("#version: 0.2\nx y z\n")
    with pytest.raises(CheckpointError, match=r"merges.txt line 2 must be two tokens"):
        load_tokenizer(folder)
    (folder / "merges.txt").write_text("#version: 0.2\nqq zz\n")
    with pytest.raises(CheckpointError, match=r"merges.txt line 2: 'qq' is not in vocab.json"):
        load_tokenizer(folder)
    (folder / "vocab.json").write_text('{"<s>": 0, "</s>": "two"}')
    with pytest.raises(CheckpointError, match=r"the id of '</s>' must be an int >= 0, got 'two'"):
        load_tokenizer(folder)
    (folder / "vocab.json").write_text('{"a": 0, "b": 1}')
    (folder / "merges.txt").write_text("")
    with pytest.raises(CheckpointError, match=r"has no <s> token \(cls_token\)"):
        load_tokenizer(folder)


def test_spiece_without_sentencepiece_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sentencepiece", None)  # `import sentencepiece` now fails
    with pytest.raises(CheckpointError, match=r"needs the sentencepiece and protobuf packages"):
        load_tokenizer(FIXTURES / "albert-spiece")
    with pytest.raises(CheckpointError, match=r'pip install "minibert\[sentencepiece\]"'):
        load_tokenizer(FIXTURES / "albert-spiece")


def test_spiece_folder_errors(tmp_path):
    pytest.importorskip("sentencepiece", reason="spiece.model needs minibert[sentencepiece]")
    folder = tmp_path / "albert"
    shutil.copytree(FIXTURES / "albert-spiece", folder)
    (folder / "spiece.model").write_bytes(b"\xff\xfe not a model")
    with pytest.raises(CheckpointError, match="is not a valid sentencepiece model"):
        load_tokenizer(folder)
    config = {"tokenizer_class": "AlbertTokenizer", "cls_token": "<cls>"}
    shutil.copyfile(FIXTURES / "albert-spiece" / "spiece.model", folder / "spiece.model")
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"has no <cls> piece \(cls_token\)"):
        load_tokenizer(folder)


def test_new_formats_know_their_special_tokens(tmp_path):
    roberta = load_case("roberta-bpe", tmp_path)
    assert roberta.convert_ids_to_tokens([roberta.cls_token_id, roberta.sep_token_id]) == [
        "<s>",
        "</s>",
    ]
    assert roberta.mask_token_id == roberta.convert_tokens_to_ids("<mask>")
    assert roberta.model_max_length == MODEL_MAX_LENGTH
    albert = load_case("albert-spiece", tmp_path)
    assert albert.special_tokens["cls"] == "[CLS]"
    assert albert.special_tokens["pad"] == "<pad>"
    assert albert.decode(albert("Hello world").input_ids[0]) == "hello world"


@pytest.mark.parametrize("case", ["roberta-bpe-mask-lstrip", "albert-spiece", "wordpiece"])
def test_saved_tokenizer_json_gives_the_same_call(case, tmp_path):
    """A tokenizer built from vocab.json / spiece.model / vocab.txt, saved as tokenizer.json and
    loaded again, encodes exactly as the folder's files do."""
    tok = load_case(case, tmp_path)
    tok.save(tmp_path / "saved")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == [
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    again = load_tokenizer(tmp_path / "saved")
    assert again.special_tokens == tok.special_tokens
    for spec in SPEC["calls"].values():
        first, second = call(tok, spec), call(again, spec)
        assert list(first) == list(second)
        for key in first:
            np.testing.assert_array_equal(first[key], second[key], err_msg=key)
