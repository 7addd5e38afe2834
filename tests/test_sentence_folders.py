"""sentence-transformers folders: SentenceEncoder follows modules.json as the library does.

Expected vectors are sentence-transformers 6.2's encode() on tiny seeded folders in both layouts
(tests/fixtures/generate_sentence.py writes them), and on the real all-MiniLM-L6-v2.
"""

import json
import shutil
import warnings

import numpy as np
import pytest

from conftest import FIXTURES, needs_minilm
from minibert.cli.main import main
from minibert.errors import CheckpointError, ConfigError
from minibert.functional.pooling import POOLINGS, check_pooling, l2_normalize, pool
from minibert.sentence import FolderOverrideWarning, SentenceEncoder, read_sentence_folder

# float32 on both sides, the same operations in another order: measured at most 5e-7
ATOL_ST = 1e-5
FOLDERS = FIXTURES / "sentence-transformers"
META = json.loads((FOLDERS / "meta.json").read_text())
SENTENCES = META["sentences"]
CASES = [name for name in META["cases"] if name != "minilm"]


def expected(name: str) -> dict:
    with np.load(FOLDERS / name / "expected.npz") as z:
        return {key: z[key] for key in z.files}


def call_for(key: str) -> dict:
    """The encode() keyword arguments that gave expected.npz's entry `key`."""
    if key.startswith("prompt_name_"):
        return {"prompt_name": key.removeprefix("prompt_name_")}
    return {"prompt_custom": {"prompt": META["custom_prompt"]}, "prompt_empty": {"prompt": ""}}.get(
        key, {}
    )


@pytest.fixture(scope="module")
def encoders():
    return {name: SentenceEncoder(FOLDERS / name) for name in CASES}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_encode_equals_sentence_transformers(encoders, name, batch_size):
    encoder = encoders[name]
    for key, vectors in expected(name).items():
        got = encoder.encode(SENTENCES, batch_size=batch_size, **call_for(key))
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, vectors, atol=ATOL_ST, err_msg=f"{name}: {key}")


@pytest.mark.parametrize("name", CASES)
def test_folder_settings_as_sentence_transformers_reads_them(encoders, name):
    case, encoder = META["cases"][name], encoders[name]
    assert encoder.max_length == case["max_seq_length"]
    assert encoder.dim == case["dimension"]
    # sentence-transformers 6 saves empty "query" and "document" prompts; meta.json keeps the
    # others
    assert {k: v for k, v in encoder.prompts.items() if v} == case["prompts"]
    assert encoder.default_prompt_name == case["default_prompt_name"]
    assert encoder.normalize == ("Normalize" in case["modules"])
    dense = [step for step in encoder.steps if type(step).__name__ == "Dense"]
    assert len(dense) == case["modules"].count("Dense")


def test_what_each_folder_says():
    """The modes and flags as written in both layouts (classic booleans, modern pooling_mode)."""
    folders = {name: read_sentence_folder(FOLDERS / name) for name in CASES}
    assert folders["classic-cls"].pooling == ("cls",)
    # two boolean keys: concatenated in sentence-transformers' order, max before mean_sqrt_len
    assert folders["classic-sqrt-max"].pooling == ("max", "mean_sqrt_len_tokens")
    assert folders["classic-sqrt-max"].do_lower_case
    assert folders["modern-weightedmean-prompts"].pooling == ("weightedmean",)
    assert folders["modern-mean-exclude-prompt"].include_prompt is False
    assert folders["modern-lasttoken"].pooling == ("lasttoken",)
    assert [kind for kind, _ in folders["classic-dense-tanh"].after_pooling] == [
        "dense",
        "normalize",
    ]
    # the modern layout keeps the limit in tokenizer_config.json, the classic one does not
    assert folders["modern-lasttoken"].max_seq_length == 12
    assert folders["classic-cls"].max_seq_length == 10  # tokenizer_config.json says 512


