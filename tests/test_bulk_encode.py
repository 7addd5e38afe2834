"""`minibert encode --input FILE --output OUT`: a corpus file in shards, on worker processes,
resumable (minibert/scale/corpus.py, parts.py, bulk.py).

Every run uses the model bundled with minibert (it has a tokenizer) on a corpus of a few dozen
texts in shards of 8. The expected vectors are SentenceEncoder.encode of each shard's texts with
the same (fast) kernels, which is what a worker computes: equal exactly. Against one encode of
the whole corpus they agree to ATOL_INVARIANT, since batches of other texts pad differently.
"""

import csv
import json
import sys

import numpy as np
import pytest

import minibert
from conftest import ATOL_INVARIANT
from minibert import pretrained
from minibert.cli.main import main
from minibert.errors import InputError
from minibert.scale import bulk
from minibert.scale.corpus import Corpus
from minibert.scale.process import EncoderOptions

SHARD = 8
WORDS = "the cat dog sat on a mat rug stock prices fell sharply today quick brown fox".split()
TEXTS = [
    " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(3 + (i * 5) % 17)) for i in range(29)
]
FAST = ("--kernels", "fast")


@pytest.fixture(scope="module")
def encoder():
    return minibert.SentenceEncoder(pretrained.shipped_path())


def expected(encoder, texts, shard=SHARD):
    """What the CLI computes: each shard's texts encoded together."""
    parts = [encoder.encode(texts[i : i + shard]) for i in range(0, len(texts), shard)]
    return np.concatenate(parts)


