"""Checkpoint formats other tools write: Google's TF1 tensor bundles (BERT, ALBERT), fairseq
RoBERTa model.pt, sharded pytorch_model.bin; and `minibert convert` / `minibert inspect`.

The fixtures come from tests/fixtures/generate_checkpoints.py: the TF1 checkpoints are written
by TensorFlow's own Saver and the references by transformers' own converters, so the reader,
the name mapping and the config dialects are all checked against independent code.
"""

import json
import pickle
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

import minibert
from minibert.checkpoint import (
    checkpoint_format,
    list_tensors,
    read_bundle,
    read_torch_file,
    read_weights,
    tf1_prefix,
    weight_files,
)
from minibert.checkpoint.fairseq import fairseq_name, model_settings, split_in_proj
from minibert.checkpoint.fairseq import hf_config as fairseq_hf_config
from minibert.checkpoint.sstable import crc32c, masked_crc32c, parse_message, read_varint
from minibert.checkpoint.tf1_names import hf_config, hf_name
from minibert.cli.convert import inspect_rows
from minibert.cli.main import main
from minibert.errors import CheckpointError

CHECKPOINTS = Path(__file__).parent / "fixtures" / "checkpoints"
META = json.loads((CHECKPOINTS / "meta.json").read_text())["cases"]
# float32 forward against transformers' float32 forward of the converted model: the same
# products in a different order, a few ulps of values of order 1-10 (measured: < 1e-6)
ATOL = 1e-5
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def reference(case: str):
    return np.load(CHECKPOINTS / case / "reference.npz")


def run(model, ref):
    inputs = {k: ref[k] for k in INPUT_NAMES if k in ref.files}
    return model(**inputs, output_hidden_states=True)


def copy_case(case: str, tmp_path) -> Path:
    return Path(shutil.copytree(CHECKPOINTS / case, tmp_path / case))


# --- outputs equal the converted transformers model ---------------------------------------------
@pytest.mark.parametrize(
    ("case", "architecture", "outputs"),
    [
        ("bert-tf1", "BertForPreTraining", ("prediction_logits", "seq_relationship_logits")),
        ("albert-tf1", "AlbertForPreTraining", ("prediction_logits", "sop_logits")),
        ("roberta-fairseq", "RobertaForMaskedLM", ("logits",)),
        ("roberta-fairseq-legacy", "RobertaForMaskedLM", ("logits",)),
        ("bert-sharded-bin", "BertModel", ("last_hidden_state", "pooler_output")),
    ],
)
def test_outputs_equal_transformers(case, architecture, outputs):
    ref = reference(case)
    model = minibert.load(CHECKPOINTS / case)
    assert model.config.architecture == architecture
    assert model.load_report["unexpected"] == []
    out = run(model, ref)
    for name in outputs:
        np.testing.assert_allclose(getattr(out, name), ref[name], atol=ATOL, err_msg=name)
    np.testing.assert_allclose(out.hidden_states[-1], ref["hidden_states_last"], atol=ATOL)


def test_formats_are_recognised():
    kinds = {case: checkpoint_format(CHECKPOINTS / case) for case in META}
    assert kinds == {
        "bert-tf1": "tf1",
        "albert-tf1": "tf1",
        "roberta-fairseq": "fairseq",
        "roberta-fairseq-legacy": "fairseq",
        "bert-sharded-bin": "pytorch-sharded",
        "tf2-object": "tf1",  # the same bundle format; refused once its names are read
    }


# --- TF1: every stored tensor accounted for -------------------------------------------------------
def test_tf1_bert_every_tensor_is_mapped_or_ignored():
    listed = list_tensors(CHECKPOINTS / "bert-tf1")
    assert len(listed) == META["bert-tf1"]["stored_tensors"]
    mapped = [t for t in listed if t.status == "mapped"]
    ignored = {t.name: t.note for t in listed if t.status == "ignored"}
    assert len(mapped) == META["bert-tf1"]["variables"]
    assert ignored["global_step"] == "training step counter"
    assert sum(n.endswith("/adam_m") for n in ignored) == len(mapped)
    assert sum(n.endswith("/adam_v") for n in ignored) == len(mapped)
    assert len(ignored) == 2 * len(mapped) + 1
    model = minibert.load(CHECKPOINTS / "bert-tf1")
    assert model.load_report["used"] == len(mapped)  # every weight used once
    assert sorted(model.load_report["ignored"]) == sorted(ignored)


