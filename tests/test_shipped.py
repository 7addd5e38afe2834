"""The model minibert ships (minibert/shipped/, pretrained.shipped_path): it loads as an int8
sentence encoder, its files are the ones docs/results/shipped.json (and so the model card)
describes, it agrees with a float32 copy of its own weights, the CLI uses it by default, and
scripts/build_shipped_model.py rebuilds it deterministically (a tiny run, twice)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import minibert
from minibert import pretrained
from minibert.cli.main import main
from minibert.functional.pooling import pool
from minibert.functional.quantize import dequantize
from minibert.models.auto import from_config
from minibert.quant import is_quantized

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "shipped.json"
SENTENCES = [
    "The chef chopped onions and garlic.",
    "Astronomers found a new planet orbiting a distant star.",
    "The striker scored twice in the second half.",
    "Stock prices fell sharply after the announcement.",
    "A quiet walk along the river at dawn.",
]
needs_minilm = pytest.mark.skipif(
    not pretrained.minilm_available(),
    reason=f"all-MiniLM-L6-v2 is not installed ({pretrained.MINILM_INSTALL})",
)


@pytest.fixture(scope="module")
def encoder():
    return minibert.SentenceEncoder(pretrained.shipped_path())


def float_copy(qmodel):
    """A float32 model of the same config whose weights are the int8 ones dequantized: the
    int8 model minus the rounding of activations."""
    extra = {k: v for k, v in qmodel.config.hf_extra.items() if k != "quantization"}
    model = from_config(qmodel.config.replace(hf_extra=extra)).eval()
    for name, array in model.named_parameters():
        stored = qmodel.get_parameter(name)
        if stored.dtype == np.int8:
            array[...] = dequantize(stored, qmodel.get_parameter(name + "_scale"))
        else:
            array[...] = stored
    return model


def test_the_bundled_model_is_an_int8_sentence_encoder(encoder):
    assert pretrained.shipped_path().name == pretrained.SHIPPED_NAME
    model = encoder.model
    assert is_quantized(model)
    quantization = model.config.hf_extra["quantization"]
    assert quantization["embeddings"] is True  # the word-embedding table is int8 too
    assert model.embeddings.word.params["weight"].dtype == np.int8
    vectors = encoder.encode(SENTENCES)
    assert vectors.shape == (len(SENTENCES), model.config.hidden_size)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_files_are_those_the_card_describes():
    """docs/results/shipped.json (rendered in docs/model-card.md) names each file's size."""
    recorded = json.loads(RESULTS.read_text())
    folder = pretrained.shipped_path()
    actual = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
    assert actual == recorded["size"]["shipped"]["files"]
    model = minibert.load(folder)
    assert model.num_parameters() == recorded["parameters"]["total"]
    assert recorded["parameters"]["encoder_share"] <= 0.4  # the bound on the student


@needs_minilm
def test_the_encoder_is_at_most_40_percent_of_the_teachers():
    def encoder_parameters(model):
        return sum(a.size for n, a in model.named_parameters() if n.startswith("encoder."))

    shipped = minibert.load(pretrained.shipped_path())
    teacher = minibert.load(pretrained.minilm_path())
    assert encoder_parameters(shipped) <= 0.4 * encoder_parameters(teacher)


def test_int8_agrees_with_a_float_copy_of_itself(encoder):
    """Only the activations' rounding separates the two: the sentence vectors stay close."""
    reference = float_copy(encoder.model)
    enc = encoder.tokenizer(SENTENCES)
    got = encoder.model(enc["input_ids"], attention_mask=enc["attention_mask"])
    want = reference(enc["input_ids"], attention_mask=enc["attention_mask"])
    mask = enc["attention_mask"]
    a = pool(got.last_hidden_state, mask, "mean")
    b = pool(want.last_hidden_state, mask, "mean")
    cosines = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosines.min() > 0.99, cosines


def test_the_cli_uses_it_by_default(capsys, tmp_path, encoder):
    file = tmp_path / "v.npy"
    # the kernels as the encoder's (a few texts would otherwise run the numpy reference)
    assert main(["encode", *SENTENCES, "--kernels", "fast", "--output", str(file)]) == 0
    np.testing.assert_array_equal(np.load(file), encoder.encode(SENTENCES))
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {len(SENTENCES)} x {encoder.dim} float32" in out
    assert f"\n{pretrained.SHIPPED_NAME}: " in out


def test_a_missing_file_is_reported(monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained, "__file__", str(tmp_path / "pretrained.py"))
    with pytest.raises(pretrained.ModelNotInstalledError, match="reinstall minibert"):
        pretrained.shipped_path()


# --- the build script ------------------------------------------------------------------------
def _build_script():
    spec = importlib.util.spec_from_file_location(
        "build_shipped_model", ROOT / "scripts" / "build_shipped_model.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.minilm
@needs_minilm
def test_a_tiny_build_is_deterministic(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rng = np.random.default_rng(0)
    words = "the cat dog sat ran on a mat rug river bank market fell rose today".split()
    documents = [
        " ".join(" ".join(rng.choice(words, 7)).capitalize() + "." for _ in range(5))
        for _ in range(6)
    ]
    (corpus / "tiny.txt").write_text("\n\n".join(documents) + "\n", encoding="utf-8")
    build = _build_script()
    outputs = []
    for run in ("a", "b"):
        argv = [
            *("--corpus", corpus, "--max-texts", 24, "--held-out", 6, "--steps", 2),
            *("--batch-size", 4, "--max-length", 24, "--no-lee"),
            *("--run-dir", tmp_path / f"run-{run}", "--output", tmp_path / f"out-{run}"),
            *("--results", tmp_path / f"{run}.json"),
        ]
        results = build.main([str(a) for a in argv])
        outputs.append(tmp_path / f"out-{run}")
        assert results["recipe"]["steps"] == 2
    files = sorted(p.name for p in outputs[0].iterdir())
    assert files == sorted(p.name for p in outputs[1].iterdir())
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(files)
    for name in files:
        assert (outputs[0] / name).read_bytes() == (outputs[1] / name).read_bytes(), name
    assert is_quantized(minibert.load(outputs[0]))