@needs_minilm
def test_minilm_equals_sentence_transformers():
    sentences = json.loads((FIXTURES / "minilm" / "sentences.json").read_text())
    with np.load(FOLDERS / "minilm.npz") as z:
        reference = z["default"]
    encoder = SentenceEncoder()
    assert (encoder.pooling, encoder.normalize, encoder.max_length) == ("mean", True, 256)
    np.testing.assert_allclose(encoder.encode(sentences), reference, atol=ATOL_ST)
    # the same vectors when mean pooling and normalize are asked for explicitly (no warning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explicit = SentenceEncoder(pooling="mean", normalize=True)
    np.testing.assert_allclose(explicit.encode(sentences[:4]), reference[:4], atol=ATOL_ST)


# --- explicit arguments against the folder -----------------------------------------------------


def test_explicit_pooling_wins_with_a_warning():
    with pytest.warns(FolderOverrideWarning, match=r"pooling='mean' overrides .* \(cls\)"):
        encoder = SentenceEncoder(FOLDERS / "classic-cls", pooling="mean")
    assert encoder.pooling == "mean"
    ids = encoder.tokenizer(SENTENCES[:3], max_length=encoder.max_length)
    hidden = encoder.model(ids["input_ids"], attention_mask=ids["attention_mask"]).last_hidden_state
    mean = pool(hidden, ids["attention_mask"], "mean")
    np.testing.assert_allclose(encoder.encode(SENTENCES[:3]), mean, atol=1e-6)
    assert not np.allclose(mean, expected("classic-cls")["default"][:3], atol=1e-3)


def test_explicit_normalize_wins_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        raw = SentenceEncoder(FOLDERS / "classic-dense-tanh", normalize=False)
        unit = SentenceEncoder(FOLDERS / "classic-cls", normalize=True)
    vectors = raw.encode(SENTENCES)
    assert not np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    want = expected("classic-dense-tanh")["default"]
    np.testing.assert_allclose(l2_normalize(vectors), want, atol=ATOL_ST)
    want = l2_normalize(expected("classic-cls")["default"])
    np.testing.assert_allclose(unit.encode(SENTENCES), want, atol=ATOL_ST)


def test_pooling_that_does_not_fit_the_dense_layer_is_refused():
    with (
        pytest.warns(FolderOverrideWarning),
        pytest.raises(ConfigError, match=r"Dense layer takes 16 features but .* gives 32"),
    ):
        SentenceEncoder(FOLDERS / "classic-dense-tanh", pooling=("mean", "max"))


def test_explicit_max_length_wins(encoders):
    encoder = SentenceEncoder(FOLDERS / "classic-cls", max_length=20)
    assert encoder.max_length == 20
    long_text = SENTENCES[2]  # more than the folder's 10 tokens
    assert not np.allclose(
        encoder.encode(long_text), encoders["classic-cls"].encode(long_text), atol=1e-3
    )


# --- prompts ----------------------------------------------------------------------------------


def test_prompt_errors(encoders):
    encoder = encoders["modern-weightedmean-prompts"]
    with pytest.raises(ValueError, match=r"prompt_name 'passage' is not a prompt .*'document'"):
        encoder.encode(["a"], prompt_name="passage")
    with pytest.raises(ValueError, match="not both"):
        encoder.encode(["a"], prompt_name="query", prompt="query: ")
    with pytest.raises(ValueError, match="prompts: none"):
        encoders["classic-cls"].encode(["a"], prompt_name="query")


def test_prompt_length_leaves_out_the_closing_sep(encoders):
    encoder = encoders["modern-mean-exclude-prompt"]
    assert encoder.prompt_length("") == 0
    assert encoder.prompt_length("query: ") == 3  # [CLS] query :


# --- other folders: plain, a Transformer in a subfolder, and broken ones ------------------------


def copy_case(name, tmp_path):
    folder = tmp_path / name
    shutil.copytree(FOLDERS / name, folder)
    return folder


def edit_json(file, **changes):
    data = json.loads(file.read_text())
    data.update(changes)
    file.write_text(json.dumps(data))


