"""`minibert diff` and minibert.diff.compare: dumps that transformers made under another
convention (tests/fixtures/generate_diff.py: eps 1e-5, tanh GELU, -1e4 masking, both of the
first two, RoBERTa positions from 0) are each diagnosed with the right first op and the right
flip, after which the final hidden state agrees to < 1e-5; matching dumps show no divergence;
layouts, our own names, the jump rule and bad input are checked on their own."""

import json

import numpy as np
import pytest

import minibert
from conftest import FIXTURES
from minibert.cli.main import main
from minibert.diff import Flip, compare, read_dump
from minibert.diff.conventions import run
from minibert.diff.report import Comparison, OpError, op_error
from minibert.errors import InputError
from minibert.reference import build_fixture, write_fixture

DIFF = FIXTURES / "diff"
BERT, ROBERTA = DIFF / "bert", DIFF / "roberta"
WORDPIECE_BERT = FIXTURES / "pipelines" / "bert-encoder"  # a BertModel with its tokenizer
TEXTS = ["Hello world.", "a longer second text, with more words"]
FINAL_ATOL = 1e-5  # the bound on the final hidden state under the right profile

# dump -> (model, first op where the error jumps, the flips that close the gap, in order)
DIAGNOSES = {
    "bert-eps": (BERT, "embeddings.layernorm", [("layer_norm_eps", 1e-5)]),
    "bert-tanh": (BERT, "encoder.step.0.ffn.activation", [("hidden_act", "gelu_new")]),
    "bert-mask": (BERT, "encoder.step.0.attention.masked_scores", [("mask_fill", -1e4)]),
    "bert-eps-tanh": (
        BERT,
        "embeddings.layernorm",
        [("layer_norm_eps", 1e-5), ("hidden_act", "gelu_new")],
    ),
    "roberta-positions": (ROBERTA, "embeddings.position", [("positions", "from 0")]),
}


@pytest.fixture(scope="module")
def bert():
    return minibert.load(BERT)


@pytest.fixture(scope="module")
def roberta():
    return minibert.load(ROBERTA)


@pytest.mark.parametrize("case", sorted(DIAGNOSES))
def test_a_convention_is_diagnosed_with_its_first_op_and_its_flip(case):
    model_dir, first_op, flips = DIAGNOSES[case]
    result = compare(minibert.load(model_dir), DIFF / f"{case}.npz", mapping="transformers")
    assert not result.baseline.agrees
    assert result.baseline.first_jump.name == first_op
    assert result.baseline.first_divergence.name == first_op  # nothing diverged before it
    assert [(f.knob, f.value) for f in result.profile] == flips
    assert result.closes
    final = result.final.final
    assert final.name == "output.last_hidden_state"
    assert final.max_abs < FINAL_ATOL
    if case != "bert-mask":  # a mask fill changes no output in float32 (see below)
        assert result.baseline.final.max_abs > 10 * FINAL_ATOL  # the profile made it agree
    assert "closes the gap" in result.verdict()
    assert all(f.label in result.verdict() for f in result.profile)


@pytest.mark.parametrize("case", ["bert-match", "roberta-match"])
def test_a_matching_dump_reports_no_divergence(case):
    model = minibert.load(BERT if case.startswith("bert") else ROBERTA)
    result = compare(model, DIFF / f"{case}.npz", mapping="transformers")
    assert result.baseline.agrees
    assert result.closes
    assert result.baseline.first_jump is None
    assert result.trials == []
    assert result.profile == ()
    assert result.baseline.final.max_abs < FINAL_ATOL
    assert result.verdict().startswith("verdict: no divergence")
    # the ready mapping reaches every op of the table but the raw scores (no module returns
    # them): embeddings, each step's q k v, masked scores, probs ... ln2, pooler, output
    compared = {op.name for op in result.baseline.ops}
    assert len(compared) == 5 + 2 * 14 + 3
    assert not any(name.endswith("attention.scores") for name in compared)
    assert result.unused == []


