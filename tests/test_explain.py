"""`minibert explain`: the per-op costs add up to docs/explain.md's formulas and have the traced
shapes, the attention statistics, norms and pooled vectors are those of transformers' outputs
on the stored fixtures, the memory estimate is within 20% of the measured peak, the family
notes count what the checkpoints hold, and bad input is a named error (one line from the CLI)."""

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file

import minibert
from conftest import ATOL_HF, FIXTURES, load_reference
from minibert.cli.main import main
from minibert.errors import InputError
from minibert.explain import (
    explain,
    explain_ids,
    forward_bytes,
    forward_flops,
    forward_ops,
    measure_forward_peak,
    memory_estimate,
    render_text,
)
from minibert.explain.costs import ACTIVATION_FLOPS, WeightFormat

FAMILIES = ["bert-base", "albert-base", "distilbert-base", "roberta-base"]
# albert-mlm: 2 layers x inner_group_num 2 (4 steps over 2 unique layers), and no pooler
COST_CASES = [*FAMILIES, "albert-mlm", "bert-pretraining", "distilbert-sinusoidal"]
BERT = FIXTURES / "pipelines" / "bert-encoder"  # BertModel + WordPiece tokenizer, 64 positions
ROBERTA = FIXTURES / "pipelines" / "roberta-mlm"  # byte-level BPE, positions from 2


def load(name):
    return minibert.load(FIXTURES / name)


# --- costs: the ops add up to the stated formulas ----------------------------------------------
def docs_flops(config, B, T, pooler):
    """docs/explain.md's FLOP formula, written out here from the page (not from costs.py)."""
    N, C, F, H = B * T, config.hidden_size, config.intermediate_size, config.num_attention_heads
    E = config.embedding_size or C
    k = 3 if config.type_vocab_size else 2
    a = ACTIVATION_FLOPS[config.hidden_act]
    S = config.num_hidden_layers * (config.inner_group_num if config.model_type == "albert" else 1)
    total = (k - 1) * N * E + N * (7 * E + 4)
    if config.model_type == "albert":
        total += 2 * N * E * C + N * C
    total += S * (
        8 * N * C * C + 4 * N * C * F + 4 * N * T * C + 7 * B * H * T * T
        + 21 * N * C + (1 + a) * N * F + 8 * N
    )  # fmt: skip
    return total + (2 * B * C * C + 2 * B * C if pooler else 0)


def docs_bytes(config, B, T, pooler, s, w):
    """docs/explain.md's bytes-moved formula, written out from the page."""
    N, C, F, H = B * T, config.hidden_size, config.intermediate_size, config.num_attention_heads
    E = config.embedding_size or C
    k = 3 if config.type_vocab_size else 2
    sigma = 4 if w == 1 else 0
    S = config.num_hidden_layers * (config.inner_group_num if config.model_type == "albert" else 1)
    total = (w + s) * N * E + sigma * N + (k - 1) * 2 * s * N * E
    total += s * (k + 1) * N * E + s * (2 * N * E + 2 * E)
    if config.model_type == "albert":
        total += s * N * (E + C) + w * E * C + (sigma + s) * C
    total += S * (
        s * (24 * N * C + 4 * N * F + 6 * B * H * T * T + N)
        + w * (4 * C * C + 2 * C * F) + (sigma + s) * (5 * C + F) + 4 * s * C
    )  # fmt: skip
    if pooler:
        total += s * (2 * B * C + C) + w * C * C + sigma * C + 2 * s * B * C
    return total


@pytest.mark.parametrize("name", COST_CASES)
@pytest.mark.parametrize(("B", "T"), [(1, 7), (3, 5), (2, 20)])
def test_the_ops_add_up_to_the_stated_formulas(name, B, T):
    model = load(name)
    config, pooler = model.config, hasattr(model, "pooler")
    ops = forward_ops(config, B, T, pooler=pooler)
    assert sum(op.flops for op in ops) == docs_flops(config, B, T, pooler)
    assert sum(op.flops for op in ops) == forward_flops(config, B, T, pooler=pooler)
    for s, w in ((4, 4), (8, 8), (4, 1)):  # float32, float64, int8 weights
        ops = forward_ops(config, B, T, itemsize=s, weights=WeightFormat(8 * w), pooler=pooler)
        expected = docs_bytes(config, B, T, pooler, s, w)
        assert sum(op.bytes for op in ops) == expected, (s, w)
        assert forward_bytes(config, B, T, s, w, pooler=pooler) == expected


