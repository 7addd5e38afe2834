"""Checkpoint reading and writing: safetensors, the restricted .bin reader, names, errors."""

import io
import json
import os
import pickle
import shutil
import zipfile

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import minibert
from conftest import ATOL_HF, META, MODEL_CASES, case_dir, load_reference, model_inputs
from minibert.errors import CheckpointError, ConfigError, LoadWarning


def copy_case(name, tmp_path):
    dst = tmp_path / name
    shutil.copytree(case_dir(name), dst)
    return dst


def edit_config(folder, **changes):
    file = folder / "config.json"
    d = json.loads(file.read_text())
    d.update(changes)
    file.write_text(json.dumps(d))


def edit_tensors(folder, edit):
    file = folder / "model.safetensors"
    tensors = load_file(file)
    edit(tensors)
    save_file(tensors, file, metadata={"format": "pt"})


# --- pytorch_model.bin ----------------------------------------------------------------------
def test_pytorch_bin_matches_safetensors_outputs():
    ref = load_reference("bert-bin")
    out = minibert.load(case_dir("bert-bin"))(**model_inputs(ref))
    np.testing.assert_allclose(out.logits, ref["logits"], atol=ATOL_HF)


def test_bfloat16_bin_is_widened_to_float32():
    model = minibert.load(case_dir("bert-bin-bf16"))
    assert model.dtype == np.float32


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def _zip_with_pickle(path, payload: bytes):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
        zf.writestr("archive/version", "3\n")


def test_malicious_pickle_raises_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = copy_case("bert-bin", tmp_path)
    _zip_with_pickle(folder / "pytorch_model.bin", pickle.dumps({"w": _Evil()}, protocol=2))
    with pytest.raises(CheckpointError, match=r"refusing to load the global (posix|os)\.system"):
        minibert.load(folder)
    assert not (tmp_path / "pwned").exists()


def test_pickle_of_non_tensors_is_refused(tmp_path):
    folder = copy_case("bert-bin", tmp_path)
    _zip_with_pickle(folder / "pytorch_model.bin", pickle.dumps({"w": [1, 2, 3]}))
    with pytest.raises(CheckpointError, match="state dict of tensors"):
        minibert.load(folder)


def test_legacy_non_zip_bin_is_refused(tmp_path):
    folder = copy_case("bert-bin", tmp_path)
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match="not a zip archive"):
        minibert.load(folder)


def test_truncated_bin_is_an_error(tmp_path):
    folder = copy_case("bert-bin", tmp_path)
    data = (folder / "pytorch_model.bin").read_bytes()
    (folder / "pytorch_model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        minibert.load(folder)


# --- safetensors and folders ------------------------------------------------------------------
def test_truncated_safetensors_is_an_error(tmp_path):
    folder = copy_case("bert-base", tmp_path)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:100])
    with pytest.raises(CheckpointError, match="cannot read"):
        minibert.load(folder)


def test_missing_folder_config_and_weights(tmp_path):
    with pytest.raises(CheckpointError, match="no such model folder"):
        minibert.load(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="no config.json"):
        minibert.load(tmp_path)
    (tmp_path / "config.json").write_text((case_dir("bert-base") / "config.json").read_text())
    with pytest.raises(CheckpointError, match="has no weights"):
        minibert.load(tmp_path)


def test_bad_config_json(tmp_path):
    folder = copy_case("bert-base", tmp_path)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        minibert.load(folder)


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"architectures": ["BertForCausalLM"]}, ConfigError, "BertForCausalLM"),
        ({"model_type": "gpt2", "architectures": None}, ConfigError, "gpt2"),
        ({"hidden_size": "32"}, ConfigError, "hidden_size"),
        ({"num_attention_heads": 5}, ConfigError, "num_attention_heads"),
        ({"position_embedding_type": "relative_key"}, NotImplementedError, "relative_key"),
        ({"hidden_act": "swish_fancy"}, NotImplementedError, "hidden_act"),
        ({"problem_type": "ordinal_regression"}, NotImplementedError, "problem_type"),
        ({"layer_norm_eps": -1}, ConfigError, "layer_norm_eps"),
    ],
)
def test_config_errors_name_the_field(tmp_path, changes, error, match):
    folder = copy_case("bert-base", tmp_path)
    edit_config(folder, **changes)
    with pytest.raises(error, match=match):
        minibert.load(folder)


def test_config_contradicting_tensors_names_the_tensor(tmp_path):
    folder = copy_case("bert-base", tmp_path)
    edit_config(folder, vocab_size=98)
    with pytest.raises(CheckpointError, match=r"word_embeddings.weight has shape \(99, 32\)"):
        minibert.load(folder)


def test_missing_tensor_is_named(tmp_path):
    folder = copy_case("bert-base", tmp_path)
    edit_tensors(folder, lambda t: t.pop("encoder.layer.1.output.dense.bias"))
    with pytest.raises(CheckpointError, match="encoder.layer.1.output.dense.bias"):
        minibert.load(folder)


def test_unexpected_tensor_is_reported(tmp_path):
    folder = copy_case("bert-base", tmp_path)
    edit_tensors(folder, lambda t: t.update(extra=np.zeros(3, np.float32)))
    with pytest.warns(LoadWarning, match="extra"):
        model = minibert.load(folder)
    assert model.load_report["unexpected"] == ["extra"]


