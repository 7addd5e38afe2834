"""`minibert export-fixture`: the file holds exactly the trace of its inputs, the manifest
describes every array, gradients follow the stated loss, --float64 is float64, bad input is
one line."""

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

import minibert
from conftest import ATOL_HF, FIXTURES
from minibert.cli.main import main
from minibert.pretrained import shipped_path
from minibert.reference import read_fixture

SHIPPED = shipped_path()  # int8: inference only

DOC = Path(__file__).parent.parent / "docs" / "reference-fixtures.md"
BERT = FIXTURES / "pipelines" / "bert-encoder"  # a BertModel with a WordPiece tokenizer
DISTILBERT = FIXTURES / "pipelines" / "distilbert-sentiment"
TEXTS = ["Hello world.", "a longer second text, with more words"]


def export(tmp_path, model, *options, name="case.npz"):
    path = tmp_path / name
    code = main(["export-fixture", str(model), *options, "-o", str(path)])
    assert code == 0
    return read_fixture(path), path


def encoded(model_dir, texts, pairs=None):
    enc = minibert.load_tokenizer(model_dir)(texts, pairs)
    return enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]


def test_the_file_holds_exactly_the_trace_of_its_inputs(tmp_path):
    (arrays, _), _ = export(tmp_path, BERT, "--text", TEXTS[0], "--text", TEXTS[1])
    ids, mask, types = encoded(BERT, TEXTS)
    for name, expected in (("input_ids", ids), ("attention_mask", mask), ("token_type_ids", types)):
        np.testing.assert_array_equal(arrays[name], expected)
        assert arrays[name].dtype == np.int64
    t = minibert.trace(minibert.load(BERT), ids, mask, types)
    assert list(arrays)[3:] == list(t)  # the inputs, then the trace in forward order
    for name, value in t.items():
        assert arrays[name].dtype == value.dtype == np.float32, name
        np.testing.assert_array_equal(arrays[name], value, err_msg=name)


def test_pairs_reach_the_token_types(tmp_path):
    (arrays, manifest), _ = export(tmp_path, BERT, "--text", "first", "--pair", "second part")
    ids, mask, types = encoded(BERT, ["first"], ["second part"])
    np.testing.assert_array_equal(arrays["token_type_ids"], types)
    assert types.max() == 1
    assert manifest["pairs"] == ["second part"]
    assert manifest["token_type_ids_used"]
    t = minibert.trace(minibert.load(BERT), ids, mask, types)
    np.testing.assert_array_equal(arrays["embeddings.token_type"], t["embeddings.token_type"])


def test_the_manifest_lists_every_array_with_its_shape_and_dtype(tmp_path):
    (arrays, manifest), path = export(tmp_path, BERT, "--text", TEXTS[0], "--grads")
    listed = [entry["name"] for entry in manifest["arrays"]]
    with zipfile.ZipFile(path) as zf:
        members = zf.namelist()
    assert members == [name + ".npy" for name in listed] + ["manifest.json"]
    with np.load(path) as plain:  # numpy alone reads it, the manifest as a text member
        assert json.loads(plain["manifest.json"]) == manifest
        for entry in manifest["arrays"]:
            array = plain[entry["name"]]
            assert list(array.shape) == entry["shape"], entry["name"]
            assert array.dtype.name == entry["dtype"], entry["name"]
            np.testing.assert_array_equal(array, arrays[entry["name"]])
    model = minibert.load(BERT)
    assert manifest["config"] == model.config.to_hf()
    assert manifest["minibert_version"] == minibert.__version__
    assert manifest["dtype"] == "float32"
    assert manifest["tolerances"]["atol"] == ATOL_HF
    assert manifest["steps"] == [0, 1]
    assert manifest["texts"] == [TEXTS[0]]
    assert manifest["loss"] == {
        "formula": "sum(last_hidden_state * loss.weights)",
        "weights": "loss.weights",
        "seed": 0,
    }


def test_grads_follow_the_stated_loss(tmp_path):
    (arrays, _), _ = export(tmp_path, BERT, "--text", TEXTS[0], "--text", TEXTS[1], "--grads")
    ids, mask, types = encoded(BERT, TEXTS)
    model = minibert.load(BERT)
    # the loss weights come from the seed alone, as the manifest states
    weights = np.random.default_rng(0).standard_normal((*ids.shape, model.config.hidden_size))
    weights = weights.astype(np.float32)  # drawn in float64, stored in the model's dtype
    np.testing.assert_array_equal(arrays["loss.weights"], weights)
    t = minibert.trace(
        model, ids, mask, types, grads=True, output_grads={"last_hidden_state": weights}
    )
    grads = {n[len("grad/") :]: a for n, a in arrays.items() if n.startswith("grad/")}
    assert list(grads) == list(t.grads)
    assert len(grads) > 20
    for name, value in t.grads.items():
        np.testing.assert_array_equal(grads[name], value, err_msg=name)
    for name, value in t.items():  # the forward of the same (training-mode) run
        np.testing.assert_array_equal(arrays[name], value, err_msg=name)
    # d sum(h * W) / d h = W: the last step's output is the last hidden state
    np.testing.assert_array_equal(grads["encoder.step.1.ln2"], arrays["loss.weights"])
    assert not np.array_equal(grads["embeddings.word"], 0)