@pytest.mark.parametrize("name", COST_CASES)
def test_each_op_has_the_shape_of_its_traced_array(name):
    model = load(name)
    ids = np.random.default_rng(0).integers(5, 99, (2, 6))
    traced = minibert.trace(model, ids)
    ops = forward_ops(model.config, 2, 6, pooler=hasattr(model, "pooler"))
    for op in ops:
        assert op.shape == traced[op.name].shape, op.name
    # every value the forward computes before the head is costed, once
    body = [n for n in traced if not n.startswith(("output.", "mlm.", "classifier."))]
    assert [op.name for op in ops] == body


def test_a_linear_layer_and_the_attention_products_count_as_stated():
    """By hand for bert-base (C 32, H 4, F 37) at B 1, T 7: q is 2 x 7 x 32 x 32 + 7 x 32, the
    scores 2 x 4 x 7 x 7 x 8, the softmax 5 per score, GELU (erf) 5 per element."""
    ops = {op.name: op for op in forward_ops(load("bert-base").config, 1, 7)}
    assert ops["encoder.step.0.attention.q"].flops == 2 * 7 * 32 * 32 + 7 * 32
    assert ops["encoder.step.0.attention.scores"].flops == 2 * 4 * 7 * 7 * 8
    assert ops["encoder.step.0.attention.probs"].flops == 5 * 4 * 7 * 7
    assert ops["encoder.step.1.ffn.activation"].flops == 5 * 7 * 37
    assert ops["encoder.step.1.ffn.up"].bytes == 4 * (7 * 32 + 32 * 37 + 37 + 7 * 37)
    assert ops["embeddings.word"].flops == 0


@pytest.mark.parametrize(
    "options",
    [{}, {"embeddings": True}, {"bits": 4, "group_size": 8}, {"bits": 8, "group_size": 16}],
    ids=["float32", "int8", "int4-groups", "int8-groups"],
)
def test_weights_are_read_as_the_layers_store_them(options):
    """Float, int8 with a scale per row, group-wise int4 (F = 37 pads the last group) and
    int8: a row of the format is what each layer stores, and an op reads its layer whole."""
    float_model = load("bert-base")
    model = minibert.quantize(float_model, **options) if options else float_model
    layers = [f"encoder.layers.{i}.{n}" for i in range(2) for n in ("attn.q", "ffn.up", "ffn.down")]
    for path in ("embeddings.word", *layers, "pooler.dense"):
        rows, fan_in = float_model.get_parameter(path + ".weight").shape  # (out, in) in floats
        module = model._resolve(path + ".weight")[0]
        stored = sum(a.nbytes for k, a in module.params.items() if k != "bias")  # and scales
        assert WeightFormat.of(module).row_bytes(fan_in) * rows == stored, path
    up = model.encoder.layers[1].ffn.up
    report = explain_ids(model, [2, 7, 8, 9, 3])
    op = next(op for op in report.steps[1].ops if op.name.endswith("ffn.up"))
    activations = 4 * 5 * (32 + 37)  # the op reads x (5, 32) and writes (5, 37)
    weights = sum(a.nbytes for a in up.params.values())  # weight, its scales, the bias
    assert op.bytes == activations + weights


# torch's FlopCounterMode on transformers' forward of the same models counts 2 M N K per matrix
# product and nothing else (generate_explain.py): our ops' products must add up to its counts
FLOP_COUNTS = json.loads((FIXTURES / "explain" / "flop_counts.json").read_text())["cases"]
LINEAR_OPS = (
    "attention.q", "attention.k", "attention.v", "attention.output", "ffn.up", "ffn.output",
    "embeddings.projection", "pooler.dense",
)  # fmt: skip
LAYER_MODULES = {  # the module of transformers' model that holds encoder layer {i}
    "bert-base": "BertModel.encoder.layer.{i}",
    "albert-base": "AlbertModel.encoder.albert_layer_groups.{i}",  # one layer per group
    "distilbert-base": "DistilBertModel.transformer.layer.{i}",
    "roberta-base": "RobertaModel.encoder.layer.{i}",
}


def product_flops(op) -> int:
    """The matrix-product part of an op's FLOPs: a linear layer's less its bias (one per output
    element), the attention's scores and context whole, nothing for the rest."""
    if op.name.endswith(LINEAR_OPS):
        return op.flops - int(np.prod(op.shape))
    if op.name.endswith(("attention.scores", "attention.context")):
        return op.flops
    return 0