def test_plain_folder_is_mean_pooled_and_normalised(tmp_path):
    folder = copy_case("classic-cls", tmp_path)
    for name in ("modules.json", "config_sentence_transformers.json"):
        (folder / name).unlink()
    shutil.rmtree(folder / "1_Pooling")
    encoder = SentenceEncoder(folder)
    assert (encoder.pooling, encoder.normalize, encoder.max_length) == ("mean", True, 10)
    ids = encoder.tokenizer(SENTENCES, max_length=10)
    hidden = encoder.model(ids["input_ids"], attention_mask=ids["attention_mask"]).last_hidden_state
    want = l2_normalize(pool(hidden, ids["attention_mask"], "mean"))
    np.testing.assert_allclose(encoder.encode(SENTENCES), want, atol=1e-6)


def test_transformer_in_a_subfolder(tmp_path):
    """Older folders keep the encoder in 0_Transformer/, its config beside it."""
    folder = copy_case("classic-cls", tmp_path)
    sub = folder / "0_Transformer"
    sub.mkdir()
    stays = ("modules.json", "config_sentence_transformers.json", "expected.npz")
    for file in list(folder.iterdir()):
        if file.is_file() and file.name not in stays:
            file.rename(sub / file.name)
    modules = json.loads((folder / "modules.json").read_text())
    modules[0]["path"] = "0_Transformer"
    (folder / "modules.json").write_text(json.dumps(modules))
    encoder = SentenceEncoder(folder)
    assert encoder.max_length == 10
    np.testing.assert_allclose(
        encoder.encode(SENTENCES), expected("classic-cls")["default"], atol=ATOL_ST
    )


def test_unknown_module_type_is_named(tmp_path):
    folder = copy_case("classic-cls", tmp_path)
    modules = json.loads((folder / "modules.json").read_text())
    modules.append(
        {"idx": 2, "name": "2", "path": "2_LSTM", "type": "sentence_transformers.models.LSTM"}
    )
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ConfigError, match=r"module 2 has type 'sentence_transformers.models.LSTM'"):
        SentenceEncoder(folder)


@pytest.mark.parametrize(
    ("file", "changes", "message"),
    [
        ("1_Pooling/config.json", {"pooling_mode": "median"}, "pooling_mode should be one of"),
        ("1_Pooling/config.json", {"include_prompt": "no"}, "include_prompt should be true"),
        ("2_Dense/config.json", {"activation_function": "mypackage.Swish"}, "'mypackage.Swish'"),
        ("2_Dense/config.json", {"module_input_name": "token_embeddings"}, "module_input_name"),
        ("sentence_bert_config.json", {"max_seq_length": "long"}, "positive integer, got 'long'"),
        ("config_sentence_transformers.json", {"default_prompt_name": "q"}, "'q' is not one"),
    ],
)
def test_bad_configs_are_named(tmp_path, file, changes, message):
    folder = copy_case("classic-dense-tanh", tmp_path)
    edit_json(folder / file, **changes)
    with pytest.raises(ConfigError, match=message):
        SentenceEncoder(folder)


def test_dense_weights_must_fit_its_config(tmp_path):
    folder = copy_case("classic-dense-tanh", tmp_path)
    edit_json(folder / "2_Dense" / "config.json", out_features=11)
    with pytest.raises(CheckpointError, match=r"linear.weight has shape \(12, 16\), .* \(11, 16\)"):
        SentenceEncoder(folder)
    edit_json(folder / "2_Dense" / "config.json", out_features=12, bias=False)
    with pytest.raises(CheckpointError, match=r"holds \['linear.weight'\], the file has"):
        SentenceEncoder(folder)


# --- the pooling modes, by hand ------------------------------------------------------------------