def run(capsys, *argv):
    """(exit code, stdout, stderr) of `minibert argv...`."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def read_parquet(file):
    pq = pytest.importorskip("pyarrow.parquet")
    table = pq.read_table(file)
    embedding = table.column("embedding").combine_chunks()
    dim = embedding.type.list_size
    vectors = embedding.flatten().to_numpy().reshape(-1, dim)  # (N, C)
    return table.column("id").to_pylist(), vectors


def write_corpus(folder, fmt, texts=TEXTS):
    """A corpus file of `texts` in format `fmt`; returns (file, options, expected ids)."""
    if fmt == "txt":  # blank lines are skipped, but counted: an id is a line number
        file = folder / "corpus.txt"
        lines, ids = [], []
        for i, text in enumerate(texts):
            if i % 5 == 2:
                lines.append("   ")
            lines.append(text)
            ids.append(len(lines))
        file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return file, [], ids
    ids = [f"doc-{i:03d}" for i in range(len(texts))]
    if fmt == "jsonl":
        file = folder / "corpus.jsonl"
        records = [
            json.dumps({"id": d, "text": t, "other": 1}) for d, t in zip(ids, texts, strict=True)
        ]
        file.write_text("\n".join(records) + "\n", encoding="utf-8")
        return file, ["--id-field", "id"], ids
    if fmt == "csv":  # default ids: row numbers below the header; a text with a comma, quoted
        file = folder / "corpus.csv"
        with open(file, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["body", "n"])
            writer.writerows([t, i] for i, t in enumerate(texts))
        return file, ["--text-field", "body"], list(range(1, len(texts) + 1))
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    file = folder / "corpus.parquet"
    numbers = [1000 + i for i in range(len(texts))]
    table = pa.table({"key": numbers, "text": texts})
    pq.write_table(table, file, row_group_size=5)  # row groups that do not match the shards
    return file, ["--id-field", "key"], numbers


# --- each input format, output equal to SentenceEncoder's ----------------------------------
@pytest.mark.parametrize("fmt", ["txt", "jsonl", "csv", "parquet"])
def test_each_format_gives_the_encoders_vectors_in_order(capsys, tmp_path, encoder, fmt):
    corpus, options, ids = write_corpus(tmp_path, fmt)
    out = tmp_path / "vectors.parquet"
    code, stdout, err = run(
        capsys, "encode", "--input", corpus, *options, "--output", out, "--shard-size", SHARD, *FAST
    )
    assert code == 0, err
    assert f"wrote {len(TEXTS)} x {encoder.dim} float32 to {out}: 4 shards, 4 encoded" in stdout
    got_ids, vectors = read_parquet(out)
    assert got_ids == ids
    np.testing.assert_array_equal(vectors, expected(encoder, TEXTS))
    np.testing.assert_allclose(vectors, encoder.encode(TEXTS), atol=ATOL_INVARIANT)
    assert not (tmp_path / "vectors.parquet.parts").exists()  # deleted once the output is whole


def test_npy_output_and_options_reach_the_workers(capsys, tmp_path):
    corpus, _, _ = write_corpus(tmp_path, "txt")
    out = tmp_path / "vectors.npy"
    options = ("--pooling", "cls", "--no-normalize", "--batch-size", "3")
    argv = ("encode", "-i", corpus, "-o", out, "--shard-size", SHARD, *options, *FAST)
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    cls = minibert.SentenceEncoder(pretrained.shipped_path(), pooling="cls", normalize=False)
    shards = [cls.encode(TEXTS[i : i + SHARD], batch_size=3) for i in range(0, 29, SHARD)]
    np.testing.assert_array_equal(np.load(out), np.concatenate(shards))


def test_two_workers_equal_one(capsys, tmp_path):
    corpus, options, ids = write_corpus(tmp_path, "jsonl")
    outputs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}.parquet"
        argv = ("encode", "-i", corpus, *options, "-o", out, "--shard-size", SHARD, *FAST)
        code, stdout, err = run(capsys, *argv, "--workers", workers)
        assert code == 0, err
        assert f"on {workers} worker" in stdout
        outputs[workers] = read_parquet(out)
    assert outputs[1][0] == outputs[2][0] == ids
    np.testing.assert_array_equal(outputs[2][1], outputs[1][1])


def test_texts_as_arguments_can_be_written_as_parquet(capsys, tmp_path, encoder):
    out = tmp_path / "few.parquet"
    code, stdout, err = run(capsys, "encode", *TEXTS[:3], *FAST, "--output", out)
    assert code == 0, err
    ids, vectors = read_parquet(out)
    assert ids == [1, 2, 3]
    np.testing.assert_array_equal(vectors, encoder.encode(TEXTS[:3]))


# --- resuming ------------------------------------------------------------------------------
def test_a_rerun_encodes_only_the_missing_shard(capsys, tmp_path, encoder):
    corpus, options, _ = write_corpus(tmp_path, "csv")
    out = tmp_path / "v.npy"
    argv = ("encode", "-i", corpus, *options, "-o", out, "--shard-size", SHARD, *FAST)
    code, stdout, err = run(capsys, *argv, "--keep-parts")
    assert code == 0, err
    parts = tmp_path / "v.npy.parts"
    manifest = json.loads((parts / "manifest.json").read_text())
    assert manifest["shards"] == {"0": 8, "1": 8, "2": 8, "3": 5}
    assert manifest["settings"]["shard_size"] == SHARD
    stamps = {f.name: f.stat().st_mtime_ns for f in parts.glob("shard-*.npy")}
    (parts / "shard-00002.npy").unlink()

    code, stdout, err = run(capsys, *argv, "--keep-parts")
    assert code == 0, err
    assert "4 shards, 1 encoded (8 texts" in stdout
    assert "3 reused from an earlier run" in stdout
    np.testing.assert_array_equal(np.load(out), expected(encoder, TEXTS))
    again = {f.name: f.stat().st_mtime_ns for f in parts.glob("shard-*.npy")}
    assert sorted(again) == sorted(stamps)
    assert [name for name in sorted(again) if again[name] != stamps[name]] == ["shard-00002.npy"]


def test_an_interrupted_run_resumes(tmp_path, monkeypatch, encoder):
    """Stop the run inside shard 2 (as Ctrl-C would): shards 0 and 1 are kept, and the next run
    encodes shards 2 and 3 only."""
    corpus = Corpus(write_corpus(tmp_path, "txt")[0])
    options = EncoderOptions(pretrained.shipped_path(), kernels="fast")
    out = tmp_path / "v.npy"
    real = bulk._encode_shard

    def stop_at_shard_2(options, part, ids, texts, settings):
        if part.name == "shard-00002.npy":
            raise KeyboardInterrupt
        return real(options, part, ids, texts, settings)

    monkeypatch.setattr(bulk, "_encode_shard", stop_at_shard_2)
    with pytest.raises(KeyboardInterrupt):
        bulk.encode_file(corpus, out, options, shard_size=SHARD)
    assert not out.exists()
    assert sorted(f.name for f in (tmp_path / "v.npy.parts").glob("shard-*")) == [
        "shard-00000.npy",
        "shard-00001.npy",
    ]
    monkeypatch.setattr(bulk, "_encode_shard", real)
    result = bulk.encode_file(corpus, out, options, shard_size=SHARD)
    assert (result.shards, result.encoded, result.reused, result.encoded_rows) == (4, 2, 2, 13)
    np.testing.assert_array_equal(np.load(out), expected(encoder, TEXTS))


def test_other_settings_are_refused_unless_restarted(capsys, tmp_path):
    corpus, _, _ = write_corpus(tmp_path, "txt")
    out = tmp_path / "v.npy"
    argv = ("encode", "-i", corpus, "-o", out, "--shard-size", SHARD, *FAST, "--keep-parts")
    assert run(capsys, *argv)[0] == 0
    code, stdout, err = run(capsys, *argv, "--pooling", "max")
    assert code == 1
    assert stdout == ""
    assert len(err.splitlines()) == 1
    assert "pooling: 'mean' -> 'max'" in err
    assert "--restart" in err
    code, stdout, err = run(capsys, *argv, "--pooling", "max", "--restart")
    assert code == 0, err
    assert "4 encoded" in stdout

    corpus.write_text(corpus.read_text() + "one more line\n")  # the corpus changed
    code, _, err = run(capsys, *argv, "--pooling", "max")
    assert code == 1
    assert "corpus.size" in err


def test_a_folder_that_is_not_ours_is_left_alone(capsys, tmp_path):
    corpus, _, _ = write_corpus(tmp_path, "txt")
    (tmp_path / "v.npy.parts").mkdir()
    (tmp_path / "v.npy.parts" / "notes.txt").write_text("mine")
    code, _, err = run(capsys, "encode", "-i", corpus, "-o", tmp_path / "v.npy", *FAST)
    assert code == 1
    assert "holds no manifest.json" in err
    assert (tmp_path / "v.npy.parts" / "notes.txt").read_text() == "mine"


def test_a_failed_first_shard_leaves_no_parts(capsys, tmp_path):
    corpus, _, _ = write_corpus(tmp_path, "txt")
    code, _, err = run(capsys, "encode", "-i", corpus, "-o", tmp_path / "v.npy", "-m", tmp_path)
    assert code == 1
    assert "config.json" in err
    assert not (tmp_path / "v.npy.parts").exists()


def test_progress_counts_texts_on_a_terminal(capsys, monkeypatch, tmp_path):
    corpus, _, _ = write_corpus(tmp_path, "txt")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, _, err = run(capsys, "encode", "-i", corpus, "-o", tmp_path / "v.npy", *FAST)
    assert code == 0
    assert f"{len(TEXTS)}text" in err.replace(" ", "")


# --- bad input: one line, naming what was wrong -------------------------------------------
@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["hello", "--input", "CORPUS"], 2, "not together"),
        (["--input", "CORPUS"], 2, "--input needs --output"),
        (["hello", "--workers", "2"], 2, "--workers apply to a corpus file"),
        (["--input", "CORPUS", "-o", "OUT.txt"], 1, "must be a .parquet or .npy"),
        (["--input", "CORPUS", "-o", "OUT.npy", "--text-field", "body"], 1, "no field 'body'"),
        (["--input", "no/such.jsonl", "-o", "OUT.npy"], 1, "no such corpus file"),
        (["--input", "CORPUS", "-o", "OUT.npy", "--format", "csv"], 1, "no column 'text'"),
        (["--input", "CORPUS", "-o", "OUT.npy", "--workers", "0"], 2, "positive integer"),
        (["--input", "UNKNOWN", "-o", "OUT.npy"], 1, "cannot tell the format"),
    ],
)
def test_bad_bulk_input_is_one_line(capsys, tmp_path, argv, code, message):
    corpus, _, _ = write_corpus(tmp_path, "jsonl")
    (tmp_path / "corpus.xml").write_text("<texts/>")
    names = {"CORPUS": corpus, "UNKNOWN": tmp_path / "corpus.xml"}
    names |= {"OUT.txt": tmp_path / "o.txt", "OUT.npy": tmp_path / "o.npy"}
    got_code, out, err = run(capsys, "encode", *[names.get(a, a) for a in argv])
    assert got_code == code
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert message in err


def test_parquet_without_pyarrow_says_which_extra(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` now fails
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    code, out, err = run(capsys, "encode", "hello", "-o", tmp_path / "v.parquet")
    assert code == 1
    assert len(err.splitlines()) == 1
    assert 'pip install "minibert[parquet]"' in err


# --- the readers ---------------------------------------------------------------------------
def test_records_stream_in_shards(tmp_path):
    file = tmp_path / "c.jsonl"
    file.write_text('{"text": "a"}\n\n{"text": "b"}\n{"text": "c"}\n', encoding="utf-8")
    shards = list(Corpus(file).shards(2))
    assert [(s.index, s.ids, s.texts) for s in shards] == [(0, [1, 3], ["a", "b"]), (1, [4], ["c"])]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"id": 1, "text": "a"}', '{"id": "b", "text": "b"}'], "use one kind of id"),
        (['{"id": 1, "text": 3}'], "should be a string"),
        (['{"id": [1], "text": "a"}'], "should be an integer or a string"),
        (['{"id": 1, "text": "a"}', "not json"], "line 2 is not JSON"),
        (["[1, 2]"], "expected a JSON object"),
        ([], "no texts in"),
    ],
)
def test_bad_records_name_their_line(tmp_path, lines, message):
    file = tmp_path / "c.jsonl"
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=message):
        list(Corpus(file, id_field="id").shards(10))


def test_a_file_that_is_not_utf8_is_named(tmp_path):
    file = tmp_path / "c.txt"
    file.write_bytes(b"fine\n\xff\xfe broken\n")
    with pytest.raises(InputError, match="is not UTF-8"):
        list(Corpus(file).records())