@pytest.mark.parametrize("name", FAMILIES)
def test_the_products_flops_are_those_torch_counts(name):
    model = load(name)
    steps = model.encoder.schedule
    for case in FLOP_COUNTS[name]:
        ops = forward_ops(model.config, case["batch"], case["length"])
        assert sum(product_flops(op) for op in ops) == case["total"], case["batch"]
        by_layer = {}  # a shared ALBERT layer sums the steps that ran it, as torch's module does
        for op in ops:
            if op.name.startswith("encoder.step."):
                layer = steps[int(op.name.split(".")[2])]
                by_layer[layer] = by_layer.get(layer, 0) + product_flops(op)
        for layer, flops in by_layer.items():
            module = case["by_module"][LAYER_MODULES[name].format(i=layer)]
            assert flops == sum(module.values()), (case["batch"], layer)


# --- the report's numbers against transformers' outputs -----------------------------------------
def fixture_row(name, row):
    """Row `row` of a fixture's inputs, cut to its real tokens, and its reference outputs."""
    ref = load_reference(name)
    T = int(ref["attention_mask"][row].sum())
    types = ref["token_type_ids"][row, :T] if "token_type_ids" in ref else None
    return ref, ref["input_ids"][row, :T], types, T


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("row", [0, 1])
def test_attention_statistics_are_those_of_transformers_attention(name, row):
    ref, ids, types, T = fixture_row(name, row)
    report = explain_ids(load(name), ids, types, sep_positions=[T - 1])
    assert len(report.steps) == sum(k.startswith("attentions_") for k in ref)
    for step in report.steps:
        probs = ref[f"attentions_{step.step}"][row, :, :T, :T].astype(np.float64)  # (H, T, T)
        entropy = -(probs * np.log(probs)).sum(-1).mean(-1)
        np.testing.assert_allclose(step.entropy, entropy, atol=ATOL_HF, rtol=0)
        np.testing.assert_allclose(step.cls_share, probs[:, :, 0].mean(-1), atol=ATOL_HF, rtol=0)
        np.testing.assert_allclose(step.sep_share, probs[:, :, -1].mean(-1), atol=ATOL_HF, rtol=0)
        np.testing.assert_allclose(report.attentions[step.step], probs, atol=ATOL_HF, rtol=0)


@pytest.mark.parametrize("name", FAMILIES)
def test_norms_and_pooled_vectors_are_those_of_transformers_outputs(name):
    ref, ids, types, T = fixture_row(name, 1)
    report = explain_ids(load(name), ids, types)
    hidden = [ref[f"hidden_states_{i}"][1, :T] for i in range(len(report.steps) + 1)]  # (T, C)
    norms = [np.linalg.norm(h.astype(np.float64), axis=-1).mean() for h in hidden]
    np.testing.assert_allclose(report.embedding_norm, norms[0], atol=ATOL_HF, rtol=0)
    for step in report.steps:
        np.testing.assert_allclose(step.norms["input"], norms[step.step], atol=ATOL_HF, rtol=0)
        np.testing.assert_allclose(step.norms["output"], norms[step.step + 1], atol=ATOL_HF, rtol=0)
    last = ref["last_hidden_state"][1, :T]  # (T, C)
    expected = {"cls": last[0], "mean": last.mean(0), "max": last.max(0)}
    for mode, vector in expected.items():
        np.testing.assert_allclose(report.pooled[mode], vector, atol=ATOL_HF, rtol=0)
    if "pooler_output" in ref:
        np.testing.assert_allclose(report.pooler_output, ref["pooler_output"][1], atol=ATOL_HF)
    else:
        assert report.pooler_output is None
        assert not report.pooler_ops


def test_a_residual_sum_norm_is_bounded_by_its_parts():
    """|x + a| <= |x| + |a| token by token, so the means obey it too."""
    ref, ids, types, _ = fixture_row("bert-base", 0)
    for step in explain_ids(load("bert-base"), ids, types).steps:
        assert step.norms["residual1"] <= step.norms["input"] + step.norms["attention"] + 1e-6
        assert step.norms["residual2"] <= step.norms["ln1"] + step.norms["ffn"] + 1e-6