def test_pooling_modes_by_hand():
    hidden = np.array(
        [[[1, 2], [3, 6], [5, 4], [9, 9]], [[2, 0], [4, 8], [0, 0], [0, 0]]], np.float32
    )  # (2, 4, 2)
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]])
    by_hand = {
        "mean": [[3, 4], [3, 4]],
        "cls": [[1, 2], [2, 0]],
        "max": [[5, 6], [4, 8]],
        "mean_sqrt_len_tokens": [[9 / 3**0.5, 12 / 3**0.5], [6 / 2**0.5, 8 / 2**0.5]],
        "weightedmean": [[(1 + 6 + 15) / 6, (2 + 12 + 12) / 6], [10 / 3, 16 / 3]],
        "lasttoken": [[5, 4], [4, 8]],
    }
    assert set(by_hand) == set(POOLINGS)
    for mode, want in by_hand.items():
        np.testing.assert_allclose(pool(hidden, mask, mode), want, rtol=1e-6, err_msg=mode)
    np.testing.assert_allclose(
        pool(hidden, mask, ("lasttoken", "cls")),
        np.concatenate([by_hand["lasttoken"], by_hand["cls"]], 1),
    )
    # a prompt left out of the mask: cls is the first token after it, weights keep positions
    prompt_out = np.array([[0, 1, 1, 0], [0, 0, 0, 0]])
    np.testing.assert_allclose(pool(hidden, prompt_out, "cls")[0], [3, 6])
    np.testing.assert_allclose(pool(hidden, prompt_out, "weightedmean")[0], [(6 + 15) / 5, 24 / 5])
    np.testing.assert_allclose(pool(hidden, prompt_out, "lasttoken")[1], [0, 0])  # no real token


@pytest.mark.parametrize("bad", ["median", "", (), ("mean", "sum"), 3])
def test_check_pooling_names_what_is_wrong(bad):
    with pytest.raises(ValueError, match="pooling must be one of"):
        check_pooling(bad)


# --- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["classic-cls", "classic-dense-tanh"])
def test_cli_encode_follows_the_folder(capsys, tmp_path, name):
    """`minibert encode --model FOLDER`: the folder's pooling and Dense layer, normalised
    (the command's default), and without Normalize with --no-normalize."""
    out = tmp_path / "v.npy"
    argv = ["encode", *SENTENCES[:3], "--model", FOLDERS / name, "--output", out]
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    want = expected(name)["default"][:3]
    np.testing.assert_allclose(np.load(out), l2_normalize(want), atol=ATOL_ST)
    if name == "classic-cls":  # no Normalize module: --no-normalize gives the folder's vectors
        assert main([str(a) for a in [*argv, "--no-normalize"]]) == 0
        np.testing.assert_allclose(np.load(out), want, atol=ATOL_ST)
    assert main(["encode", "sun", "--model", str(FOLDERS / name)]) == 0
    pooling = read_sentence_folder(FOLDERS / name).pooling[0]
    assert f"{pooling} pooling, unit length" in capsys.readouterr().out


def test_cli_corpus_run_records_the_folders_pooling(capsys, tmp_path):
    corpus = tmp_path / "texts.txt"
    corpus.write_text("\n".join(text for text in SENTENCES if text) + "\n")
    out = tmp_path / "v.npy"
    argv = ["encode", "--input", corpus, "--output", out, "--model", FOLDERS / "classic-cls"]
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    want = l2_normalize(
        expected("classic-cls")["default"][[i for i, t in enumerate(SENTENCES) if t]]
    )
    np.testing.assert_allclose(np.load(out), want, atol=ATOL_ST)


def test_served_vectors_go_through_the_dense_layer():
    """minibert serve's model runs the folder's Dense layer after pooling (routes normalise)."""
    from minibert.serve.model import ServedModel

    served = ServedModel(FOLDERS / "classic-dense-tanh", pooling="mean")
    assert served.dim == 12
    outputs = served.run(served.tokenize(SENTENCES[:4], truncate=True))
    vectors = l2_normalize(np.stack([o.vector for o in outputs]))
    np.testing.assert_allclose(vectors, expected("classic-dense-tanh")["default"][:4], atol=ATOL_ST)