def test_the_mask_flip_changes_only_the_masked_scores(bert):
    """-1e4 and finfo.min give the same probabilities in float32 (exp underflows to 0), so only
    the masked scores tell them apart, and only on padded keys."""
    result = compare(bert, DIFF / "bert-mask.npz", mapping="transformers")
    diverging = {op.name for op in result.baseline.ops if op.diverges}
    assert diverging == {f"encoder.step.{i}.attention.masked_scores" for i in (0, 1)}
    dump = read_dump(DIFF / "bert-mask.npz")
    scores = dump["encoder.layer.0.attention.self:softmax_input"]
    padded = dump["attention_mask"][:, None, None, :] == 0
    assert np.all(scores[np.broadcast_to(padded, scores.shape)] > -1.01e4)


def test_mask_fill_leaves_the_default_output_bit_for_bit(bert):
    dump = read_dump(DIFF / "bert-match.npz")
    ids, mask, types = dump["input_ids"], dump["attention_mask"], dump["token_type_ids"]
    default = bert(ids, mask, types).last_hidden_state
    bert.mask_fill = float(np.finfo(np.float32).min)
    try:
        explicit = bert(ids, mask, types).last_hidden_state
    finally:
        bert.mask_fill = None
    np.testing.assert_array_equal(explicit, default)


def test_the_cli_prints_the_table_the_jump_and_the_verdict(capsys):
    code = main(
        ["diff", str(BERT), "--against", str(DIFF / "bert-tanh.npz"), "--mapping", "transformers"]
    )
    out = capsys.readouterr().out
    assert code == 0
    jump_line = next(line for line in out.splitlines() if line.endswith("<- first jump"))
    assert jump_line.startswith("encoder.step.0.ffn.activation ")
    assert "encoder.layer.0.intermediate.intermediate_act_fn" in jump_line
    assert "verdict: tanh GELU (gelu_new) closes the gap" in out


def test_the_cli_json_output(capsys):
    case = DIFF / "roberta-positions.npz"
    code = main(
        ["diff", str(ROBERTA), "--against", str(case), "--mapping", "transformers", "--json"]
    )
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert result["baseline"]["first_jump"] == "embeddings.position"
    assert result["profile"] == [
        {"knob": "positions", "value": "from 0", "label": "positions from 0 (BERT)"}
    ]
    assert result["closes"]
    assert result["final"]["agrees"]


def test_no_conventions_compares_only(bert):
    result = compare(bert, DIFF / "bert-eps.npz", mapping="transformers", conventions_search=False)
    assert result.trials == []
    assert not result.closes
    assert "conventions not tried" in result.verdict()