def test_head_checkpoint_loaded_as_base_model_reports_the_head(tmp_path):
    folder = copy_case("bert-pretraining", tmp_path)
    edit_config(folder, architectures=["BertModel"])
    with pytest.warns(LoadWarning, match="cls.predictions"):
        model = minibert.load(folder)  # the body loads from the "bert." names
    ref = load_reference("bert-pretraining")
    out = model(**model_inputs(ref), output_hidden_states=True)
    np.testing.assert_allclose(out.last_hidden_state, ref["hidden_states_3"], atol=ATOL_HF)


def test_head_model_from_a_base_checkpoint_names_the_missing_head(tmp_path):
    folder = copy_case("bert-base", tmp_path)
    edit_config(folder, architectures=["BertForSequenceClassification"])
    with pytest.raises(CheckpointError, match="classifier.weight"):
        minibert.load(folder)


def test_gamma_beta_layernorm_names(tmp_path):
    folder = copy_case("bert-base", tmp_path)

    def rename(t):
        for name in [n for n in t if "LayerNorm" in n]:
            new = name.replace(".weight", ".gamma").replace(".bias", ".beta")
            t[new] = t.pop(name)

    edit_tensors(folder, rename)
    ref = load_reference("bert-base")
    out = minibert.load(folder)(**model_inputs(ref))
    np.testing.assert_allclose(out.last_hidden_state, ref["last_hidden_state"], atol=ATOL_HF)


def test_old_style_tied_copies_are_accepted(tmp_path):
    folder = copy_case("bert-mlm", tmp_path)

    def add_tied(t):
        t["cls.predictions.decoder.weight"] = t["bert.embeddings.word_embeddings.weight"]
        t["cls.predictions.decoder.bias"] = t["cls.predictions.bias"]
        t["bert.embeddings.position_ids"] = np.arange(20, dtype=np.int64)[None]

    edit_tensors(folder, add_tied)
    model = minibert.load(folder)
    assert model.load_report["unexpected"] == []
    assert model.load_report["ignored"] == ["bert.embeddings.position_ids"]


# --- writing ---------------------------------------------------------------------------------
@pytest.mark.parametrize("case", [c for c in MODEL_CASES if not c.startswith("bert-bin")])
def test_save_pretrained_writes_what_transformers_writes(case, tmp_path):
    """Same tensor names, shapes and config values as transformers' own save_pretrained, so
    transformers loads it as it loads its own files (the generator also checks this with
    transformers itself: see test_transformers_roundtrip_recorded)."""
    model = minibert.load(case_dir(case))
    model.save_pretrained(tmp_path)
    theirs = load_file(case_dir(case) / "model.safetensors")
    ours = load_file(tmp_path / "model.safetensors")
    assert sorted(ours) == sorted(theirs)
    for name in theirs:
        assert ours[name].shape == theirs[name].shape
        np.testing.assert_array_equal(ours[name], theirs[name])
    their_config = json.loads((case_dir(case) / "config.json").read_text())
    our_config = json.loads((tmp_path / "config.json").read_text())
    for key, value in their_config.items():
        if key not in ("dtype", "torch_dtype", "transformers_version"):
            assert our_config.get(key) == value, key
    again = minibert.load(tmp_path)
    ref = load_reference(case)
    a = model(**model_inputs(ref), output_hidden_states=True).hidden_states[-1]
    b = again(**model_inputs(ref), output_hidden_states=True).hidden_states[-1]
    np.testing.assert_array_equal(a, b)


def test_transformers_roundtrip_recorded():
    """The generator loads minibert's save_pretrained output with transformers and records the
    largest output difference per case; every class must have been checked."""
    roundtrip = META.get("roundtrip")
    assert roundtrip, "tests/fixtures/generate.py did not record the transformers round trip"
    checked = {name for name, r in roundtrip.items() if r["max_abs_diff"] <= ATOL_HF}
    classes = {META["cases"][name]["class"] for name in checked}
    expected = {case["class"] for case in META["cases"].values() if "class" in case}
    assert classes == expected


def test_save_is_atomic_and_overwrites(tmp_path):
    model = minibert.load(case_dir("bert-base"))
    model.save_pretrained(tmp_path)
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


def test_safetensors_metadata_says_pt(tmp_path):
    minibert.load(case_dir("bert-base")).save_pretrained(tmp_path)
    raw = (tmp_path / "model.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(io.BytesIO(raw[8 : 8 + n]).read())
    assert header["__metadata__"] == {"format": "pt"}


def test_load_a_base_checkpoint_into_a_new_head():
    model = minibert.load(
        case_dir("bert-base"), architecture="BertForSequenceClassification", num_labels=4
    )
    assert type(model).__name__ == "BertForSequenceClassification"
    assert model.load_report["initialized"] == ["classifier.out.weight", "classifier.out.bias"]
    assert model.config.num_labels == 4
    ref = load_reference("bert-base")
    out = model(**model_inputs(ref))
    assert out.logits.shape == (3, 4)
    np.testing.assert_allclose(out.pooler_output, ref["pooler_output"], atol=ATOL_HF)
    with pytest.raises(ConfigError, match="RobertaForMaskedLM"):
        minibert.load(case_dir("bert-base"), architecture="RobertaForMaskedLM")


def test_weights_are_mapped_copy_on_write(tmp_path):
    """Loading maps the file; changing a weight in place (a training step) leaves it intact."""
    folder = copy_case("bert-base", tmp_path)
    model = minibert.load(folder)
    weight = model.embeddings.word.params["weight"]
    assert weight.flags.writeable
    original = weight.copy()
    weight += 1.0
    again = minibert.load(folder)
    np.testing.assert_array_equal(again.embeddings.word.params["weight"], original)