def test_a_gradient_matches_finite_differences_of_the_stated_loss(tmp_path):
    (arrays, _), _ = export(tmp_path, BERT, "--text", TEXTS[0], "--grads", "--float64")
    ids, mask, types = arrays["input_ids"], arrays["attention_mask"], arrays["token_type_ids"]
    model = minibert.load(BERT, dtype="float64")
    model.train(dropout=False)
    weights = arrays["loss.weights"]
    # nudge one word vector through inputs_embeds; the loss is computed from the file alone
    embeds = arrays["embeddings.word"].copy()
    direction = np.random.default_rng(1).standard_normal(embeds.shape)
    h = 1e-6

    def loss(x):
        out = model(None, mask, types, inputs_embeds=x)
        return float(np.sum(out.last_hidden_state * weights))

    numeric = (loss(embeds + h * direction) - loss(embeds - h * direction)) / (2 * h)
    analytic = float(np.sum(arrays["grad/embeddings.word"] * direction))
    assert numeric == pytest.approx(analytic, rel=1e-6)
    assert ids.shape == embeds.shape[:2]


def test_float64_gives_float64(tmp_path):
    (arrays, manifest), _ = export(tmp_path, BERT, "--text", TEXTS[0], "--grads", "--float64")
    floats = {n: a for n, a in arrays.items() if n not in ("input_ids", "attention_mask")}
    floats.pop("token_type_ids")
    assert floats
    assert all(a.dtype == np.float64 for a in floats.values())
    assert all(e["dtype"] == "float64" for e in manifest["arrays"] if e["name"] in floats)
    assert manifest["dtype"] == "float64"
    assert manifest["tolerances"]["atol"] is None


def test_max_length_cuts_the_rows(tmp_path):
    (arrays, _), _ = export(tmp_path, BERT, "--text", TEXTS[1], "--max-length", "5")
    assert arrays["input_ids"].shape == (1, 5)
    assert arrays["encoder.step.0.attention.probs"].shape[-2:] == (5, 5)


def test_a_family_without_token_types_says_so(tmp_path):
    (arrays, manifest), _ = export(tmp_path, DISTILBERT, "--text", TEXTS[0])
    assert not manifest["token_type_ids_used"]
    assert "embeddings.token_type" not in arrays
    ids, mask, _ = encoded(DISTILBERT, [TEXTS[0]])
    t = minibert.trace(minibert.load(DISTILBERT), ids, mask)
    np.testing.assert_array_equal(arrays["output.logits"], t["output.logits"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["missing-folder", "--text", "hi"], "no such model folder"),
        ([str(BERT)], "no --text given"),
        ([str(BERT), "--text", "hi", "--pair", "a", "--pair", "b"], "1 texts but 2 pairs"),
        ([str(BERT), "--text", "  "], "texts must be non-empty strings"),
        ([str(SHIPPED), "--text", "hi", "--grads"], "gradients need a float model"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, arguments, message):
    path = tmp_path / "case.npz"
    assert main(["export-fixture", *arguments, "-o", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("minibert: error: ")
    assert message in err
    assert err.count("\n") == 1
    assert not path.exists()


def test_an_existing_output_needs_force(tmp_path, capsys):
    path = tmp_path / "case.npz"
    path.write_bytes(b"keep me")
    assert main(["export-fixture", str(BERT), "--text", "hi", "-o", str(path)]) == 1
    err = capsys.readouterr().err
    assert "already exists: pass --force" in err
    assert err.count("\n") == 1
    assert path.read_bytes() == b"keep me"
    assert main(["export-fixture", str(BERT), "--text", "hi", "-o", str(path), "--force"]) == 0
    arrays, _ = read_fixture(path)
    assert arrays["input_ids"].shape[0] == 1


def documented_first_difference():
    """The docs' Python example, run as written (all but its last line, which calls it)."""
    section = DOC.read_text().split("## Testing an implementation in Python")[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)[1]
    namespace = {}
    exec(code.rsplit("\nprint(", 1)[0], namespace)
    return namespace["first_difference"]


def test_the_documented_python_check_finds_the_first_difference(tmp_path):
    first_difference = documented_first_difference()
    _, path = export(tmp_path, BERT, "--text", TEXTS[0], "--text", TEXTS[1])
    model = minibert.load(BERT)

    def my_forward(input_ids, attention_mask, token_type_ids):
        return dict(minibert.trace(model, input_ids, attention_mask, token_type_ids))

    assert first_difference(path, my_forward) is None

    def relu_forward(**inputs):  # a port with ReLU where the config says GELU, in step 1
        mine = my_forward(**inputs)
        mine["encoder.step.1.ffn.activation"] = np.maximum(mine["encoder.step.1.ffn.up"], 0)
        return mine

    name, problem = first_difference(path, relu_forward)
    assert name == "encoder.step.1.ffn.activation"
    assert problem.startswith("max abs error")

    def wrong_shape(**inputs):
        mine = my_forward(**inputs)
        mine["encoder.step.0.attention.q"] = mine["encoder.step.0.attention.q"][:, :1]
        return mine

    assert first_difference(path, wrong_shape)[0] == "encoder.step.0.attention.q"


def test_a_head_model_round_trips_with_grads(tmp_path):
    roberta = FIXTURES / "pipelines" / "roberta-mlm"  # byte-level BPE, a masked-LM head
    (arrays, manifest), _ = export(tmp_path, roberta, "--text", TEXTS[1], "--grads")
    ids, mask, types = encoded(roberta, [TEXTS[1]])
    model = minibert.load(roberta)
    t = minibert.trace(
        model,
        ids,
        mask,
        types,
        grads=True,
        output_grads={"last_hidden_state": arrays["loss.weights"]},
    )
    assert [e["name"] for e in manifest["arrays"]] == list(arrays)
    assert "mlm.layernorm" in arrays
    assert "output.logits" in arrays
    for name, value in t.items():
        np.testing.assert_array_equal(arrays[name], value, err_msg=name)
    for name, value in t.grads.items():
        np.testing.assert_array_equal(arrays["grad/" + name], value, err_msg=name)
    last = len(manifest["steps"]) - 1
    np.testing.assert_array_equal(arrays[f"grad/encoder.step.{last}.ln2"], arrays["loss.weights"])