def test_tf1_kernels_are_transposed_and_heads_named():
    raw = read_bundle(tf1_prefix(CHECKPOINTS / "bert-tf1"))
    tensors = read_weights(CHECKPOINTS / "bert-tf1")
    kernel = raw["bert/encoder/layer_1/intermediate/dense/kernel"]  # (C, F) in TF
    weight = tensors["bert.encoder.layer.1.intermediate.dense.weight"]  # (F, C) in PyTorch
    assert kernel.shape == (32, 37)
    np.testing.assert_array_equal(weight, kernel.T)
    seq = raw["cls/seq_relationship/output_weights"]  # already (out, in)
    np.testing.assert_array_equal(tensors["cls.seq_relationship.weight"], seq)
    assert "cls.predictions.bias" in tensors
    assert not any("adam" in name for name in tensors)


def test_tf1_two_shards_are_both_read():
    files = [f.name for f in weight_files(CHECKPOINTS / "bert-tf1")]
    assert files == [
        "bert_model.ckpt.index",
        "bert_model.ckpt.data-00000-of-00002",
        "bert_model.ckpt.data-00001-of-00002",
    ]


def test_tf1_albert_names_and_state_file():
    # the folder's `checkpoint` file names model.ckpt-7, as TensorFlow's Saver records it
    assert tf1_prefix(CHECKPOINTS / "albert-tf1").name == "model.ckpt-7"
    listed = {t.name: t for t in list_tensors(CHECKPOINTS / "albert-tf1")}
    query = listed["bert/encoder/transformer/group_1/inner_group_0/attention_1/self/query/kernel"]
    assert query.hf_name == (
        "albert.encoder.albert_layer_groups.1.albert_layers.0.attention.query.weight"
    )
    assert listed["bert/encoder/embedding_hidden_mapping_in/kernel"].shape == (16, 32)
    assert listed["cls/seq_relationship/output_weights"].hf_name == (
        "sop_classifier.classifier.weight"
    )
    assert [t.name for t in listed.values() if t.status == "ignored"] == ["global_step"]


@pytest.mark.parametrize(
    ("tf_name", "family", "expected"),
    [
        ("bert/encoder/layer_11/output/LayerNorm/gamma", "bert",
         ("bert.encoder.layer.11.output.LayerNorm.weight", False)),
        ("bert/pooler/dense/kernel", "bert", ("bert.pooler.dense.weight", True)),
        ("cls/squad/output_weights", "bert", ("qa_outputs.weight", False)),
        ("output_weights", "bert", ("classifier.weight", False)),
        ("module/bert/embeddings/word_embeddings", "albert",
         ("albert.embeddings.word_embeddings.weight", False)),
        ("bert/pooler/dense/bias", "albert", ("albert.pooler.bias", False)),
        ("bert/encoder/transformer/group_0/inner_group_1/LayerNorm_1/beta", "albert",
         ("albert.encoder.albert_layer_groups.0.albert_layers.1.full_layer_layer_norm.bias",
          False)),
        ("bert/encoder/transformer/group_0/inner_group_0/ffn_1/intermediate/output/dense/kernel",
         "albert", ("albert.encoder.albert_layer_groups.0.albert_layers.0.ffn_output.weight",
                    True)),
        ("bert/encoder/layer_0/something/else", "bert", (None, False)),
    ],
)  # fmt: skip
def test_tf1_names(tf_name, family, expected):
    assert hf_name(tf_name, family) == expected


