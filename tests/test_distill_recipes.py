"""Distillation runs end to end on tiny fixtures: the sentence-embedding loss and its gradients,
task-agnostic and task-specific distillation through the trainer (checkpoints with the
tokenizer, resume), `minibert distill`, and the Lee correlation on synthetic documents."""

import json
import shutil

import numpy as np
import pytest
from test_gradients import RTOL_FD, numeric_grad, rel_error

import minibert
from conftest import assert_within, case_dir, sum_atol
from minibert import functional as F
from minibert.cli.main import main
from minibert.distill.objective import DistillationObjective, LossWeights
from minibert.distill.recipes import (
    TASK_WEIGHTS,
    agnostic_weights,
    build_student,
    distill_agnostic,
    distill_task,
)
from minibert.distill.students import RECIPES, make_student
from minibert.evaluation import lee as L
from minibert.evaluation.lee import lee_correlation
from minibert.models.auto import from_config
from minibert.tokenizer import train_wordpiece
from minibert.training.trainer import TrainConfig

WORDS = (
    "the cat sat on a mat while dogs ran over green hills and birds sang in tall trees "
    "near cold rivers"
).split()


def sentences(n, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, rng.integers(4, 9))) + "." for _ in range(n)]


def with_tokenizer(case, folder):
    """A copy of a fixture model with a WordPiece tokenizer trained on WORDS (its ids fit the
    fixture's vocabulary of 99)."""
    shutil.copytree(case_dir(case), folder)
    (folder / "reference.npz").unlink()
    (folder / "training.npz").unlink(missing_ok=True)
    tok = train_wordpiece(sentences(200), 99, folder)
    assert tok.vocab_size <= 99
    return folder


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """bert-base (BertModel, no head: like all-MiniLM-L6-v2) with a tokenizer and, as
    sentence-transformers folders have, a pooling config and a sequence length."""
    folder = with_tokenizer("bert-base", tmp_path_factory.mktemp("t") / "bert-base")
    (folder / "1_Pooling").mkdir()
    pooling = {"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 16}))
    return folder


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """bert-seqcls (BertForSequenceClassification, 3 labels) with a tokenizer."""
    return with_tokenizer("bert-seqcls", tmp_path_factory.mktemp("c") / "bert-seqcls")


def tiny_config(steps, **changes):
    return TrainConfig(max_steps=steps, lr=1e-3, progress=False, seed=0, **changes)


# --- the sentence-embedding loss ------------------------------------------------------------------
@pytest.mark.parametrize("widths", [(5, 5), (3, 6)])
def test_sentence_cosine_gradients(widths):
    """With and without the projection; a row without real tokens counts nowhere."""
    C, C_teacher = widths
    rng = np.random.default_rng(0)
    h, t = rng.normal(size=(3, 4, C)), rng.normal(size=(3, 4, C_teacher))
    w = rng.normal(size=(C_teacher, C)) if C != C_teacher else None
    b = rng.normal(size=C_teacher) if C != C_teacher else None
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]])

    def f():
        return float(F.sentence_cosine_forward(h, w, b, t, mask)[0])

    _, cache = F.sentence_cosine_forward(h, w, b, t, mask)
    dh, dw, db = F.sentence_cosine_backward(1.0, cache)
    assert rel_error(dh, numeric_grad(f, h)) < RTOL_FD
    assert not dh[1, 2:].any()
    assert not dh[2].any()
    if w is None:
        assert dw is None
        assert db is None
    else:
        assert rel_error(dw, numeric_grad(f, w)) < RTOL_FD
        assert rel_error(db, numeric_grad(f, b)) < RTOL_FD