# --- tokenization ------------------------------------------------------------------------------
@pytest.mark.parametrize("folder", [BERT, ROBERTA])
def test_tokens_carry_the_tokenizers_ids_offsets_and_words(folder):
    text, pair = "The unaffable cat sat.", "On the mat!"
    tokenizer = minibert.load_tokenizer(folder)
    report = explain(minibert.load(folder), tokenizer, text, pair)
    enc = tokenizer(text, pair, return_offsets_mapping=True)
    assert [t.id for t in report.tokens] == enc["input_ids"][0].tolist()
    assert [[t.start, t.end] for t in report.tokens] == enc["offset_mapping"][0].tolist()
    assert [t.word for t in report.tokens] == enc.word_ids(0)
    assert [t.sequence for t in report.tokens] == enc.sequence_ids(0)
    assert [t.text for t in report.tokens] == enc.tokens(0)
    # the word map read back: the words of both texts, in order, with their pieces
    words = [(w.sequence, w.text) for w in report.words]
    assert words == [(0, w) for w in ("The", "unaffable", "cat", "sat", ".")] + [
        (1, w) for w in ("On", "the", "mat", "!")
    ]
    unaffable = report.words[1]
    assert len(unaffable.tokens) > 1  # a word of several pieces
    assert all(report.tokens[i].word == 1 for i in unaffable.tokens)
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert [t.special for t in report.tokens] == [
        i in (cls_id, sep_id) for i in enc["input_ids"][0]
    ]
    assert report.special_names == (("[CLS]", "[SEP]") if folder == BERT else ("<s>", "</s>"))


def test_the_shares_read_the_tokenizers_cls_and_separators():
    tokenizer = minibert.load_tokenizer(ROBERTA)
    report = explain(minibert.load(ROBERTA), tokenizer, "a cat", pair="a mat")
    ids = [t.id for t in report.tokens]
    seps = [i for i, t in enumerate(ids) if t == tokenizer.sep_token_id]
    assert len(seps) == 3  # RoBERTa's pair: <s> A </s></s> B </s>
    for step in report.steps:
        probs = report.attentions[step.step].astype(np.float64)
        np.testing.assert_allclose(step.sep_share, probs[:, :, seps].sum(-1).mean(-1), atol=1e-7)
        np.testing.assert_allclose(step.cls_share, probs[:, :, 0].mean(-1), atol=1e-7)


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_explains_a_text(tmp_path, name):
    """The tiny fixtures with a WordPiece vocabulary of their 99 ids: text in, a full report."""
    folder = tmp_path / name
    shutil.copytree(FIXTURES / name, folder)
    vocab = (FIXTURES / "tokenizers" / "wordpiece" / "vocab.txt").read_text().split("\n")[:99]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    model, tokenizer = minibert.load(folder), minibert.load_tokenizer(folder)
    report = explain(model, tokenizer, "a cab, bad", batch=2, length=9)
    assert [t.text for t in report.tokens][0] == "[CLS]"
    assert len(report.steps) == len(model.encoder.schedule)
    assert report.flops == forward_flops(
        model.config, 1, len(report.tokens), hasattr(model, "pooler")
    )
    text = render_text(report)
    for part in ("Tokens:", "Costs of this forward", "Attention per head", "Residual stream",
                 "Sentence vector", "batch 2 x length 9"):  # fmt: skip
        assert part in text, part
    json.dumps(report.to_dict())  # plain data


# --- memory --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bert-base", "albert-base", "distilbert-base", "roberta-base"])
@pytest.mark.parametrize(("B", "T"), [(64, 16), (24, 12)])
def test_the_memory_estimate_is_within_20_percent_of_the_measured_peak(name, B, T):
    model = load(name)
    estimate = memory_estimate(model, B, T)
    measured = measure_forward_peak(model, B, T)
    assert abs(estimate.activations / measured - 1) < 0.2, (estimate, measured)
    assert estimate.total == estimate.weights + estimate.activations


def test_explaining_leaves_the_models_mode_as_it_was():
    model = load("bert-base").train()
    first = explain_ids(model, [2, 7, 8, 3], measure=True, batch=2, length=4)
    assert model.training
    assert model.dropout_on
    second = explain_ids(model.eval(), [2, 7, 8, 3])  # no dropout in either run
    np.testing.assert_array_equal(first.attentions, second.attentions)
    assert not model.training


def test_the_weights_are_the_checkpoints_bytes():
    model = load("bert-base")
    tensors = load_file(FIXTURES / "bert-base" / "model.safetensors")
    assert memory_estimate(model, 1, 7).weights == sum(t.nbytes for t in tensors.values())


def test_the_estimate_grows_with_the_batch_and_the_length():
    model = load("bert-base")
    small, wide, long = (memory_estimate(model, *shape) for shape in ((2, 8), (4, 8), (2, 16)))
    assert wide.activations > small.activations
    assert long.activations > small.activations
    assert wide.weights == small.weights


