"""Vocabulary trimming (minibert/compression/vocabulary.py): ids, weights, files and errors.

The tiny folders pair the WordPiece fixture tokenizer (177 pieces) with a seeded tiny BERT of
the same vocabulary; the trimmed model must give exactly the untrimmed model's outputs for texts
whose pieces all survived, and transformers' tokenizer library must read the trimmed files.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tokenizers

import minibert
from minibert import pretrained
from minibert.cli.main import main
from minibert.compression.vocabulary import tokenization_agreement, trim_vocabulary
from minibert.config import EncoderConfig
from minibert.errors import CheckpointError, InputError
from minibert.models.auto import from_config

FIXTURES = Path(__file__).parent / "fixtures"
WORDPIECE_JSON = FIXTURES / "tokenizers" / "wordpiece-json"
WORDPIECE_TXT = FIXTURES / "tokenizers" / "wordpiece"
SHIPPED = pretrained.shipped_path()  # a group-wise int4 sentence folder, trimmed once already

CORPUS = ["The brown fox jumps over the lazy dog.", "The dog jumps, the fox does not."]
SURVIVING = ["the fox jumps over the dog", "The lazy brown dog."]  # only corpus words
LOST = ["the model has hearts", "a naive cafe"]  # "model", "hearts", "naive", "cafe" are cut


def tiny_folder(folder: Path, tokenizer_folder: Path, architecture="BertForMaskedLM") -> Path:
    """A seeded tiny BERT (or DistilBERT) whose vocabulary is the fixture tokenizer's, saved
    with its files."""
    vocab_size = minibert.load_tokenizer(tokenizer_folder).vocab_size
    distil = architecture.startswith("DistilBert")
    config = EncoderConfig(
        model_type="distilbert" if distil else "bert",
        type_vocab_size=0 if distil else 2,
        architecture=architecture,
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    model = from_config(config, seed=3).eval()
    # a nonzero decoder bias, so that cutting it in the wrong order would show
    if "mlm.decoder.bias" in dict(model.named_parameters()):
        bias = model.get_parameter("mlm.decoder.bias")
        bias[:] = np.random.default_rng(4).normal(size=bias.shape).astype(np.float32)
    model.save_pretrained(folder)
    for file in tokenizer_folder.iterdir():
        if file.suffix in (".json", ".txt"):
            shutil.copyfile(file, folder / file.name)
    return folder


@pytest.fixture(params=["tokenizer.json", "vocab.txt"])
def folder(request, tmp_path):
    source = WORDPIECE_JSON if request.param == "tokenizer.json" else WORDPIECE_TXT
    return tiny_folder(tmp_path / "model", source)


def encode(folder, texts):
    tok = minibert.load_tokenizer(folder)
    return tok(texts, padding=True)


def test_ids_map_consistently_and_pieces_stay(folder, tmp_path):
    result = trim_vocabulary(folder, CORPUS, tmp_path / "trim")
    mapping = result.old_to_new()
    before, after = encode(folder, SURVIVING), encode(tmp_path / "trim", SURVIVING)
    np.testing.assert_array_equal(after["input_ids"], mapping[before["input_ids"]])
    np.testing.assert_array_equal(after["attention_mask"], before["attention_mask"])
    old, new = minibert.load_tokenizer(folder), minibert.load_tokenizer(tmp_path / "trim")
    for text in SURVIVING + LOST:
        assert new.tokenize(text) == old.tokenize(text) or text in LOST
    assert result.coverage == 1.0  # min_count=1 keeps every piece the corpus uses
    assert 0 < result.new_vocab_size < result.old_vocab_size == 177


def test_kept_pieces_are_the_corpus_specials_and_single_characters(folder, tmp_path):
    trim_vocabulary(folder, CORPUS, tmp_path / "trim")
    old = minibert.load_tokenizer(folder)
    old_vocab = old.backend.get_vocab()
    new_vocab = minibert.load_tokenizer(tmp_path / "trim").backend.get_vocab()
    used = {piece for text in CORPUS for piece in old.tokenize(text)}
    assert {"the", "brown", "fox", "jumps", "lazy", "dog", "does", "##er"} <= used
    single = {p for p in old_vocab if len(p) == 1 or (p.startswith("##") and len(p) == 3)}
    special = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
    expected = {p for p in old_vocab if p in used} | single | special
    assert set(new_vocab) == expected
    # renumbered in the old order, 0..V'-1
    order = sorted(new_vocab, key=new_vocab.get)
    assert order == sorted(expected, key=old_vocab.get)
    assert sorted(new_vocab.values()) == list(range(len(new_vocab)))
    lines = (tmp_path / "trim" / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert lines == order


def test_outputs_of_surviving_texts_equal_the_untrimmed_model_exactly(folder, tmp_path):
    result = trim_vocabulary(folder, CORPUS, tmp_path / "trim")
    before, after = encode(folder, SURVIVING), encode(tmp_path / "trim", SURVIVING)
    old, new = minibert.load(folder), minibert.load(tmp_path / "trim")
    out_old = old(before["input_ids"], before["attention_mask"], output_hidden_states=True)
    out_new = new(after["input_ids"], after["attention_mask"], output_hidden_states=True)
    np.testing.assert_array_equal(out_new.hidden_states[-1], out_old.hidden_states[-1])
    # the tied decoder and its bias are cut to the kept rows, in the new order
    np.testing.assert_array_equal(out_new.logits, out_old.logits[..., result.kept_ids])
    assert new.config.vocab_size == result.new_vocab_size


def test_distilbert_projector_and_its_bias_are_cut(tmp_path):
    folder = tiny_folder(tmp_path / "model", WORDPIECE_JSON, "DistilBertForMaskedLM")
    result = trim_vocabulary(folder, CORPUS, tmp_path / "trim")
    before, after = encode(folder, SURVIVING), encode(tmp_path / "trim", SURVIVING)
    old, new = minibert.load(folder), minibert.load(tmp_path / "trim")
    out_old = old(before["input_ids"], attention_mask=before["attention_mask"])
    out_new = new(after["input_ids"], attention_mask=after["attention_mask"])
    np.testing.assert_array_equal(out_new.logits, out_old.logits[..., result.kept_ids])


def test_lost_pieces_fall_back_to_shorter_surviving_pieces(folder, tmp_path):
    trim_vocabulary(folder, CORPUS, tmp_path / "trim")
    new = minibert.load_tokenizer(tmp_path / "trim")
    assert new.tokenize("the model has hearts") == [
        "the", "m", "##o", "##d", "##e", "##l", "h", "##a", "##s", "h", "##e", "##a", "##r",
        "##t", "##s",
    ]  # fmt: skip
    assert "[UNK]" not in new.tokenize(" ".join(LOST))
    agreement = tokenization_agreement(minibert.load_tokenizer(folder), new, SURVIVING + LOST)
    np.testing.assert_array_equal(agreement["identical"], [True, True, False, False])
    assert agreement["texts_identical"] == 0.5
    # 13 pieces in the surviving texts ("over" is o ##v ##er); of the lost texts' the, model,
    # has, hearts | a, naive, cafe only "the" and "a" survive
    assert agreement["token_survival"] == (13 + 2) / (13 + 7)


def test_the_tokenizers_library_reads_the_trimmed_tokenizer(folder, tmp_path):
    result = trim_vocabulary(folder, CORPUS, tmp_path / "trim")
    library = tokenizers.Tokenizer.from_file(str(tmp_path / "trim" / "tokenizer.json"))
    original = minibert.load_tokenizer(folder).backend
    mapping = result.old_to_new()
    for text in SURVIVING:
        ids = library.encode(text).ids  # with [CLS] and [SEP] from the post-processor
        assert ids == mapping[original.encode(text).ids].tolist()
        assert library.encode(text).tokens == original.encode(text).tokens
    ours = encode(tmp_path / "trim", SURVIVING + LOST)
    theirs = library.encode_batch(SURVIVING + LOST)
    for row, encoding in zip(ours["input_ids"], theirs, strict=True):
        assert row[: len(encoding.ids)].tolist() == encoding.ids


def test_config_and_tokenizer_config_are_renumbered(tmp_path):
    folder = tiny_folder(tmp_path / "model", WORDPIECE_JSON)
    config = json.loads((folder / "config.json").read_text())
    config["sep_token_id"] = 3
    config["pad_token_id"] = 0
    (folder / "config.json").write_text(json.dumps(config))
    tok_config = json.loads((folder / "tokenizer_config.json").read_text())
    tok_config["added_tokens_decoder"] = {"3": {"content": "[SEP]", "special": True}}
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_config))
    vocab = minibert.load_tokenizer(folder).backend.get_vocab()
    # one word, "zurich", whose old id comes after pieces that are cut: its id gets smaller
    result = trim_vocabulary(folder, ["zurich"], tmp_path / "trim")
    new_config = json.loads((tmp_path / "trim" / "config.json").read_text())
    assert new_config["vocab_size"] == result.new_vocab_size
    assert new_config["sep_token_id"] == 3
    assert new_config["pad_token_id"] == 0
    new_tok_config = json.loads((tmp_path / "trim" / "tokenizer_config.json").read_text())
    assert new_tok_config["added_tokens_decoder"] == {"3": {"content": "[SEP]", "special": True}}
    new_vocab = minibert.load_tokenizer(tmp_path / "trim").backend.get_vocab()
    assert "zurich" in new_vocab
    assert new_vocab["zurich"] < vocab["zurich"]


def test_min_count_drops_rare_pieces_and_coverage_counts_them(tmp_path):
    folder = tiny_folder(tmp_path / "model", WORDPIECE_JSON)
    texts = ["the fox", "the dog", "the lazy"]  # "the" 3 times, the others once
    result = trim_vocabulary(folder, texts, tmp_path / "trim", min_count=2)
    vocab = minibert.load_tokenizer(tmp_path / "trim").backend.get_vocab()
    assert "the" in vocab
    assert "fox" not in vocab
    assert "lazy" not in vocab
    assert (result.corpus_tokens, result.corpus_tokens_kept) == (6, 3)
    assert result.coverage == 0.5


def test_int8_folder_trims_exactly_and_round_trips(tmp_path):
    float_folder = tiny_folder(tmp_path / "float", WORDPIECE_JSON, architecture="BertModel")
    qmodel = minibert.quantize(minibert.load(float_folder))
    qmodel.save_pretrained(tmp_path / "int8")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(float_folder / name, tmp_path / "int8" / name)
    result = trim_vocabulary(tmp_path / "int8", CORPUS, tmp_path / "trim")
    assert result.weight_bytes_after < result.weight_bytes_before
    trimmed = minibert.load(tmp_path / "trim")
    assert trimmed.embeddings.word.params["weight"].dtype == np.int8
    # save/load round trip of the trimmed int8 model
    trimmed.save_pretrained(tmp_path / "again")
    again = minibert.load(tmp_path / "again")
    before, after = encode(float_folder, SURVIVING), encode(tmp_path / "trim", SURVIVING)
    reference = qmodel(before["input_ids"], attention_mask=before["attention_mask"])
    for model in (trimmed, again):
        out = model(after["input_ids"], attention_mask=after["attention_mask"])
        np.testing.assert_array_equal(out.last_hidden_state, reference.last_hidden_state)


def test_shipped_sentence_folder_keeps_its_pooling_and_sentence_vectors(tmp_path):
    texts = ["The weather is lovely today.", "A man is playing a guitar on the street."]
    result = trim_vocabulary(SHIPPED, texts, tmp_path / "trim")
    assert result.old_vocab_size == minibert.load(SHIPPED).config.vocab_size
    assert result.new_vocab_size < result.old_vocab_size
    assert (tmp_path / "trim" / "sentence_bert_config.json").is_file()
    config = json.loads((tmp_path / "trim" / "config.json").read_text())
    assert (
        config["quantization"] == json.loads((SHIPPED / "config.json").read_text())["quantization"]
    )
    held_out = ["A man is playing the guitar.", "Photosynthesis converts sunlight."]
    agreement = tokenization_agreement(
        minibert.load_tokenizer(SHIPPED), minibert.load_tokenizer(tmp_path / "trim"), held_out
    )
    np.testing.assert_array_equal(agreement["identical"], [True, False])
    old = minibert.SentenceEncoder(SHIPPED).encode(held_out)
    new = minibert.SentenceEncoder(tmp_path / "trim").encode(held_out)
    np.testing.assert_array_equal(new[0], old[0])  # every piece survived: the same vector
    assert float(new[1] @ old[1]) < 0.99  # split into other pieces: another vector
    # ... which is the untrimmed model's vector for those pieces, given by their old ids
    trimmed_ids = encode(tmp_path / "trim", held_out[1:])["input_ids"]
    pieces = minibert.load_tokenizer(tmp_path / "trim").tokenize(held_out[1])
    assert pieces[:4] == ["p", "##h", "##o", "##t"]
    model = minibert.load(SHIPPED)
    old_ids = result.kept_ids[trimmed_ids]
    vector = model(old_ids).last_hidden_state.mean(1)[0]
    np.testing.assert_allclose(new[1], vector / np.linalg.norm(vector), rtol=0, atol=1e-6)


def test_bad_inputs_raise_clear_errors(tmp_path):
    folder = tiny_folder(tmp_path / "model", WORDPIECE_JSON)
    with pytest.raises(InputError, match="non-empty list"):
        trim_vocabulary(folder, [], tmp_path / "trim")
    with pytest.raises(InputError, match="one string"):
        trim_vocabulary(folder, "the fox", tmp_path / "trim")
    with pytest.raises(InputError, match="min_count"):
        trim_vocabulary(folder, CORPUS, tmp_path / "trim", min_count=0)
    with pytest.raises(InputError, match="model folder itself"):
        trim_vocabulary(folder, CORPUS, folder)
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] = 200
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="vocab_size 200"):
        trim_vocabulary(folder, CORPUS, tmp_path / "trim")


def test_other_tokenizer_types_are_refused_by_name(tmp_path):
    folder = tiny_folder(tmp_path / "model", WORDPIECE_JSON)
    (folder / "tokenizer.json").unlink()
    for file in (FIXTURES / "tokenizers" / "roberta-bpe").iterdir():
        shutil.copyfile(file, folder / file.name)
    with pytest.raises(CheckpointError, match="'BPE'.*WordPiece only"):
        trim_vocabulary(folder, CORPUS, tmp_path / "trim")


def run_cli(capsys, *argv):
    """(exit code, stdout, stderr) of `minibert argv...`."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_trims_and_reports(capsys, tmp_path):
    folder = tiny_folder(tmp_path / "model", WORDPIECE_JSON)
    corpus, held_out = tmp_path / "corpus.txt", tmp_path / "held.txt"
    corpus.write_text("\n".join(CORPUS) + "\n")
    held_out.write_text("\n".join(SURVIVING + LOST) + "\n")
    argv = ("trim-vocab", folder, tmp_path / "trim", "--corpus", corpus, "--held-out", held_out)
    code, out, err = run_cli(capsys, *argv)
    assert (code, err) == (0, "")
    vocab_size = minibert.load_tokenizer(tmp_path / "trim").vocab_size
    assert f"vocabulary 177 -> {vocab_size} pieces" in out
    pieces = sum(len(minibert.load_tokenizer(folder).tokenize(text)) for text in CORPUS)
    assert f"coverage   100.00% of {pieces} corpus tokens" in out
    assert "50.00% of 4 texts split identically, 75.00% of their pieces kept" in out
    assert "mean sentence cosine" in out


@pytest.mark.parametrize(
    ("make_argv", "message"),
    [
        (lambda folder, tmp: [folder, tmp / "out", "--corpus", tmp / "none.txt"], "no such text"),
        (lambda folder, tmp: [folder, folder, "--corpus", tmp / "c.txt"], "model folder itself"),
        (lambda folder, tmp: [tmp / "nope", tmp / "out", "--corpus", tmp / "c.txt"], "nope"),
    ],
)
def test_cli_bad_input_is_one_line(capsys, tmp_path, make_argv, message):
    folder = tiny_folder(tmp_path / "model", WORDPIECE_JSON)
    (tmp_path / "c.txt").write_text("the fox\n")
    code, out, err = run_cli(capsys, "trim-vocab", *make_argv(folder, tmp_path))
    assert code == 1
    assert out == ""
    assert len(err.splitlines()) == 1
    assert message in err