def test_mean_pool_averages_the_real_tokens_and_its_gradient():
    rng = np.random.default_rng(1)
    h = rng.normal(size=(2, 5, 3))
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    pooled, cache = F.mean_pool_forward(h, mask)
    expected = np.stack([h[b][mask[b] == 1].mean(0) for b in range(2)])  # (2, 3)
    assert_within(pooled, expected, sum_atol(np.abs(h).sum(1), 5))
    dout = rng.normal(size=pooled.shape)
    numeric = numeric_grad(lambda: float((F.mean_pool_forward(h, mask)[0] * dout).sum()), h)
    assert rel_error(F.mean_pool_backward(dout, cache), numeric) < RTOL_FD
    # the same mean-pooled vectors give no loss, whatever the token states
    target = np.repeat(pooled[:, None], 5, axis=1)  # (2, 5, 3): every token is the mean
    loss, _ = F.sentence_cosine_forward(h, None, None, target, mask)
    assert abs(float(loss)) < 1e-10  # the eps of 1e-12 on each squared norm is all that is left


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_objective_with_the_sentence_loss_by_finite_differences(recipe):
    """The agnostic weights of each recipe, L_sent at 2: distilbert and albert send L_cos and
    L_sent into the last hidden states, tinybert's L_hidn and L_sent share the projection.
    Every parameter, float64, dropout off. Freshly drawn embeddings are small (std 0.02), so
    the LayerNorm after them curves the loss sharply along an embedding direction: a two-point
    difference is off by up to 1e-3 there, so we take the five-point one (error O(eps^4))."""
    config = minibert.EncoderConfig(
        architecture="BertModel",
        vocab_size=99,
        hidden_size=24,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=20,
    )
    teacher = from_config(config, 1).astype(np.float64)
    student = make_student(recipe, teacher)
    weights = agnostic_weights(recipe).replace(sentence=2.0)
    objective = DistillationObjective(student, teacher, weights).train(dropout=False)
    assert hasattr(objective, "projection") == (recipe == "tinybert")
    rng = np.random.default_rng(0)
    mask = (np.arange(7)[None, :] < np.array([7, 5, 3])[:, None]).astype(np.int64)
    batch = {"input_ids": np.where(mask == 1, rng.integers(5, 99, (3, 7)), 0)}
    batch["attention_mask"] = mask
    objective(batch)
    assert set(objective.losses) >= {"sentence", "total"}
    objective.zero_grad()
    objective.backward()
    eps = 1e-5
    for path, param in objective.named_parameters():
        module, key = objective._resolve(path)
        direction = rng.normal(size=param.shape)
        if getattr(module, "padding_idx", None) is not None:
            direction[module.padding_idx] = 0.0
        analytic = float((module.grads[key] * direction).sum())

        def f(k, param=param, direction=direction):
            param += k * eps * direction
            value = objective(batch)
            param -= k * eps * direction
            return value

        numeric = (8 * (f(1) - f(-1)) - (f(2) - f(-2))) / (12 * eps)
        assert abs(analytic - numeric) <= 1e-6 * max(abs(numeric), 1e-3), path


def test_weights_of_the_two_tasks():
    assert agnostic_weights("distilbert") == LossWeights(cosine=1.0, sentence=1.0, temperature=2)
    tiny = agnostic_weights("tinybert")
    assert (tiny.soft, tiny.hidden, tiny.attention, tiny.sentence) == (0, 1, 1, 1)
    assert (TASK_WEIGHTS.soft, TASK_WEIGHTS.hard, TASK_WEIGHTS.temperature) == (5, 2, 2)
    with pytest.raises(ValueError, match="recipes"):
        agnostic_weights("bert")


