"""The `minibert` command line, driven in-process through main(argv), plus one run of the
installed console script.

Fixtures hold no tokenizer, so `encode`, `similarity` and `demo` run on the model bundled with
minibert (their default, pretrained.shipped_path) and, with --model, on the real MiniLM (marked
`minilm`, skipped when it is not installed); `info` and the error paths need only the fixtures.
"""

import io
import json
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import minibert
from minibert import pretrained
from minibert.checkpoint import read_pytorch_bin
from minibert.cli import encode
from minibert.cli.main import main
from minibert.models.base import COMPONENTS

FIXTURES = Path(__file__).parent / "fixtures"
BERT = FIXTURES / "bert-base"
TEXTS = ["A cat sat on the mat.", "A dog lay on the rug.", "Stock prices fell sharply today."]
COMMANDS = ("info", "encode", "similarity", "demo")

needs_minilm = pytest.mark.skipif(
    not pretrained.minilm_available(),
    reason=f"all-MiniLM-L6-v2 is not installed ({pretrained.MINILM_INSTALL})",
)
minilm = [pytest.mark.minilm, needs_minilm]


def run(capsys, *argv):
    """(exit code, stdout, stderr) of `minibert argv...`."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, out, err, expected_code=1):
    assert code == expected_code
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("minibert: error: ")
    assert "Traceback" not in err


# --- the parser ---------------------------------------------------------------------------
def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.strip() == f"minibert {minibert.__version__}"


def test_no_command_prints_help_and_fails(capsys):
    code, out, err = run(capsys)
    assert code == 2
    assert "COMMAND" in err
    assert all(c in err for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert f"usage: minibert {command}" in out
    assert f"example:\n  minibert {command}" in out


def test_every_option_has_help_text_showing_its_default():
    """Walks the whole parser, so a command added later is checked too."""
    import argparse

    from minibert.cli.common import shows_a_default
    from minibert.cli.main import build_parser

    subcommands = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    assert set(COMMANDS) <= set(subcommands.choices)
    for name, sub in subcommands.choices.items():
        text = " ".join(sub.format_help().split())  # formats every %(default)s, or raises
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            option = "/".join(action.option_strings) or action.dest
            assert action.help, f"minibert {name} {option} has no help text"
            if shows_a_default(action) and "default" not in action.help.lower():
                shown = f"(default: {action.default})"
                assert shown in text, f"minibert {name} {option}: no {shown} in --help"


def test_import_is_light():
    """`import minibert.cli` must not pull in torch, transformers or numba."""
    heavy = "{'torch', 'transformers', 'numba'}"
    code = f"import sys, minibert.cli.main; print(sorted({heavy} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# --- info ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["bert-base", "bert-mlm", "albert-pretraining", "distilbert-seqcls", "roberta-mlm"]
)
def test_info_counts_add_up(capsys, name):
    path = FIXTURES / name
    code, out, err = run(capsys, "info", path, "--json")
    assert code == 0, err
    report = json.loads(out)
    model = minibert.load(path)
    params = report["parameters"]
    assert params["total"] == model.num_parameters()
    assert sum(params[c] for c in COMPONENTS) == params["total"]
    assert report["architecture"] == model.config.architecture
    assert report["sizes"]["L"] == model.config.num_hidden_layers
    assert report["sizes"]["V"] == model.config.vocab_size
    assert ("E" in report["sizes"]) == (model.config.model_type == "albert")
    heads = sum(
        a.size
        for p, a in model.named_parameters()
        if p.split(".")[0] not in ("embeddings", "encoder", "pooler")
    )
    assert params["heads"] == heads
    assert (params["heads"] > 0) == (name != "bert-base")
    weights = path / "model.safetensors"
    assert report["weight_bytes"] == weights.stat().st_size


def test_info_bert_base_numbers(capsys):
    """The tiny BERT (C=32, F=37, V=99, P=20, L=2) counted by hand."""
    code, out, _ = run(capsys, "info", BERT, "--json")
    params = json.loads(out)["parameters"]
    C, F, V, P, L = 32, 37, 99, 20, 2
    assert params["embeddings"] == (V + P + 2) * C + 2 * C
    layer = 4 * (C * C + C) + (C * F + F) + (F * C + C) + 2 * 2 * C
    assert params["encoder"] == L * layer
    assert params["pooler"] == C * C + C
    code, out, _ = run(capsys, "info", BERT)
    assert code == 0
    for expected in ("BertModel", "L=2", "total", f"{params['encoder']:,}", "float32 x 39"):
        assert expected in out


def test_info_reads_stored_dtypes_of_a_pytorch_bin(capsys):
    path = FIXTURES / "bert-bin-bf16"
    code, out, _ = run(capsys, "info", path, "--json")
    report = json.loads(out)
    assert code == 0
    assert report["weight_files"][0]["name"] == "pytorch_model.bin"
    assert report["stored_dtypes"]["bfloat16"] == 39  # the weights; the buffer is int64
    assert sum(report["stored_dtypes"].values()) == len(
        read_pytorch_bin(path / "pytorch_model.bin")
    )


def test_info_prints_load_warnings_as_one_line(capsys, tmp_path):
    from safetensors.numpy import load_file, save_file

    shutil.copy(BERT / "config.json", tmp_path / "config.json")
    tensors = load_file(str(BERT / "model.safetensors"))
    tensors["extra.weight"] = np.zeros(3, np.float32)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        code, out, err = run(capsys, "info", tmp_path)
    assert code == 0
    assert err.startswith("minibert: warning: 1 checkpoint tensor(s) were not used")
    assert len(err.splitlines()) == 1


# --- bad input: one line, non-zero exit -------------------------------------------------
def _bad_config(tmp_path):
    (tmp_path / "config.json").write_text("{ not json")
    return tmp_path


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["info", "no/such/folder"], 1, "no such model folder"),
        (["info", FIXTURES / "README.md"], 1, "is a file"),
        (["info", "BAD_CONFIG"], 1, "not valid JSON"),
        (["info"], 2, "give a model folder"),
        (["encode"], 1, "no texts"),
        (["encode", "hi", "--pooling", "median"], 2, "invalid choice: 'median'"),
        (["encode", "hi", "--batch-size", "0"], 2, "positive integer"),
        (["encode", "--file", "no/such/texts.txt"], 1, "cannot read texts"),
        (["encode", "--file", "EMPTY"], 1, "no texts in"),
        (["encode", "hi", "--file", "EMPTY"], 1, "not both"),
        (["encode", "hi", "--model", BERT], 1, "neither tokenizer.json nor vocab.txt"),
        (["encode", "hi", "--model", "no/such/folder"], 1, "no such model folder"),
        (["similarity", "only one"], 1, "at least two"),
        (["bogus"], 2, "invalid choice: 'bogus'"),
    ],
)
def test_bad_input_is_one_line(capsys, tmp_path, argv, code, message):
    (tmp_path / "empty.txt").write_text("\n  \n")
    names = {"BAD_CONFIG": _bad_config(tmp_path), "EMPTY": tmp_path / "empty.txt"}
    result = run(capsys, *[names.get(a, a) if isinstance(a, str) else a for a in argv])
    assert_one_line_error(*result, expected_code=code)
    assert message in result[2]


def test_empty_stdin_is_an_error(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert_one_line_error(*run(capsys, "encode", "-"))


def test_debug_shows_the_exception(capsys, monkeypatch):
    monkeypatch.setenv("MINIBERT_DEBUG", "1")
    with pytest.raises(minibert.CheckpointError, match="no such model folder"):
        main(["info", "no/such/folder"])


def _not_installed():
    raise pretrained.ModelNotInstalledError(
        f"all-MiniLM-L6-v2 is not installed; install it with: {pretrained.MINILM_INSTALL}"
    )


def _bundled_model_missing():
    raise pretrained.ModelNotInstalledError(
        f"the bundled model {pretrained.SHIPPED_NAME} is incomplete (model.safetensors missing "
        "in x); reinstall minibert, or rebuild it with python scripts/build_shipped_model.py"
    )


@pytest.mark.parametrize("argv", [["demo"], ["encode", "hi"], ["similarity", "a", "b"]])
def test_defaults_need_no_minilm(capsys, monkeypatch, argv):
    """Without --model the commands use the bundled model: MiniLM need not be installed."""
    monkeypatch.setattr(pretrained, "minilm_path", _not_installed)
    monkeypatch.setattr(pretrained, "minilm_available", lambda: False)
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert pretrained.SHIPPED_NAME in out or argv[0] == "similarity"


@pytest.mark.parametrize("argv", [["demo"], ["encode", "hi"], ["similarity", "a", "b"]])
def test_missing_bundled_model_says_how_to_get_it_back(capsys, monkeypatch, argv):
    monkeypatch.setattr(pretrained, "shipped_path", _bundled_model_missing)
    code, out, err = run(capsys, *argv)
    assert_one_line_error(code, out, err)
    assert "reinstall minibert" in err


# --- encode, similarity and demo on the bundled model (the default) and MiniLM --------------
@pytest.fixture(scope="module")
def encoders():
    """SentenceEncoders of the bundled model by pooling, built once (loading takes a fraction
    of a second each)."""
    cache = {}

    def get(pooling="mean", normalize=True):
        if (pooling, normalize) not in cache:
            cache[pooling, normalize] = minibert.SentenceEncoder(
                pretrained.shipped_path(), pooling=pooling, normalize=normalize
            )
        return cache[pooling, normalize]

    return get


@pytest.mark.parametrize(
    ("options", "pooling", "normalize"),
    [
        ([], "mean", True),
        (["--pooling", "cls", "--no-normalize", "--batch-size", "2"], "cls", False),
    ],
)
def test_encode_output_equals_sentence_encoder(
    capsys, tmp_path, encoders, options, pooling, normalize
):
    file = tmp_path / "vectors"  # no .npy suffix: the file is written under the name given
    code, out, err = run(capsys, "encode", *TEXTS, *options, "--kernels", "fast", "--output", file)
    assert code == 0, err
    assert f"wrote 3 x {encoders().dim} float32 to {file}" in out
    got = np.load(file)
    batch_size = 2 if "--batch-size" in options else 32
    expected = encoders(pooling, normalize).encode(TEXTS, batch_size=batch_size)
    np.testing.assert_array_equal(got, expected)


def test_encode_reads_a_file_and_stdin(capsys, monkeypatch, tmp_path, encoders):
    texts_file = tmp_path / "texts.txt"
    texts_file.write_text("\n".join(["", TEXTS[0], "   ", TEXTS[1], ""]) + "\n", encoding="utf-8")
    fast = ("--kernels", "fast")
    code, _, _ = run(capsys, "encode", "--file", texts_file, *fast, "-o", tmp_path / "a.npy")
    assert code == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{TEXTS[0]}\n{TEXTS[1]}\n"))
    code, _, _ = run(capsys, "encode", "-", *fast, "-o", tmp_path / "b.npy")
    assert code == 0
    expected = encoders().encode(TEXTS[:2])
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), expected)
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), expected)


def test_a_few_texts_are_encoded_without_loading_numba(tmp_path):
    """--kernels auto (the default) runs the numpy reference for a few short texts: Numba and
    its kernels would take longer to load (and 110 MB) than the reference takes to finish. The
    vectors are the reference's, exactly."""
    file = tmp_path / "v.npy"
    code = (
        "import sys\n"
        "from minibert.cli.main import main\n"
        f"code = main(['encode', *{list(TEXTS)!r}, '-o', {str(file)!r}])\n"
        "print(code, 'numba' in sys.modules, 'llvmlite' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    # nor LLVM (40 MB), which reading the CPU's features would load
    assert result.stdout.split()[-3:] == ["0", "False", "False"]
    reference = minibert.SentenceEncoder(pretrained.shipped_path())
    reference.model.kernels = "reference"
    np.testing.assert_array_equal(np.load(file), reference.encode(TEXTS))


def test_auto_kernels_load_the_kernels_for_enough_work(encoders):
    encoder = encoders()
    assert encode._kernels_for(encoder, list(TEXTS), "auto") == "reference"
    assert encode._kernels_for(encoder, list(TEXTS) * 200, "auto") == "fast"
    assert encode._kernels_for(encoder, list(TEXTS), "fast") == "fast"


@pytest.mark.minilm
@needs_minilm
def test_encode_preview(capsys, tmp_path):
    texts = [f"sentence number {i}" for i in range(7)]
    code, out, err = run(capsys, "encode", *texts, "--model", pretrained.minilm_path())
    assert code == 0
    assert err == ""  # no progress bar when stderr is not a terminal
    assert "all-MiniLM-L6-v2: mean pooling, unit length" in out
    assert "shape (7, 384), dtype float32" in out
    assert "2 more" in out


def test_encode_shows_progress_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, _, err = run(capsys, "encode", *TEXTS, "--batch-size", "1")
    assert code == 0
    assert "3/3" in err  # tqdm's count of batches


def test_similarity_table(capsys, encoders):
    code, out, _ = run(capsys, "similarity", *TEXTS)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["[1]", "[2]", "[3]"]
    assert lines[1].startswith("[1] A cat sat on the mat.")
    table = np.array([[float(x) for x in line.split()[-3:]] for line in lines[1:]])
    v = encoders().encode(TEXTS)
    np.testing.assert_allclose(table, v @ v.T, atol=6e-4)  # printed with 3 decimals
    assert table[0, 1] > table[0, 2]  # the two animals are closer than the stock market


def test_similarity_clips_long_texts(capsys):
    long = "word " * 40
    code, out, _ = run(capsys, "similarity", long, "short")
    assert code == 0
    first = out.splitlines()[1]
    assert "..." in first
    assert len(first) < 80


def test_encode_preview_names_the_bundled_model(capsys):
    code, out, err = run(capsys, "encode", *TEXTS)
    assert code == 0, err
    assert out.startswith(f"{pretrained.SHIPPED_NAME}: mean pooling, unit length")


@pytest.mark.parametrize("command", ["encode", "similarity", "demo"])
def test_help_names_the_default_model(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert pretrained.SHIPPED_NAME in " ".join(out.split())


def test_demo(capsys):
    code, out, err = run(capsys, "demo")
    assert code == 0, err
    config = minibert.load(pretrained.shipped_path()).config
    assert out.startswith(
        f"{pretrained.SHIPPED_NAME}: BertModel, {config.num_hidden_layers} layers, "
        f"{config.hidden_size}-dim vectors"
    )
    quantization = config.hf_extra["quantization"]
    assert out.splitlines()[0].endswith(
        f", int{quantization['bits']} in groups of {quantization['group_size']})"
    )
    assert "encode 7 sentences" in out
    _assert_topics_match(out)


@pytest.mark.minilm
@needs_minilm
def test_demo_with_minilm(capsys):
    code, out, err = run(capsys, "demo", "--model", pretrained.minilm_path())
    assert code == 0, err
    assert out.startswith("all-MiniLM-L6-v2: BertModel, 6 layers, 384-dim vectors")
    _assert_topics_match(out)


def _assert_topics_match(out):
    n = len(encode.DEMO_SENTENCES)
    matches = out.split("closest match of each sentence\n")[1].splitlines()
    assert len(matches) == n
    # each sentence's closest match shares its topic (pairs 1-3 cooking, 4-5 space, 6-7 sport)
    topic = {1: 0, 2: 0, 3: 0, 4: 1, 5: 1, 6: 2, 7: 2}
    for line in matches:
        i, j = (int(k) for k in re.findall(r"\[(\d+)\]", line))
        assert topic[i] == topic[j], line


# --- the installed console script ---------------------------------------------------------
def test_console_script():
    script = shutil.which("minibert", path=str(Path(sys.executable).parent))
    assert script is not None, "the minibert console script is not installed"
    for argv in [["--help"], *([c, "--help"] for c in COMMANDS)]:
        result = subprocess.run([script, *argv], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "usage: minibert" in result.stdout
    result = subprocess.run(
        [script, "info", "no/such/folder"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr == "minibert: error: no such model folder: no/such/folder\n"


# --- info --cpu ---------------------------------------------------------------------------
def test_info_cpu_names_the_int8_path_and_what_was_skipped(capsys):
    code, out, err = run(capsys, "info", "--cpu")
    assert code == 0, err
    from minibert.kernels import cpu

    assert f"int8 GEMM     {cpu.int8_path()}" in out
    for path, why in cpu.skipped_int8_paths().items():
        assert f"not {path}" in out
        assert why in out
    assert "BLAS" in out


def test_info_cpu_json_and_the_isa_cap(capsys, monkeypatch):
    monkeypatch.setenv("MINIBERT_ISA", "avx2")
    code, out, _ = run(capsys, "info", "--cpu", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["int8_path"] == "avx2"
    assert report["isa_cap"] == "avx2"
    assert "avx2" in report["int8_paths_available"]
    monkeypatch.setenv("MINIBERT_ISA", "pentium")
    code, out, err = run(capsys, "info", "--cpu")
    assert_one_line_error(code, out, err)
    assert "MINIBERT_ISA='pentium' is not a path" in err


def test_info_needs_a_path_or_cpu(capsys):
    code, out, err = run(capsys, "info")
    assert_one_line_error(code, out, err, expected_code=2)
    assert "--cpu" in err


def test_info_cpu_with_a_model(capsys):
    code, out, _ = run(capsys, "info", BERT, "--cpu", "--json")
    assert code == 0
    assert set(json.loads(out)) == {"cpu", "model"}
