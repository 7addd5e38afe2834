"""`minibert quantize` and what `minibert info` says about an int8 folder."""

import json

import numpy as np
import pytest
from test_cli import BERT, assert_one_line_error, needs_minilm, run

import minibert
from minibert import pretrained
from minibert.quant import is_quantized


def test_quantize_writes_a_loadable_int8_folder(capsys, tmp_path):
    out_dir = tmp_path / "int8"
    code, out, err = run(capsys, "quantize", BERT, out_dir)
    assert code == 0, err
    assert "weights" in out
    assert "hidden states on random ids" in out  # the fixture has no tokenizer
    model = minibert.load(out_dir)
    assert is_quantized(model)
    config = json.loads((out_dir / "config.json").read_text())
    assert config["quantization"]["embeddings"] is True

    code, out, err = run(capsys, "info", out_dir, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["quantization"]["method"] == "minibert-int8"
    assert report["stored_dtypes"]["int8"] > 0
    assert report["parameters"]["total"] == minibert.load(BERT).num_parameters()

    code, out, _ = run(capsys, "info", out_dir)
    assert "int8:" in out
    assert "of float32" in out


def test_a_sentence_transformers_folder_keeps_its_modules(capsys, tmp_path):
    """Its Pooling and Dense folders travel with the int8 copy, which then gives the float32
    vectors to int8's precision (not a load error for the missing Dense layer)."""
    source = BERT.parent / "sentence-transformers" / "classic-dense-tanh"
    out_dir = tmp_path / "int8"
    code, _, err = run(capsys, "quantize", source, out_dir)
    assert code == 0, err
    assert (out_dir / "2_Dense" / "config.json").is_file()
    texts = ["a cat sat", "dogs ran over hills"]
    expected = minibert.SentenceEncoder(source).encode(texts)
    got = minibert.SentenceEncoder(out_dir).encode(texts)
    assert got.shape == expected.shape
    cosine = (
        (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    )
    assert cosine.min() > 0.99


def test_quantize_without_embeddings(capsys, tmp_path):
    code, _, err = run(capsys, "quantize", BERT, tmp_path / "q", "--no-embeddings")
    assert code == 0, err
    model = minibert.load(tmp_path / "q")
    assert model.embeddings.word.params["weight"].dtype == np.float32


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda tmp: ["quantize", BERT, BERT], "must differ"),
        (lambda tmp: ["quantize", tmp / "missing", tmp / "out"], "no such model folder"),
    ],
)
def test_quantize_errors_are_one_line(capsys, tmp_path, make_args, message):
    code, out, err = run(capsys, *make_args(tmp_path))
    assert_one_line_error(code, out, err)
    assert message in err


def test_quantizing_an_int8_folder_again_is_refused(capsys, tmp_path):
    run(capsys, "quantize", BERT, tmp_path / "q")
    code, out, err = run(capsys, "quantize", tmp_path / "q", tmp_path / "q2")
    assert_one_line_error(code, out, err)
    assert "already quantized" in err


@pytest.mark.minilm
@needs_minilm
def test_quantized_minilm_encodes_from_the_cli(capsys, tmp_path):
    code, out, err = run(capsys, "quantize", pretrained.minilm_path(), tmp_path / "q")
    assert code == 0, err
    assert "mean cosine 0.99" in out
    assert "tokenizer.json" in out
    size = (tmp_path / "q" / "model.safetensors").stat().st_size
    assert size <= 0.30 * (pretrained.minilm_path() / "model.safetensors").stat().st_size
    code, out, err = run(capsys, "encode", "--model", tmp_path / "q", "A cat sat on the mat.")
    assert code == 0, err
    assert "shape (1, 384)" in out


ENCODER = BERT.parent / "pipelines" / "bert-encoder"  # a fixture folder with a tokenizer


def test_quantize_group_wise_int4(capsys, tmp_path):
    code, out, err = run(capsys, "quantize", ENCODER, tmp_path / "q", "--bits", "4",
                         "--group-size", "4", "--embedding-bits", "8")  # fmt: skip
    assert code == 0, err
    entry = json.loads((tmp_path / "q" / "config.json").read_text())["quantization"]
    assert (entry["bits"], entry["group_size"], entry["embedding_bits"]) == (4, 4, 8)
    assert "rounding" not in entry
    model, float_model = minibert.load(tmp_path / "q"), minibert.load(ENCODER)
    assert "100.0%" not in out  # LayerNorms and positions stay float32
    assert f"of {float_model.num_parameters():,} parameters" in out
    expected = minibert.quantize(float_model, bits=4, group_size=4, embedding_bits=8)
    ids = np.array([[2, 15, 27, 8, 3]])
    np.testing.assert_array_equal(model(ids).last_hidden_state, expected(ids).last_hidden_state)


def test_quantize_with_gptq_calibration(capsys, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("the cat sat on the mat\n\nthe dog ran in the park\na bird sang\n")
    code, out, err = run(capsys, "quantize", ENCODER, tmp_path / "q", "--bits", "4",
                         "--group-size", "4", "--gptq", texts, "--calibration", "2")  # fmt: skip
    assert code == 0, err
    entry = json.loads((tmp_path / "q" / "config.json").read_text())["quantization"]
    assert entry["rounding"] == "gptq"
    tokenizer = minibert.load_tokenizer(ENCODER)  # the first two texts, as the command reads them
    batch = tokenizer(["the cat sat on the mat", "the dog ran in the park"], max_length=128)
    assert entry["calibration_tokens"] == int(batch["attention_mask"].sum())
    assert "mean cosine" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--bits", "4"], "give --group-size too"),
        (["--gptq", "texts.txt"], "give --group-size too"),
        (["--group-size", "4", "--gptq", "missing.txt"], "does not exist"),
        (["--group-size", "1000"], "wider than"),
    ],
)
def test_quantize_option_errors_are_one_line(capsys, tmp_path, extra, message):
    code, out, err = run(capsys, "quantize", ENCODER, tmp_path / "q", *extra)
    assert_one_line_error(code, out, err)
    assert message in err