def test_tf1_config_dialects():
    config = minibert.io.read_config(CHECKPOINTS / "albert-tf1")
    assert (config.model_type, config.architecture) == ("albert", "AlbertForPreTraining")
    assert (config.embedding_size, config.num_hidden_groups) == (16, 2)
    assert config.hidden_act == "gelu"  # erf, as transformers reads Google's "gelu"
    google = json.loads((CHECKPOINTS / "albert-tf1" / "albert_config.json").read_text())
    with pytest.raises(NotImplementedError, match="net_structure_type"):
        hf_config({**google, "net_structure_type": 1}, "albert", {})
    shapes = {"output_weights": (3, 32), "bert/pooler/dense/kernel": (32, 32)}
    classifier = hf_config({"hidden_size": 32}, "bert", shapes)
    assert classifier["architectures"] == ["BertForSequenceClassification"]
    assert classifier["num_labels"] == 3


def test_tf1_loads_as_a_bare_model_with_heads_unused():
    model = minibert.load(CHECKPOINTS / "bert-tf1", architecture="BertModel")
    assert model.load_report["unexpected"] == sorted(
        name for name in read_weights(CHECKPOINTS / "bert-tf1") if name.startswith("cls.")
    )
    ref = reference("bert-tf1")
    np.testing.assert_allclose(
        run(model, ref).last_hidden_state, ref["hidden_states_last"], atol=ATOL
    )


# --- TF1: damaged files are named, never read as garbage ----------------------------------------
def test_tf1_checksum_catches_a_flipped_byte(tmp_path):
    folder = copy_case("albert-tf1", tmp_path)
    data = folder / "model.ckpt-7.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[100] ^= 0x01
    data.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum of .* does not match"):
        minibert.load(folder)


def test_tf1_truncated_shard_is_reported(tmp_path):
    folder = copy_case("albert-tf1", tmp_path)
    data = folder / "model.ckpt-7.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="ends before the bytes of"):
        minibert.load(folder)


def test_tf1_damaged_index_is_reported(tmp_path):
    folder = copy_case("albert-tf1", tmp_path)
    index = folder / "model.ckpt-7.index"
    raw = bytearray(index.read_bytes())
    raw[-1] ^= 0xFF  # the magic number
    index.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="bad magic number"):
        minibert.load(folder)
    raw[-1] ^= 0xFF
    raw[10] ^= 0x01  # inside the first data block
    index.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum does not match"):
        minibert.load(folder)


def test_tf1_without_its_config_is_named(tmp_path):
    folder = copy_case("bert-tf1", tmp_path)
    (folder / "bert_config.json").unlink()
    with pytest.raises(CheckpointError, match="no bert_config.json or albert_config.json"):
        minibert.load(folder)