# --- task-agnostic distillation -------------------------------------------------------------------
def synthetic_lee(folder, documents, scores):
    """lee.cor (latin-1) and the upper triangle of a ratings matrix, as the real files."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lee.cor").write_bytes("\n".join(documents).encode("latin-1"))
    n = len(documents)
    matrix = np.eye(n)
    matrix[np.triu_indices(n, 1)] = scores
    np.savetxt(folder / "similarities.txt", matrix, delimiter="\t", fmt="%.8f")
    return folder


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_agnostic_distillation_gives_a_sentence_encoder(recipe, teacher, tmp_path):
    docs = sentences(6, seed=3)
    lee = synthetic_lee(tmp_path / "lee", docs, np.linspace(0, 1, 15))
    lines = []
    student, history, report = distill_agnostic(
        teacher,
        recipe,
        sentences(40),
        tiny_config(4, eval_every=2),
        tmp_path / "run",
        max_length=16,
        batch_size=8,
        eval_texts=sentences(8, seed=1),
        lee_dir=lee,
        log=lines.append,
    )
    assert "% of the teacher" in lines[0]
    assert len(history.loss) == 4
    assert all(np.isfinite(history.loss))
    parts = {"distilbert": "cosine", "tinybert": "hidden", "albert": "cosine"}[recipe]
    assert {f"held_out_{parts}", "held_out_sentence", "lee_spearman"} <= set(history.evals[-1])
    assert report["lee"]["teacher"]["pairs"] == 15
    folder = tmp_path / "run" / "checkpoint-4"
    assert (folder / "tokenizer.json").is_file()  # the teacher's tokenizer travels along
    pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    assert pooling["word_embedding_dimension"] == student.config.hidden_size
    encoder = minibert.SentenceEncoder(folder)
    assert encoder.max_length == 16  # sentence_bert_config.json came along too
    vectors = encoder.encode(["the cat sat on a mat.", "birds sang."])
    assert vectors.shape == (2, student.config.hidden_size)
    assert type(encoder.model) is type(student)


def test_agnostic_distillation_resumes_to_the_same_losses(teacher, tmp_path):
    """tinybert: the projection and its moments are checkpointed with the student."""

    def run(output, resume=False):
        return distill_agnostic(
            teacher,
            "tinybert",
            sentences(48),
            tiny_config(6, save_every=3),
            output,
            max_length=16,
            batch_size=8,
            resume=resume,
        )[1]

    straight = run(tmp_path / "a")
    (tmp_path / "b").mkdir()
    shutil.copytree(tmp_path / "a" / "checkpoint-3", tmp_path / "b" / "checkpoint-3")
    assert (tmp_path / "b" / "checkpoint-3" / "objective.safetensors").is_file()
    resumed = run(tmp_path / "b", resume=True)
    assert resumed.loss == straight.loss


def test_agnostic_refuses_logit_losses(teacher, tmp_path):
    with pytest.raises(ValueError, match="no logits"):
        distill_agnostic(
            teacher,
            "distilbert",
            sentences(8),
            tiny_config(1),
            None,
            weights=RECIPES["distilbert"].weights,
        )


# --- task-specific distillation -------------------------------------------------------------------
def labelled(n=120, seed=2):
    """Three classes by the animal a sentence mentions (cat, dogs, birds), grouped in tens."""
    rng = np.random.default_rng(seed)
    texts, labels, groups = [], [], []
    for i in range(n):
        label = i % 3
        words = list(rng.choice(WORDS[3:6] + WORDS[10:14], 5))
        words.insert(int(rng.integers(0, 5)), ("cat", "dogs", "birds")[label])
        texts.append(" ".join(words))
        labels.append(label)
        groups.append(f"g{i // 10}")
    return texts, labels, groups


def test_task_distillation_with_and_without_the_teacher(classifier, tmp_path):
    texts, labels, groups = labelled()
    runs = {}
    for no_teacher in (False, True):
        runs[no_teacher] = distill_task(
            classifier,
            "tinybert",
            texts,
            labels,
            groups,
            tiny_config(4),
            tmp_path / str(no_teacher),
            max_length=16,
            batch_size=16,
            no_teacher=no_teacher,
        )
    distilled, baseline = runs[False][2], runs[True][2]
    assert (distilled["mode"], baseline["mode"]) == ("distilled", "no_teacher")
    assert distilled["sizes"] == baseline["sizes"]  # the same split
    assert sum(distilled["sizes"].values()) == len(texts)
    assert set(distilled["test"]) == {"accuracy", "f1"}
    assert distilled["teacher_test"] == baseline["teacher_test"]
    assert 0 <= distilled["test_agreement_with_teacher"] <= 1
    assert distilled["weights"]["soft"] == 5.0
    assert baseline["weights"] is None
    assert runs[False][1].loss != runs[True][1].loss  # different losses, same start:
    teacher = minibert.load(classifier)
    a, b = build_student("tinybert", teacher, 0), build_student("tinybert", teacher, 0)
    for (path, x), (_, y) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        np.testing.assert_array_equal(x, y, err_msg=path)
    assert (tmp_path / "False" / "checkpoint-4" / "tokenizer.json").is_file()


def test_task_student_from_an_agnostic_student(teacher, classifier, tmp_path):
    """General then task distillation: a BertModel student folder gets a fresh classifier."""
    distill_agnostic(
        teacher, "distilbert", sentences(16), tiny_config(1), tmp_path / "g", max_length=16
    )
    texts, labels, groups = labelled(60)
    student, _, report = distill_task(
        classifier,
        "distilbert",
        texts,
        labels,
        groups,
        tiny_config(2),
        tmp_path / "t",
        max_length=16,
        student_init=tmp_path / "g" / "checkpoint-1",
    )
    assert type(student).__name__ == "BertForSequenceClassification"
    assert student.config.hidden_size == 32  # the agnostic student's width, not the teacher's
    assert report["student_init"].endswith("checkpoint-1")
    with pytest.raises(ValueError, match="ForSequenceClassification"):
        distill_task(teacher, "tinybert", texts, labels, groups, tiny_config(1), None)
    with pytest.raises(ValueError, match="labels"):
        distill_task(classifier, "tinybert", texts, [5] * len(texts), groups, tiny_config(1), None)


# --- the Lee benchmark ----------------------------------------------------------------------------
def test_lee_correlation_is_one_for_ratings_in_the_models_order(teacher, tmp_path):
    """Ratings that are a monotone function of the model's own cosines: rho = 1, and -1 when
    reversed; the files are read in the pair order of the real data (i < j, row-major)."""
    docs = sentences(8, seed=5)
    model, tok = minibert.load(teacher), minibert.load_tokenizer(teacher)
    vectors, chunked = L.document_embeddings(model, tok, docs, 20)
    assert chunked == 0
    i, j = np.triu_indices(8, 1)
    cosines = (vectors[i] * vectors[j]).sum(1)
    ratings = (cosines + 1) ** 3 / 8  # monotone, in [0, 1]
    result = lee_correlation(teacher, synthetic_lee(tmp_path / "up", docs, ratings))
    assert result["spearman"] == pytest.approx(1.0)
    assert (result["documents"], result["pairs"]) == (8, 28)
    down = lee_correlation(teacher, synthetic_lee(tmp_path / "down", docs, 1 - ratings))
    assert down["spearman"] == pytest.approx(-1.0)
    same = synthetic_lee(tmp_path / "same", [docs[0]] * 3, [0.9, 0.9, 0.9])
    assert L.read_lee(same)["scores"].tolist() == [0.9, 0.9, 0.9]


def test_long_documents_are_chunked_and_averaged(teacher):
    model, tok = minibert.load(teacher), minibert.load_tokenizer(teacher)
    short = "the cat sat on a mat."
    long = " ".join(sentences(6, seed=7))  # longer than one window of 10 tokens
    vectors, chunked = L.document_embeddings(model, tok, [short, long], 10)
    assert chunked == 1
    encoder = minibert.SentenceEncoder(teacher, max_length=10)
    np.testing.assert_allclose(vectors[0], encoder.encode([short])[0], atol=1e-6)
    body = tok(long, truncation=False, padding=False)["input_ids"][0][1:-1]
    total, count = 0, 0
    for start in range(0, len(body), 8):  # windows of 8 tokens + [CLS] and [SEP]
        ids = np.array([[tok.cls_token_id, *body[start : start + 8], tok.sep_token_id]])
        total = total + model(ids).last_hidden_state[0].sum(0)
        count += ids.shape[1]
    expected = total / count
    np.testing.assert_allclose(vectors[1], expected / np.linalg.norm(expected), atol=1e-6)


def test_read_lee_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="fetch_data"):
        L.read_lee(tmp_path)
    synthetic_lee(tmp_path, ["a b", "c d", "e f"], [0.1, 0.2, 0.3])
    (tmp_path / "lee.cor").write_text("a b\nc d\n")
    with pytest.raises(ValueError, match="2 documents"):
        L.read_lee(tmp_path)


# --- minibert distill -----------------------------------------------------------------------------
def test_cli_help_has_an_example(capsys):
    assert main(["distill", "--help"]) == 0
    out = capsys.readouterr().out
    assert "example:" in out
    assert "--recipe distilbert" in out
    assert "--no-teacher" in out
    assert "--corpus" in out


def test_cli_agnostic_run_then_encode(teacher, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(" ".join(sentences(4, seed=s)) for s in range(10)) + "\n")
    lee = synthetic_lee(tmp_path / "lee", sentences(5, seed=9), np.linspace(0, 1, 10))
    args = ["distill", str(teacher), "--recipe", "albert", "--output", str(tmp_path / "run")]
    args += ["--corpus", str(corpus), "--steps", "2", "--batch-size", "8", "--max-length", "16"]
    args += ["--held-out", "8", "--lee", str(lee), "--layers", "2", "--embedding-size", "8"]
    assert main(args) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["student"].startswith("AlbertModel L=2")
    assert "E=8" in summary["student"]
    assert set(summary["lee"]) == {"teacher", "student"}
    assert "of the teacher" in captured.err
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["evals"][-1]["step"] == 2
    assert main([*args, "--resume"]) == 0  # already done: nothing more to run
    capsys.readouterr()
    folder = tmp_path / "run" / "checkpoint-2"
    assert main(["encode", "the cat sat.", "--model", str(folder)]) == 0
    assert "(1, 32)" in capsys.readouterr().out


def test_cli_classification_without_teacher(classifier, tmp_path, capsys):
    texts, labels, groups = labelled(60)
    data = tmp_path / "data.jsonl"
    names = ["cat", "dog", "bird"]
    data.write_text(
        "".join(
            json.dumps({"text": t, "label": names[y], "group": g}) + "\n"
            for t, y, g in zip(texts, labels, groups, strict=True)
        )
    )
    args = ["distill", str(classifier), "--recipe", "tinybert", "--output", str(tmp_path / "o")]
    args += ["--data", str(data), "--group-column", "group", "--labels", "cat,dog,bird"]
    args += ["--steps", "2", "--max-length", "16", "--no-teacher", "--batch-size", "8"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["mode"] == "no_teacher"
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["label_names"] == names
    assert sum(report["sizes"].values()) == 60


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--corpus", "c.txt", "--task", "classification"], "--corpus is for --task agnostic"),
        (["--data", "d.csv"], "are for --task classification"),
        (["--layers", "2"], "--teacher-layers"),
        (["--teacher-layers", "0,x"], "comma-separated"),
        (["--weight", "warmth=2"], "no loss weight 'warmth'"),
        (["--weight", "soft=high"], "not a number"),
        (["--corpus", "missing.txt"], "missing.txt does not exist"),
        (["--task", "classification"], "needs --data"),
    ],
)
def test_cli_errors_are_one_line(teacher, tmp_path, capsys, extra, message):
    code = main(
        ["distill", str(teacher), "--recipe", "distilbert", "--output", str(tmp_path)] + extra
    )
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("minibert: error:")
    assert message in err
    assert "\n" not in err


def test_cli_errors_about_the_teacher(classifier, tmp_path, capsys):
    def run(teacher, *extra):
        base = ["distill", str(teacher), "--recipe", "tinybert", "--output", str(tmp_path / "o")]
        assert main([*base, *extra]) == 1
        return capsys.readouterr().err.strip()

    assert "not a model folder" in run(tmp_path / "nowhere")
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(case_dir("bert-base") / "config.json", bare)
    assert "has no tokenizer" in run(bare)
    data = tmp_path / "d.csv"
    data.write_text("text,label\nthe cat sat,cat\nthe dogs ran,fish\n")
    assert "['fish']" in run(classifier, "--data", str(data), "--labels", "cat,dog,bird")
    assert main(["distill", str(classifier), "--output", "x"]) == 2  # --recipe is required
    assert "--recipe" in capsys.readouterr().err