def test_a_mapping_file_with_other_layouts(tmp_path, bert):
    """A naming of our own invention: heads kept as (B, T, H, D), a context stored before the
    heads are merged, a model prefix on every name; read through a JSON mapping file."""
    dump = read_dump(DIFF / "bert-match.npz")
    B, T, C = dump["encoder.layer.0.attention.self.query"].shape
    H = bert.config.num_attention_heads
    theirs = {n: dump[n] for n in ("input_ids", "attention_mask", "token_type_ids")}
    theirs["bert.q0"] = dump["encoder.layer.0.attention.self.query"].reshape(B, T, H, C // H)
    heads = dump["encoder.layer.0.attention.self"].reshape(B, T, H, C // H).transpose(0, 2, 1, 3)
    theirs["bert.ctx0"] = heads
    theirs["bert.out"] = dump["encoder"]
    mapping = tmp_path / "mine.json"
    mapping.write_text(
        json.dumps(
            {
                "names": {
                    "encoder.step.{i}.attention.q": {"name": "q{i}", "layout": "tokens_heads"},
                    "encoder.step.{i}.attention.context": {
                        "name": "ctx{i}",
                        "layout": "heads_split",
                    },
                    "output.last_hidden_state": "out",
                }
            }
        )
    )
    result = compare(bert, theirs, mapping=str(mapping))
    assert [op.name for op in result.baseline.ops] == [
        "encoder.step.0.attention.q",
        "encoder.step.0.attention.context",
        "output.last_hidden_state",
    ]
    assert result.baseline.agrees
    assert result.baseline.final.max_abs < FINAL_ATOL


def test_a_dump_in_our_names_from_export_fixture(tmp_path, capsys):
    """An export-fixture file is a dump in our names: it matches, through the CLI with --text;
    an op changed in it is the first jump, and no convention explains it."""
    model = minibert.load(WORDPIECE_BERT)
    arrays, manifest = build_fixture(model, minibert.load_tokenizer(WORDPIECE_BERT), TEXTS)
    path = write_fixture(tmp_path / "case.npz", arrays, manifest)
    args = ["diff", str(WORDPIECE_BERT), "--against", str(path), "--text", TEXTS[0]]
    assert main([*args, "--text", TEXTS[1]]) == 0
    assert "verdict: no divergence" in capsys.readouterr().out

    arrays["encoder.step.1.ffn.up"] = arrays["encoder.step.1.ffn.up"] + np.float32(0.01)
    del arrays["input_ids"]  # inputs from the texts given instead
    given = minibert.load_tokenizer(WORDPIECE_BERT)(TEXTS)
    result = compare(model, arrays, inputs=dict(given))
    assert result.baseline.first_jump.name == "encoder.step.1.ffn.up"
    assert not result.closes
    assert "no known convention closes the gap" in result.verdict()
    assert "encoder.step.1.ffn.up" in result.verdict()


def test_heads_merged_under_our_names_are_split(bert):
    dump = read_dump(DIFF / "bert-match.npz")
    ours = {n: dump[n] for n in ("input_ids", "attention_mask", "token_type_ids")}
    ours["encoder.step.1.attention.k"] = dump["encoder.layer.1.attention.self.key"]  # (B, T, C)
    result = compare(bert, ours)
    assert [op.name for op in result.baseline.ops] == ["encoder.step.1.attention.k"]
    assert result.baseline.agrees


# --- the jump rule --------------------------------------------------------------------------


def _op(name, scaled, tolerance=1e-4):
    return OpError(name, name, (1,), scaled, scaled, scaled, scaled > tolerance)


def test_a_gradual_growth_is_no_jump():
    ops = [_op("a", 1e-6), _op("b", 2e-5), _op("c", 2e-4), _op("d", 9e-4)]
    comparison = Comparison(ops)
    assert comparison.first_jump is None
    assert comparison.first_divergence.name == "c"
    assert "no single jump" in comparison.summary()


def test_a_jump_is_100x_every_op_before_it():
    ops = [_op("a", 1e-6), _op("b", 5e-5), _op("c", 3e-3), _op("d", 1.0)]
    assert Comparison(ops).first_jump.name == "d"  # c diverges, but is only 60x b


def test_infinities_and_nans():
    inf = np.array([-np.inf, 1.0])
    assert op_error("x", "x", inf, inf, 1e-4).max_abs == 0.0
    nan = op_error("x", "x", np.array([np.nan, 1.0]), np.array([0.0, 1.0]), 1e-4)
    assert nan.max_abs == np.inf
    assert nan.diverges


def test_masked_scores_round_to_steps_that_scaled_errors_forgive():
    """-1e4 + s rounds to steps of 1e-3 in float32: a one-step difference is 1e-7 scaled."""
    theirs = np.array([-1e4], np.float32)
    ours = np.nextafter(theirs, np.float32(0))
    error = op_error("m", "m", ours, theirs, 1e-4)
    assert error.max_abs > 1e-4
    assert not error.diverges


# --- bad input --------------------------------------------------------------------------------


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("minibert: error: ")
    return err


def test_bad_input_is_a_named_error(tmp_path, bert, capsys):
    match = DIFF / "bert-match.npz"
    dump = read_dump(match)
    cases = {
        "no input_ids": {k: v for k, v in dump.items() if k != "input_ids"},
        "not intermediates of this model's trace: embeddings.word_embeddings": dump,
        "'encoder.layer.0.output.dense' has shape (2, 6, 15)": {
            **dump,
            "encoder.layer.0.output.dense": dump["encoder.layer.0.output.dense"][..., :15],
        },
    }
    for message, arrays in cases.items():
        mapping = None if "trace" in message else "transformers"
        with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
            compare(bert, arrays, mapping=mapping)
    with pytest.raises(InputError, match="unknown mapping 'nonsense'"):
        compare(bert, match, mapping="nonsense")
    with pytest.raises(InputError, match="no array of the dump matches"):
        compare(bert, {"input_ids": dump["input_ids"], "x": dump["encoder"]}, mapping={"names": {}})
    sideways = {"name": "encoder", "layout": "sideways"}
    with pytest.raises(InputError, match="layout 'sideways'"):
        compare(bert, match, mapping={"names": {"output.last_hidden_state": sideways}})
    distilbert = minibert.load(FIXTURES / "distilbert-base")
    with pytest.raises(InputError, match="written for bert, roberta, and this model is distil"):
        compare(distilbert, match, mapping="transformers")
    with pytest.raises(InputError, match="tolerance must be positive"):
        compare(bert, match, mapping="transformers", tolerance=0)
    with pytest.raises(InputError, match="convention re-runs need a float model"):
        compare(minibert.quantize(bert), DIFF / "bert-eps.npz", mapping="transformers")

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    not_npz = tmp_path / "dump.npz"
    not_npz.write_text("hello")
    model, against = str(BERT), str(match)
    for argv, message in (
        (["diff", model, "--against", str(tmp_path / "missing.npz")], "does not exist"),
        (["diff", model, "--against", str(not_npz)], "is not an .npz file"),
        (["diff", model, "--against", against, "--mapping", "nonsense"], "unknown mapping"),
        (["diff", model, "--against", against, "--mapping", str(broken)], "not valid JSON"),
        (["diff", model, "--against", against], "not intermediates of this model's trace"),
        (["diff", model, "--against", against, "--pair", "x"], "--pair needs --text"),
    ):
        assert message in _one_line_error(capsys, argv)
    err = _one_line_error(
        capsys, ["diff", str(WORDPIECE_BERT), "--against", against, "--text", "other words"]
    )
    assert "the dump's input_ids (2, 6) are not the inputs given" in err


@pytest.mark.parametrize(
    ("case", "flip"),
    [
        ("albert-base", Flip("layer_norm_eps", 1e-5, "LayerNorm eps 1e-5")),
        ("distilbert-base", Flip("positions", "after padding", "positions from pad + 1")),
        ("roberta-base", Flip("mask_fill", -1e9, "mask fill -1e9")),
        ("bert-base", Flip("token_types", "zeros", "every token of type 0")),
        ("bert-base", Flip("pooler", "none", "no pooler")),
    ],
)
def test_the_search_finds_a_flip_in_every_family(case, flip):
    """The search itself, on the other families and knobs: a dump that minibert made under one
    flip (in our names, so the transformers dumps above are not needed) is traced back to it."""
    model = minibert.load(FIXTURES / case)
    with np.load(FIXTURES / case / "reference.npz") as ref:
        inputs = {n: ref[n] for n in ("input_ids", "attention_mask", "token_type_ids") if n in ref}
    flipped = run(model, inputs, (flip,))
    result = compare(model, {**inputs, **flipped})
    assert not result.baseline.agrees
    assert [(f.knob, f.value) for f in result.profile] == [(flip.knob, flip.value)]
    assert result.closes


def test_a_model_in_training_mode_is_compared_in_eval_mode(bert):
    bert.train()
    try:
        result = compare(bert, DIFF / "bert-match.npz", mapping="transformers")
    finally:
        bert.eval()
    assert result.baseline.agrees