def test_varint_protobuf_and_crc32c():
    assert read_varint(b"\xac\x02", 0) == (300, 2)  # protobuf's documented example
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c(b"") == 0
    masked = masked_crc32c(b"123456789")
    crc = 0xE3069283
    assert masked == ((((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)
    # field 1 varint 150, field 2 bytes "hi", field 6 fixed32 7
    message = b"\x08\x96\x01" + b"\x12\x02hi" + b"\x35" + struct.pack("<I", 7)
    assert parse_message(message) == {1: [150], 2: [b"hi"], 6: [7]}
    with pytest.raises(CheckpointError, match="varint runs past"):
        read_varint(b"\x80", 0)


# --- fairseq ----------------------------------------------------------------------------------
def test_fairseq_every_tensor_accounted_for():
    listed = list_tensors(CHECKPOINTS / "roberta-fairseq")
    statuses = {t.name: t.status for t in listed}
    assert statuses.pop("encoder.sentence_encoder.version") == "ignored"
    assert statuses.pop("-") == "filled"  # the zero token-type table
    assert set(statuses.values()) == {"mapped"}
    assert len(statuses) + 1 == META["roberta-fairseq"]["stored_tensors"]
    tensors = read_weights(CHECKPOINTS / "roberta-fairseq")
    np.testing.assert_array_equal(tensors["roberta.embeddings.token_type_embeddings.weight"], 0)


def test_fairseq_names_old_and_new():
    assert fairseq_name("decoder.sentence_encoder.emb_layer_norm.weight") == (
        "roberta.embeddings.LayerNorm.weight", "",
    )  # fmt: skip
    assert fairseq_name("encoder.sentence_encoder.layers.3.fc1.bias")[0] == (
        "roberta.encoder.layer.3.intermediate.dense.bias"
    )
    assert fairseq_name("encoder.classification_heads.mnli.out_proj.weight")[0] == (
        "classifier.out_proj.weight"
    )
    packed = np.arange(12.0).reshape(6, 2)  # (3C, C) with C = 2: q, k, v stacked
    split = split_in_proj({"x.layers.0.self_attn.in_proj_weight": packed})
    np.testing.assert_array_equal(split["x.layers.0.self_attn.k_proj.weight"], packed[2:4])


def test_fairseq_legacy_names_and_pre_zip_format():
    """fairseq < 0.10 in torch's pre-zip format: `decoder.`, emb_layer_norm, q/k/v in one
    in_proj_weight, each third listed as its own row."""
    listed = list_tensors(CHECKPOINTS / "roberta-fairseq-legacy")
    assert not zipfile.is_zipfile(CHECKPOINTS / "roberta-fairseq-legacy" / "model.pt")
    thirds = [t for t in listed if "in_proj_weight[" in t.name]
    assert [t.hf_name.rsplit(".", 2)[1] for t in thirds[:3]] == ["query", "key", "value"]
    assert [t.shape for t in thirds[:3]] == [(32, 32)] * 3
    new = read_weights(CHECKPOINTS / "roberta-fairseq")
    old = read_weights(CHECKPOINTS / "roberta-fairseq-legacy")
    assert sorted(new) == sorted(old)
    for name in new:
        np.testing.assert_array_equal(old[name], new[name], err_msg=name)
    rows = inspect_rows(CHECKPOINTS / "roberta-fairseq-legacy")
    assert {r["status"] for r in rows} == {"mapped", "ignored", "filled"}


def _legacy_stream(*pickles) -> bytes:
    return b"".join(pickle.dumps(p, protocol=2) for p in pickles)


def test_pre_zip_torch_files_are_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    file = tmp_path / "model.pt"
    magic, version = 0x1950A86A20F9469CFC6C, 1001
    file.write_bytes(_legacy_stream(magic, version, {}, {"w": _Evil()}))
    with pytest.raises(CheckpointError, match=r"refusing to load the global (posix|os)\.system"):
        read_torch_file(file)
    assert not (tmp_path / "pwned").exists()
    file.write_bytes(_legacy_stream(magic, 1000, {}))
    with pytest.raises(CheckpointError, match="older torch.save format"):
        read_torch_file(file)
    good = (CHECKPOINTS / "roberta-fairseq-legacy" / "model.pt").read_bytes()
    file.write_bytes(good[: len(good) - 100])
    with pytest.raises(CheckpointError, match="ends inside the storage"):
        read_torch_file(file, records=True)


def test_fairseq_settings_from_args_or_cfg():
    from argparse import Namespace

    heads = {"encoder_attention_heads": 4}
    assert model_settings({"args": Namespace(**heads)}) == heads
    assert model_settings({"args": None, "cfg": {"model": heads}}) == heads
    assert model_settings({"args": None, "cfg": {"model": Namespace(**heads)}}) == heads
    assert model_settings({"cfg": {"task": {}}}) is None
    tensors = read_weights(CHECKPOINTS / "roberta-fairseq")
    with pytest.raises(NotImplementedError, match="encoder_normalize_before"):
        fairseq_hf_config({**heads, "encoder_normalize_before": True}, tensors)
    config = fairseq_hf_config(heads, tensors)
    assert (config["num_hidden_layers"], config["max_position_embeddings"]) == (2, 20)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


def test_fairseq_unpickler_still_refuses_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = copy_case("roberta-fairseq", tmp_path)
    payload = pickle.dumps({"args": None, "model": {}, "extra": _Evil()}, protocol=2)
    with zipfile.ZipFile(folder / "model.pt", "w") as zf:
        zf.writestr("archive/data.pkl", payload)
    with pytest.raises(CheckpointError, match=r"refusing to load the global (posix|os)\.system"):
        minibert.load(folder)
    assert not (tmp_path / "pwned").exists()


def test_pytorch_bin_still_refuses_fairseq_records(tmp_path):
    """argparse.Namespace is allowed in a fairseq checkpoint's records, not in a weights file."""
    import argparse

    folder = copy_case("bert-sharded-bin", tmp_path)
    shard = sorted(folder.glob("*.bin"))[0]
    with zipfile.ZipFile(shard, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"a": argparse.Namespace(x=1)}, protocol=2))
    with pytest.raises(CheckpointError, match="refusing to load the global argparse.Namespace"):
        minibert.load(folder)


# --- sharded .bin -------------------------------------------------------------------------------
def test_sharded_bin_index_naming_a_lost_shard(tmp_path):
    folder = copy_case("bert-sharded-bin", tmp_path)
    sorted(folder.glob("*.bin"))[1].unlink()
    with pytest.raises(CheckpointError, match="names the shard .* which is not there"):
        minibert.load(folder)


def test_sharded_bin_tensor_missing_from_its_shard(tmp_path):
    folder = copy_case("bert-sharded-bin", tmp_path)
    index = json.loads((folder / "pytorch_model.bin.index.json").read_text())
    first = sorted(set(index["weight_map"].values()))[0]
    index["weight_map"]["pooler.dense.extra"] = first
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="lacks tensors .* pooler.dense.extra"):
        minibert.load(folder)


