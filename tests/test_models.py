"""Every fixture class against the outputs transformers stored for it (atol 1e-4)."""

import numpy as np
import pytest

import minibert
from conftest import ATOL_HF, META, MODEL_CASES, case_dir, load_reference, model_inputs

INPUT_KEYS = {"input_ids", "attention_mask", "token_type_ids"}
# transformers names ALBERT's sentence-order output sop_logits; ours keeps one name for both
RENAMED = {"sop_logits": "seq_relationship_logits"}


def our_output(out, key):
    for stacked in ("hidden_states", "attentions"):
        if key.startswith(stacked + "_"):
            return getattr(out, stacked)[int(key.rsplit("_", 1)[1])]
    return getattr(out, RENAMED.get(key, key))


@pytest.mark.parametrize("case", MODEL_CASES)
def test_matches_transformers(case):
    meta = META["cases"][case]
    model = minibert.load(case_dir(case))
    assert type(model).__name__ == meta["class"]
    assert model.load_report["unexpected"] == []
    ref = load_reference(case)
    out = model(**model_inputs(ref), output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == meta["num_hidden_states"]
    assert len(out.attentions) == meta["num_attentions"]
    compared = [k for k in ref if k not in INPUT_KEYS]
    assert compared, "a fixture with no stored outputs checks nothing"
    for key in compared:
        ours = our_output(out, key)
        assert ours.dtype == np.float32, key
        assert ours.shape == ref[key].shape, key
        np.testing.assert_allclose(ours, ref[key], atol=ATOL_HF, rtol=0, err_msg=f"{case}: {key}")


@pytest.mark.parametrize("case", ["bert-base", "albert-mlm", "distilbert-mlm", "roberta-seqcls"])
def test_float64_model(case):
    ref = load_reference(case)
    m32 = minibert.load(case_dir(case))
    m64 = minibert.load(case_dir(case), dtype="float64")
    assert all(a.dtype == np.float64 for _, a in m64.named_parameters())
    o32 = m32(**model_inputs(ref), output_hidden_states=True)
    o64 = m64(**model_inputs(ref), output_hidden_states=True)
    for a, b in zip(o32.hidden_states, o64.hidden_states, strict=True):
        assert b.dtype == np.float64
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_tied_decoder_shares_the_embedding_array():
    model = minibert.load(case_dir("bert-mlm"))
    assert model.mlm.decoder.params["weight"] is model.embeddings.word.params["weight"]
    names = [n for n, _ in model.named_parameters()]
    assert "mlm.decoder.weight" not in names  # listed once, under the embedding
    untied = model.num_parameters() + model.embeddings.word.params["weight"].size
    assert sum(a.size for _, m, k in model._param_slots() for a in [m.params[k]]) == untied


def test_albert_shares_layers():
    model = minibert.load(case_dir("albert-mlm"))  # 2 layers x inner_group_num 2
    config = model.config
    assert len(model.encoder.layers) == config.num_hidden_groups * config.inner_group_num
    assert len(model.encoder.schedule) == config.num_hidden_layers * config.inner_group_num


def test_outputs_item_access_and_keys():
    ref = load_reference("bert-base")
    out = minibert.load(case_dir("bert-base"))(**model_inputs(ref))
    assert out["last_hidden_state"] is out.last_hidden_state
    assert out.keys() == ["last_hidden_state", "pooler_output"]
    assert "hidden_states" not in out
    with pytest.raises(KeyError, match="hidden_states"):
        out["hidden_states"]


def test_num_parameters_matches_checkpoint():
    meta = META["cases"]["bert-base"]
    expected = sum(int(np.prod(shape)) for _, shape in meta["tensors"].values())
    assert minibert.load(case_dir("bert-base")).num_parameters() == expected


@pytest.mark.parametrize("case", ["bert-base", "albert-mlm", "distilbert-seqcls"])
def test_fused_inference_path_equals_training_path(case):
    """Eval mode fuses biases, GELU and LayerNorm into kernels; training mode runs the plain
    functional ops (whose caches backward needs). Same numbers either way."""
    ref = load_reference(case)
    model = minibert.load(case_dir(case))
    fast = model(**model_inputs(ref), output_hidden_states=True).hidden_states
    model.train(dropout=False)
    plain = model(**model_inputs(ref), output_hidden_states=True).hidden_states
    for a, b in zip(fast, plain, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