# --- the families' differences -----------------------------------------------------------------
def test_albert_counts_unique_and_effective_parameters_from_its_checkpoint():
    """albert-base: 4 steps over 2 groups of 1 layer; the checkpoint stores each once."""
    model = load("albert-base")
    tensors = load_file(FIXTURES / "albert-base" / "model.safetensors")
    unique = sum(t.size for t in tensors.values())
    per_layer = sum(t.size for n, t in tensors.items() if "albert_layer_groups.0." in n)
    report = explain_ids(model, [2, 7, 8, 3])
    assert report.parameters["unique"] == unique
    assert report.parameters["effective"] == unique + (4 - 2) * per_layer
    assert report.parameters["steps"] == 4
    assert report.parameters["unique_layers"] == 2
    notes = " ".join(report.notes)
    assert f"{unique:,} parameters" in notes
    assert f"{unique + 2 * per_layer:,}" in notes
    assert "E = 16" in notes
    assert "C = 32" in notes
    projection = [op for op in report.embedding_ops if op.name == "embeddings.projection"]
    assert projection[0].shape == (1, 4, 32)
    assert f"{16 * 32 + 32:,} parameters" in notes


def test_distilbert_has_no_token_types_and_no_pooler():
    report = explain_ids(load("distilbert-base"), [2, 7, 8, 3])
    names = [op.name for op in report.ops]
    assert "embeddings.token_type" not in names
    assert not report.pooler_ops
    assert report.pooler_output is None
    notes = " ".join(report.notes)
    assert "no token types" in notes
    assert "no pooler" in notes
    assert report.parameters["unique"] == report.parameters["effective"]


def test_roberta_states_its_position_offset():
    report = explain_ids(load("roberta-base"), [0, 7, 8, 2])
    notes = " ".join(report.notes)
    assert "pad_token_id + 1 = 2" in notes
    assert "20 rows hold 18 tokens" in notes


# --- bad input -----------------------------------------------------------------------------------
def test_bad_input_is_a_named_error():
    model, tokenizer = minibert.load(BERT), minibert.load_tokenizer(BERT)
    cases = [
        (("",), {}, "text is empty"),
        (("  \n",), {}, "text is empty"),
        (("ok",), {"pair": ""}, "pair is empty"),
        (("word " * 80,), {}, "more than this model's 64 positions"),
        (("ok",), {"batch": 0}, "batch must be a positive integer"),
        (("ok",), {"batch": "2"}, "batch must be a positive integer"),
        (("ok",), {"length": -3}, "length must be a positive integer"),
        (("ok",), {"length": 65}, "length 65 is more than this model's 64 positions"),
    ]
    for args, options, message in cases:
        with pytest.raises(InputError, match=message):
            explain(model, tokenizer, *args, **options)
    with pytest.raises(InputError, match="one row of ids"):
        explain_ids(model, [[1, 2], [3, 4]])
    with pytest.raises(InputError, match="must be a str"):
        explain(model, tokenizer, None)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explain", ""], "text is empty"),
        (["explain", "ok", "--batch", "0"], "batch must be a positive integer"),
        (["explain", "ok", "--length", "100"], "length 100 is more than"),
        (["explain", "word " * 80], "the text has 322 tokens, more than"),
    ],
)
def test_the_cli_exits_1_with_one_line(capsys, argv, message):
    assert main([*argv, "--model", str(BERT)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("minibert: error: ")
    assert message in err


# --- the command ------------------------------------------------------------------------------
def test_the_command_prints_the_report_and_writes_the_page(tmp_path, capsys):
    page = tmp_path / "explain.html"
    argv = ["explain", "The cat sat.", "--pair", "It slept.", "--model", str(BERT)]
    assert main([*argv, "--batch", "4", "--length", "32", "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert "[CLS]" in out
    assert "batch 4 x length 32" in out
    assert f"wrote {page}" in out
    html = page.read_text()
    assert "__MINIBERT_EXPLAIN_DATA__" not in html
    assert '"the"' in html
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    model = minibert.load(BERT)
    T = len(data["tokens"])
    assert data["flops"] == forward_flops(model.config, 1, T)
    assert data["memory"]["batch"] == 1
    assert data["memory"]["length"] == T
    assert len(data["steps"]) == 2
    assert len(data["steps"][0]["entropy"]) == model.config.num_attention_heads
    assert set(data["pooled"]) == {"cls", "mean", "max"}


def test_the_default_model_is_the_bundled_one(capsys):
    assert main(["explain", "Hello world.", "--measure"]) == 0
    out = capsys.readouterr().out
    assert "the bundled model (BertModel), int4 group-wise (128 a group) weights" in out
    assert "measured peak" in out