# --- the command line -----------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["bert-tf1", "albert-tf1", "roberta-fairseq"])
def test_convert_writes_a_hugging_face_folder(case, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["convert", str(CHECKPOINTS / case), str(out)]) == 0
    assert "differ by at most 0.0e+00" in capsys.readouterr().out
    assert (out / "config.json").is_file()
    assert (out / "model.safetensors").is_file()
    assert checkpoint_format(out) == "safetensors"
    if case.endswith("tf1"):
        assert (out / "vocab.txt").is_file()
    ref = reference(case)
    out_model = minibert.load(out)
    assert out_model.load_report["unexpected"] == []
    np.testing.assert_allclose(
        run(out_model, ref).hidden_states[-1], ref["hidden_states_last"], atol=ATOL
    )


def test_convert_refuses_a_non_empty_output(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    code = main(["convert", str(CHECKPOINTS / "bert-tf1"), str(tmp_path / "out")])
    assert code == 1
    assert "is not an empty folder" in capsys.readouterr().err
    code = main(["convert", str(tmp_path / "nowhere"), str(tmp_path / "out2")])
    assert code == 1
    assert "does not exist" in capsys.readouterr().err


def test_inspect_statuses():
    rows = inspect_rows(CHECKPOINTS / "bert-tf1")
    counts = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    assert counts == {"mapped": 46, "ignored": 93}
    bare = inspect_rows(CHECKPOINTS / "bert-tf1", architecture="BertModel")
    unused = sorted(r["hf_name"] for r in bare if r["status"] == "unused head")
    assert unused == sorted(
        name for name in read_weights(CHECKPOINTS / "bert-tf1") if name.startswith("cls.")
    )
    fairseq_bare = inspect_rows(CHECKPOINTS / "roberta-fairseq", architecture="RobertaModel")
    missing = sorted(r["hf_name"] for r in fairseq_bare if r["status"] == "missing")
    assert missing == ["pooler.dense.bias", "pooler.dense.weight"]  # fairseq has no pooler
    assert {r["status"] for r in fairseq_bare} == {
        "mapped", "ignored", "filled", "unused head", "missing",
    }  # fmt: skip


def test_inspect_a_single_file_and_json(capsys):
    assert main(["inspect", str(CHECKPOINTS / "albert-tf1" / "model.ckpt-7.index"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == META["albert-tf1"]["stored_tensors"]
    step = next(r for r in rows if r["name"] == "global_step")
    assert (step["dtype"], step["shape"], step["status"]) == ("int64", [], "ignored")


def test_inspect_a_missing_path(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nothing")]) == 1
    assert "no such folder or file" in capsys.readouterr().err


def test_tf2_object_based_checkpoints_are_refused_by_name(capsys):
    folder = CHECKPOINTS / "tf2-object"
    with pytest.raises(CheckpointError, match="object-based TF2 checkpoint"):
        minibert.load(folder)
    assert main(["inspect", str(folder)]) == 1
    assert "object-based TF2 checkpoint" in capsys.readouterr().err
    # the index lists the object graph, a string tensor, which is never read as numbers
    with pytest.raises(CheckpointError, match="holds string values"):
        read_bundle(tf1_prefix(folder), names=["_CHECKPOINTABLE_OBJECT_GRAPH"])


def test_inspect_a_bundle_without_its_config(tmp_path):
    folder = copy_case("albert-tf1", tmp_path)
    (folder / "albert_config.json").unlink()
    rows = inspect_rows(folder)  # listed by the format alone: nothing says what is missing
    assert {r["status"] for r in rows} == {"mapped", "ignored"}
    assert len(rows) == META["albert-tf1"]["stored_tensors"]


def test_convert_cased_vocabulary(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["convert", str(CHECKPOINTS / "bert-tf1"), str(out), "--cased"]) == 0
    capsys.readouterr()
    assert json.loads((out / "tokenizer_config.json").read_text()) == {"do_lower_case": False}
    tok = minibert.load_tokenizer(out)
    assert tok.backend.encode("Word1", add_special_tokens=False).tokens != ["word1"]
    plain = tmp_path / "plain"
    assert main(["convert", str(CHECKPOINTS / "bert-tf1"), str(plain)]) == 0
    assert minibert.load_tokenizer(plain).backend.encode(
        "Word1", add_special_tokens=False
    ).tokens == ["word1"]
    code = main(["convert", str(CHECKPOINTS / "roberta-fairseq"), str(tmp_path / "r"), "--cased"])
    assert code == 1
    assert "--cased applies to a vocab.txt" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # refused before anything is written


def test_inspect_hugging_face_folders():
    fixtures = CHECKPOINTS.parent
    rows = {r["name"]: r for r in inspect_rows(fixtures / "bert-bin")}
    assert rows["bert.embeddings.position_ids"]["status"] == "ignored"  # a buffer
    assert {r["status"] for r in rows.values()} == {"mapped", "ignored"}
    bare = inspect_rows(fixtures / "bert-mlm", architecture="BertModel")
    unused = {r["name"] for r in bare if r["status"] == "unused head"}
    assert len(unused) == 5
    assert all(name.startswith("cls.predictions.") for name in unused)
    missing = [(r["hf_name"], r["note"]) for r in bare if r["status"] == "missing"]
    assert missing == [
        ("pooler.dense.weight", "drawn fresh when loaded as this class"),
        ("pooler.dense.bias", "drawn fresh when loaded as this class"),
    ]
    index = CHECKPOINTS / "bert-sharded-bin" / "pytorch_model.bin.index.json"
    listed = sorted(r["name"] for r in inspect_rows(index))
    assert listed == sorted(json.loads(index.read_text())["weight_map"])


def test_a_tf1_variable_without_a_name_is_reported_not_dropped(monkeypatch):
    import minibert.checkpoint.tf1_names as names

    real = names.hf_name
    odd = "cls/seq_relationship/output_bias"
    monkeypatch.setattr(names, "hf_name", lambda n, f: (None, False) if n == odd else real(n, f))
    model = minibert.load(CHECKPOINTS / "bert-tf1", architecture="BertForMaskedLM")
    assert odd in model.load_report["unexpected"]
    rows = {r["name"]: r for r in inspect_rows(CHECKPOINTS / "bert-tf1")}
    assert (rows[odd]["status"], rows[odd]["note"]) == ("unused", "no Hugging Face name")


def test_convert_names_googles_sentencepiece_model(tmp_path, capsys):
    folder = copy_case("albert-tf1", tmp_path)
    (folder / "30k-clean.model").write_bytes(b"stands in for a SentencePiece model")
    assert main(["convert", str(folder), str(tmp_path / "out")]) == 0
    assert "30k-clean.model as spiece.model" in capsys.readouterr().out
    assert (tmp_path / "out" / "spiece.model").read_bytes() == (
        folder / "30k-clean.model"
    ).read_bytes()
