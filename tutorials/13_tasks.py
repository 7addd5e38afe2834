"""Chapter 13: tasks (fill-mask, named entities and question answering, by hand and by pipeline).

Goal: see what `minibert.pipeline` does between the model's logits and the answer a user
reads. A model gives numbers per token; a task turns them into words. We pretrain a tiny BERT
from scratch, save it as a model folder and fill in masked words with it: softmax, the top
tokens, the sentence they make. Then named entities: a label per token, sub-word pieces put
back into words with the tokenizer's `word_ids`, neighbouring words grouped into entities, and
the characters of each found with the offsets. Last, question answering: start and end
logits turned into the best span no longer than `max_answer_len`, a long context read in
overlapping windows (`doc_stride`) and the answer cut from the context by its offsets. Each
step is computed by hand in a few lines of NumPy and asserted equal to the pipeline's output.

Prerequisites: chapter 3 (tokenization), chapter 5 (pretraining; this chapter uses a smaller
version of its toy corpus) and chapter 6 (heads on a body). No weights to install: the
named-entity and question-answering models are the tiny seeded test models in
tests/fixtures/pipelines/ (random weights, whose pipeline outputs the tests compare with
transformers' pipelines).

Code explained: `minibert/pipelines/__init__.py` (pipeline, the task names),
`minibert/pipelines/base.py` (loading the model with the task's head, options, batches),
`minibert/pipelines/encoding.py` (offsets, word ids, sequence ids and windows),
`minibert/pipelines/fill_mask.py`, `minibert/pipelines/token_classification.py`,
`minibert/pipelines/question_answering.py`, `minibert/tokenizer/encoding.py` (word_ids,
sequence_ids) and `minibert/training/recipes.py` (pretraining_batches).

Run: python tutorials/13_tasks.py
"""

# %% Setup: helpers and where the files go
import json
import tempfile
from pathlib import Path

import numpy as np

import minibert
from minibert import EncoderConfig
from minibert.models import from_config
from minibert.training.recipes import pretraining_batches
from minibert.training.trainer import TrainConfig, Trainer

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "pipelines"
OUTPUT = Path(tempfile.gettempdir()) / "minibert-tutorials"  # the pretrained folder goes here


def softmax(logits):
    """Probabilities over the last axis (the row max subtracted so exp never overflows)."""
    logits = np.asarray(logits, np.float32)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def check_same(name, ours, theirs, tol=1e-6):
    """Assert two pipeline outputs (lists of dicts) are equal: strings and ints exactly,
    scores to tol; print one line. 1e-6: both sides do the same float32 arithmetic, only in
    batches of other shapes, which can change the last bits of a sum."""
    assert len(ours) == len(theirs), f"{name}: {len(ours)} results vs {len(theirs)}"
    worst = 0.0
    for a, b in zip(ours, theirs, strict=True):
        assert a.keys() == b.keys(), f"{name}: keys {sorted(a)} vs {sorted(b)}"
        for key in a:
            if key == "score":
                worst = max(worst, abs(a[key] - b[key]))
            else:
                assert a[key] == b[key], f"{name}: {key} {a[key]!r} vs {b[key]!r}"
    print(f"  check {name}: {len(ours)} results equal, max |score difference| = {worst:.1e}")
    assert worst <= tol, f"{name}: scores differ by {worst}"


# %% [markdown]
# ## Step 1: a tiny BERT pretrained from scratch
# Fill-mask is what a model learns in pretraining (chapter 5): the masked-LM head gives V
# logits at each position. We pretrain one here on a smaller version of chapter 5's toy
# corpus: three topics (counting, the days of the week, capitals), one token per word, two
# layers of width 64, 200 steps of masked LM and next sentence prediction. That takes a few
# seconds and gives a model that has learned the frame of each sentence, not much more; step 3
# shows exactly what it knows.

# %%
NUMBERS = "one two three four five six seven eight nine ten eleven twelve".split()
DAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
CAPITALS = {"france": "paris", "italy": "rome", "spain": "madrid", "japan": "tokyo"}


def toy_sentence(topic, rng):
    """One sentence about topic 0 (counting), 1 (days) or 2 (capitals)."""
    if topic == 0:
        start = int(rng.integers(len(NUMBERS) - 4))
        return " ".join(NUMBERS[start : start + 5]) + "."
    if topic == 1:
        day = int(rng.integers(7))
        return f"after {DAYS[day]} comes {DAYS[(day + 1) % 7]}."
    country = list(CAPITALS)[int(rng.integers(len(CAPITALS)))]
    return f"the capital of {country} is {CAPITALS[country]}."


rng = np.random.default_rng(1)
documents = [[toy_sentence(i % 3, rng) for _ in range(int(rng.integers(4, 8)))] for i in range(48)]
words = sorted({w for d in documents for s in d for w in s.replace(".", " .").split()})
folder = OUTPUT / "tiny-bert-from-scratch"
folder.mkdir(parents=True, exist_ok=True)
(folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]))
tok = minibert.load_tokenizer(folder)  # BERT's WordPiece pipeline over our word list
config = EncoderConfig(
    architecture="BertForPreTraining",
    vocab_size=tok.vocab_size,  # V
    hidden_size=64,  # C
    num_hidden_layers=2,  # L
    num_attention_heads=4,  # H
    intermediate_size=256,  # F
    max_position_embeddings=32,
)
model = from_config(config, seed=0)
batches = pretraining_batches(documents, tok, config, max_length=24, batch_size=32)
train_config = TrainConfig(max_steps=200, lr=5e-3, warmup_steps=20, seed=0, progress=False)
history = Trainer(model, batches, train_config).train()
print(f"{model}: loss {np.mean(history.loss[:10]):.2f} -> {np.mean(history.loss[-10:]):.2f}")
assert np.mean(history.loss[-10:]) < 0.5 * np.mean(history.loss[:10])

# A model folder is config.json + model.safetensors + the tokenizer's files: what
# `minibert.load`, `minibert.pipeline` and transformers all read.
model.save_pretrained(folder)
tok.save(folder)
print(sorted(p.name for p in folder.iterdir()))

# %% [markdown]
# ## Step 2: fill-mask by hand
# The pipeline's recipe for one [MASK]: encode the text, run the masked-LM head, take the V
# logits at the mask's position, softmax them into probabilities over the whole vocabulary,
# keep the top_k, and for each write the text back with that token in place of the mask.
#
# The folder holds a BertForPreTraining: its masked-LM head is all fill-mask needs, so the
# pipeline loads it as a BertForMaskedLM (`load_for_task` in base.py), leaving the NSP head
# out. Its logits are the pretrained model's `prediction_logits`.

# %%
text = "after [MASK] comes friday."
model.eval()  # no dropout
enc = tok([text])
logits = model(enc["input_ids"], attention_mask=enc["attention_mask"]).prediction_logits
print(f"input_ids {enc['input_ids'].shape} -> prediction_logits {logits.shape}")  # (1, T, V)
position = int(np.flatnonzero(enc["input_ids"][0] == tok.mask_token_id)[0])
probs = softmax(logits[0, position])  # (V,): probabilities over the whole vocabulary


def propositions(candidates, k):
    """The k most likely of the candidate ids, each with the text it makes, as the pipeline
    writes them."""
    best = candidates[np.argsort(-probs[candidates], kind="stable")[:k]]  # best first
    found = []
    for token_id in best:
        filled = enc["input_ids"][0].copy()
        filled[position] = token_id
        found.append(
            {
                "score": float(probs[token_id]),
                "token": int(token_id),
                "token_str": tok.decode([int(token_id)]),
                "sequence": tok.decode(filled.tolist()),  # special tokens left out
            }
        )
    return found


by_hand = propositions(np.arange(tok.vocab_size), k=5)
fill_mask = minibert.pipeline("fill-mask", folder)
print(fill_mask)
for row in fill_mask(text):
    print(f"  {row['score']:.3f}  {row['token_str']:10} {row['sequence']}")
check_same("fill-mask by hand vs pipeline", by_hand, fill_mask(text))
assert all(row["token_str"] in DAYS for row in by_hand)  # five guesses, five days

# %% [markdown]
# `targets` scores only the words given, with their probabilities still taken over the whole
# vocabulary: they need not add up to 1, and what they leave out is what the model gives to
# every other word.

# %%
day_ids = np.sort(tok.convert_tokens_to_ids(DAYS))  # the pipeline orders targets by id
days = fill_mask(text, targets=DAYS, top_k=7)
check_same("targets=DAYS by hand vs pipeline", propositions(day_ids, k=7), days)
print(f"the seven days hold {sum(r['score'] for r in days):.0%} of the probability")
assert sum(r["score"] for r in days) > 0.5

# %% [markdown]
# ## Step 3: what a tiny model pretrained for 200 steps knows
# Step 2's guesses were days, and the seven days held most of the probability; but was the
# first guess the right day? Called on a list, the pipeline answers each text. We ask it
# about every day, every counting step and every capital, and count how often its first
# guess is the right word, and how often it is at least a word of the right kind (a day for a
# day).

# %%
probes = [(f"after {DAYS[i]} comes [MASK].", DAYS[(i + 1) % 7], DAYS) for i in range(7)]
probes += [
    (
        " ".join([*NUMBERS[i : i + 2], "[MASK]", *NUMBERS[i + 3 : i + 5]]) + ".",
        NUMBERS[i + 2],
        NUMBERS,
    )
    for i in range(len(NUMBERS) - 4)
]
probes += [
    (f"the capital of {c} is [MASK].", city, list(CAPITALS.values()))
    for c, city in CAPITALS.items()
]
answers = fill_mask([p for p, _, _ in probes], top_k=1)  # one list of top_k per text
exact = right_kind = 0
for (probe, gold, kind), (best,) in zip(probes, answers, strict=True):
    exact += best["token_str"] == gold
    right_kind += best["token_str"] in kind
    print(f"  {probe:38} -> {best['token_str']:9} ({best['score']:.2f}; right: {gold})")
distinct = len({best["token_str"] for (best,) in answers})
print(f"{len(probes)} probes: the right word {exact}, a word of the right kind {right_kind}")
print(f"{distinct} different first guesses over the {len(probes)} probes")
assert right_kind >= 0.8 * len(probes)
assert exact < right_kind
assert distinct <= len(probes) // 3  # the same few words, whatever the frame says

# %% [markdown]
# So the tiny model knows which kind of word each frame takes (after "after ... comes", a
# day; in a row of numbers, a number; after "the capital of ... is", a city), and little
# more: it gives nearly every frame of a kind the same word, right only where that word
# happens to be the answer. It has not yet learned to read the neighbouring word that decides
# which day or which number. Chapter 5 explains why the kind comes first, and its exercise 2
# trains longer, until the exact words come too. A real fill-mask model runs through the same
# code: the pipeline reads any BERT, ALBERT, DistilBERT or RoBERTa folder with a masked-LM head.

# %% [markdown]
# ## Step 4: named entities, token by token
# A token-classification model gives K logits per token, one per label. The test model
# `bert-ner` has K = 5 labels in the IOB scheme: O (outside any entity), B-PER / I-PER (the
# beginning / inside of a person's name), B-LOC / I-LOC (of a place). Its weights are random,
# so its labels are nonsense, but the arithmetic that turns them into entities is what it
# would be for a trained model.
#
# Labels belong to tokens, and tokens are not words: the tokenizer splits "londoner" into
# "london" + "##er". Two things the tokenizer returns tie tokens back to the text:
# `offset_mapping` gives each token's (start, end) characters in the text ((0, 0) for the
# special tokens), and `word_ids(row)` the index of the word it came from (None for special
# tokens). BERT's pre-tokenizer counts punctuation as a word of its own.

# %%
ner_folder = FIXTURES / "bert-ner"
ner_model = minibert.load(ner_folder)
ner_tok = minibert.load_tokenizer(ner_folder)
labels = [ner_model.config.to_hf()["id2label"][str(k)] for k in range(5)]
text = "the londoner plays music by the river in new york."
enc = ner_tok(text, return_offsets_mapping=True, return_special_tokens_mask=True)
logits = ner_model(enc["input_ids"], attention_mask=enc["attention_mask"]).logits
scores = softmax(logits[0])  # (T, K): each token's probabilities over the labels
offsets, word_ids = enc["offset_mapping"][0], enc.word_ids(0)  # (T, 2) and T entries
print(f"input_ids {enc['input_ids'].shape}, logits {logits.shape}, offsets {offsets.shape}")
print(f"{'token':8} {'chars':>8} {'word':>4}  label  score")
for i, token in enumerate(enc.tokens(0)):
    k = int(scores[i].argmax())
    print(
        f"{token:8} {str(tuple(offsets[i].tolist())):>8} {word_ids[i]!s:>4}  "
        f"{labels[k]:6} {scores[i, k]:.3f}"
    )

# aggregation_strategy="none": one entity per ordinary token, "O" left out
tokens = [i for i in range(len(word_ids)) if not enc["special_tokens_mask"][0, i]]
per_token = []
for i in tokens:
    k = int(scores[i].argmax())
    start, end = (int(c) for c in offsets[i])
    per_token.append(
        {
            "entity": labels[k],
            "score": float(scores[i, k]),
            "index": i,
            "word": enc.tokens(0)[i],
            "start": start,
            "end": end,
        }
    )
ner = minibert.pipeline("token-classification", ner_folder)
check_same(
    "one entity per token vs aggregation none",
    [e for e in per_token if e["entity"] != "O"],
    ner(text, aggregation_strategy="none"),
)

# %% [markdown]
# ## Step 5: from tokens to words to entities
# Grouping is two steps.
#
# 1. **Words** (strategies "first", "average", "max"): the tokens of one word agree on one
#    label, so an entity never ends inside a word. Here we take "average": the mean of the
#    pieces' probability vectors, then its best label. The word's characters run from its
#    first token's start to its last token's end.
# 2. **Entities**: neighbouring words whose labels continue one entity are merged. "B-X"
#    begins a new entity of type X; "I-X" (or a bare "X") continues the one before if it is
#    of type X too. The entity's score is the mean of its words' scores, and its text is cut
#    from the sentence by the characters: `text[start:end]`.
#
# "simple" skips step 1 and groups tokens directly, so a word can be cut in two: "london" and
# "##er" of "londoner" land in different entities.

# %%
pieces_of = {}  # word index -> its tokens
for i in tokens:
    pieces_of.setdefault(word_ids[i], []).append(i)
words = []
for pieces in pieces_of.values():
    mean = scores[pieces].mean(0)  # (K,): average strategy
    k = int(mean.argmax())
    start, end = int(offsets[pieces[0], 0]), int(offsets[pieces[-1], 1])
    words.append({"entity": labels[k], "score": float(mean[k]), "start": start, "end": end})
print(f"{len(tokens)} tokens -> {len(words)} words")
# the pipeline finds the same words from the offsets alone (see below): a WordPiece token
# continues a word when its text in the sentence is not as long as the token ("##er", "er")
from_offsets = [len(enc.tokens(0)[i]) != offsets[i, 1] - offsets[i, 0] for i in tokens]
from_word_ids = [j > 0 and word_ids[i] == word_ids[tokens[j - 1]] for j, i in enumerate(tokens)]
assert from_offsets == from_word_ids


def entity_type(label):
    """(whether the label begins an entity, its type): B-LOC -> (True, LOC); I-LOC and LOC ->
    (False, LOC)."""
    return label.startswith("B-"), label.split("-", 1)[-1]


groups = []
for word in words:
    begins, kind = entity_type(word["entity"])
    if groups and not begins and entity_type(groups[-1][-1]["entity"])[1] == kind:
        groups[-1].append(word)  # continues the entity before it
    else:
        groups.append([word])
entities = []
for group in groups:
    kind = entity_type(group[0]["entity"])[1]
    start, end = group[0]["start"], group[-1]["end"]
    mean_score = float(np.mean([word["score"] for word in group]))
    entities.append(
        {
            "entity_group": kind,
            "score": mean_score,
            "word": text[start:end],
            "start": start,
            "end": end,
        }
    )
entities = [e for e in entities if e["entity_group"] != "O"]  # ignore_labels=["O"]
for e in entities:
    print(f"  {e['entity_group']:4} {e['score']:.3f} {e['start']:3}-{e['end']:<3} {e['word']!r}")
check_same(
    "words and entities by hand vs aggregation average",
    entities,
    ner(text, aggregation_strategy="average"),
)
simple = ner(text, aggregation_strategy="simple")
print("simple:", [(e["entity_group"], e["word"]) for e in simple[1:3]])
assert [e["word"] for e in simple[1:3]] == ["london", "##er"]
assert [e["word"] for e in entities[-2:]] == ["new", "york"]  # two entities, see below

# %% [markdown]
# Two details. "new" is I-LOC and "york" B-LOC, so "new york" is two entities: a B- label
# always begins a new one, as in transformers. And `word` is cut from the text here, where
# the pipeline joins the tokens back with the tokenizer's decoder ("london" + "##er" ->
# "londoner"); for a lower-cased text without accents the two agree. The pipeline also finds
# the words from the offsets alone, as transformers does (a WordPiece token whose text in the
# sentence differs in length from the token, "##er" against "er", continues a word); on this
# sentence that gives exactly the `word_ids` grouping used here, as the assert above checks.

# %% [markdown]
# ## Step 6: question answering, one window
# A question-answering head gives two logits per token: how likely the answer starts there,
# and how likely it ends there. The question and the context are encoded as a pair; the
# tokenizer's `sequence_ids(row)` says which text each token came from (0 the question, 1 the
# context, None a special token). An answer may only use context tokens, so the others'
# logits are set to -10000 (transformers' constant) before each softmax; [CLS] stays allowed,
# it stands for "no answer" (`handle_impossible_answer`).
#
# A span (s, e) scores p_start(s) * p_end(e), for s <= e < s + max_answer_len: the (T, T)
# matrix of all products, with everything outside that band set to 0. The `bert-qa` test
# model is random too; its spans are chosen by the same rule a trained model's would be.

# %%
qa_folder = FIXTURES / "bert-qa"
qa_model = minibert.load(qa_folder)
qa_tok = minibert.load_tokenizer(qa_folder)
question = "what city?"
context = (
    "ada lovelace lived in london. wolfgang lives in berlin, a big city on a river. paris is "
    "the capital of france and the city of music. my name is ada and i visited new york, "
    "where the river is big."
)


def span_scores(enc, row, max_answer_len=15):
    """(T, T) scores of the spans (s, e) of one encoded window; 15 is the pipeline's default."""
    rows = {
        key: enc[key][row : row + 1] for key in ("input_ids", "attention_mask", "token_type_ids")
    }
    out = qa_model(**rows)  # start_logits, end_logits (1, T)
    in_context = np.array([s == 1 for s in enc.sequence_ids(row)])  # (T,)
    allowed = in_context | (enc["input_ids"][row] == qa_tok.cls_token_id)
    p_start = softmax(np.where(allowed, out.start_logits[0], -10000.0)).astype(np.float64)
    p_end = softmax(np.where(allowed, out.end_logits[0], -10000.0)).astype(np.float64)
    p_start[0] = p_end[0] = 0.0  # [CLS]: the empty answer is not a span
    T = len(p_start)
    s, e = np.indices((T, T))
    band = (e >= s) & (e < s + max_answer_len) & in_context[:, None] & in_context[None, :]
    return np.where(band, np.outer(p_start, p_end), 0.0)  # (T, T)


one = qa_tok(question, [context], return_offsets_mapping=True)  # the whole pair in one window
scores = span_scores(one, 0)
print(f"input_ids {one['input_ids'].shape}, span scores {scores.shape}")
s, e = divmod(int(scores.argmax()), scores.shape[1])
print(f"best span: tokens {s}..{e} {one.tokens(0)[s : e + 1]}, score {scores[s, e]:.4f}")


def characters(enc, row, s, e):
    """Characters of the context that tokens s..e cover, widened to whole words (as the
    pipeline's align_to_words): from the first character of s's word to the last of e's."""
    words, offsets = enc.word_ids(row), enc["offset_mapping"][row]
    context_tokens = [i for i, seq in enumerate(enc.sequence_ids(row)) if seq == 1]
    start = min(int(offsets[i, 0]) for i in context_tokens if words[i] == words[s])
    end = max(int(offsets[i, 1]) for i in context_tokens if words[i] == words[e])
    return start, end


def best_answer(enc, row, max_answer_len):
    """The best span of one window as the pipeline writes an answer."""
    scores = span_scores(enc, row, max_answer_len)
    s, e = divmod(int(scores.argmax()), scores.shape[1])
    start, end = characters(enc, row, s, e)
    return {"score": float(scores[s, e]), "start": start, "end": end, "answer": context[start:end]}


qa = minibert.pipeline("question-answering", qa_folder)
for max_answer_len in (15, 3):
    answer = best_answer(one, 0, max_answer_len)
    print(f"max_answer_len {max_answer_len:2}: {answer}")
    from_pipeline = qa(question=question, context=context, max_answer_len=max_answer_len)
    check_same(
        f"best span by hand vs pipeline, max_answer_len={max_answer_len}", [answer], [from_pipeline]
    )
    assert len(qa_tok.tokenize(answer["answer"])) <= max_answer_len


def transformers_answer(options):
    """What transformers 4.57's pipeline answered to this question on this model with these
    options, as tests/fixtures/generate_pipelines.py stored it."""
    cases = json.loads((FIXTURES / "question-answering.json").read_text())
    inputs = {"question": question, "context": context}
    for case in cases:
        if case["folder"] == "bert-qa" and case["inputs"] == inputs:
            if case["call_options"] == options:
                return case["output"]
    raise LookupError(f"no stored case with options {options}")


# 1e-4: transformers' torch arithmetic against ours, the project's tolerance for scores
check_same("pipeline vs transformers", [qa(question, context)], [transformers_answer({})], 1e-4)

# %% [markdown]
# The answer is read from the context by its characters, not decoded from tokens: `start` and
# `end` index the original text, so `context[start:end]` keeps its case, spaces and accents.
# A span may also begin or end inside a word (a "##" piece); the pipeline then widens it to
# the whole word (`align_to_words=True`, the default), which `characters` above does with the
# word ids. The answer the pipeline gives here is also the one transformers 4.57's pipeline
# gave on this model, stored in `tests/fixtures/pipelines/question-answering.json` (the
# last check above).
#
# ## Step 7: a context longer than a window
# A model reads at most `max_seq_len` tokens at once (the pipeline's default: the tokenizer's
# limit, at most 384). A longer context is cut into windows with
# `return_overflowing_tokens=True`: each window holds the whole question and a stretch of the
# context that repeats the last `doc_stride` tokens of the stretch before it, so an answer
# cut by one window's edge is whole in the next. The tokenizer's `overflow_to_sample_mapping`
# says which text each window came from; its offsets still index the whole context.
#
# Each window is scored on its own, as in step 6, and keeps its best top_k * 2 + 10 spans
# (transformers' number). Spans from all windows then compete on their scores, and an answer
# found more than once (in two overlapping windows, or as two spans that widen to the same
# words) adds up its scores.

# %%
MAX_SEQ_LEN, DOC_STRIDE, TOP_K = 24, 8, 4
windows = qa_tok(
    question,
    [context],
    truncation="only_second",  # cut the context, never the question
    max_length=MAX_SEQ_LEN,
    stride=DOC_STRIDE,
    return_overflowing_tokens=True,
    return_offsets_mapping=True,
    padding=True,
)
print(f"input_ids {windows['input_ids'].shape}: {len(windows['input_ids'])} windows of one context")
for row in range(3):
    context_tokens = [i for i, seq in enumerate(windows.sequence_ids(row)) if seq == 1]
    first, last = (
        windows["offset_mapping"][row, context_tokens[0], 0],
        windows["offset_mapping"][row, context_tokens[-1], 1],
    )
    print(f"  window {row}: context characters {first}-{last}: {context[first:last]!r}")
found = {}  # answer text, lower-cased -> the answer
for row in range(len(windows["input_ids"])):
    scores = span_scores(windows, row)
    T = scores.shape[1]
    for flat in np.argsort(-scores.ravel(), kind="stable")[: TOP_K * 2 + 10]:
        s, e = divmod(int(flat), T)
        if scores[s, e] == 0:  # fewer possible spans than that in this window
            break
        start, end = characters(windows, row, s, e)
        key = context[start:end].lower()
        if key in found:
            found[key]["score"] += float(scores[s, e])
        else:
            found[key] = {
                "score": float(scores[s, e]),
                "start": start,
                "end": end,
                "answer": context[start:end],
            }
by_hand = sorted(found.values(), key=lambda a: a["score"], reverse=True)[:TOP_K]
for a in by_hand:
    print(f"  {a['score']:.4f} {a['start']:3}-{a['end']:<3} {a['answer']!r}")
options = {"max_seq_len": MAX_SEQ_LEN, "doc_stride": DOC_STRIDE, "top_k": TOP_K}
check_same(
    "windows by hand vs pipeline", by_hand, qa(question=question, context=context, **options)
)
check_same("windows: pipeline vs transformers", by_hand, transformers_answer(options), 1e-4)

# %% [markdown]
# With `handle_impossible_answer=True` the empty answer competes too: its score is [CLS]'s
# p_start * p_end, the lowest over the windows (a window that holds the answer should say
# so). The pipeline documents the rest of its options in `question_answering.py`; the docs'
# task pages show each pipeline's options, outputs and command-line form.

# %% [markdown]
# ## Exercises
# 1. Fill-mask: train the tiny model of step 1 for 1,000 steps instead of 200 and run the
#    probes of step 3 again. Which kind of fact is learned first: the day after a day, the
#    next number, or a country's capital? Then try `top_k=3` on a probe and compare the
#    second and third guesses with the right word.
# 2. NER: write the "first" and "max" strategies of step 5 (the first piece's label; the
#    label of the piece most sure of its own) and check them against
#    `ner(text, aggregation_strategy="first")` and `"max"`. On which word of the sentence do
#    the three strategies disagree, and why?
# 3. Question answering: compute the score of the empty answer by hand (keep p_start[0] and
#    p_end[0] in `span_scores` before they are zeroed, take the lowest over the windows) and
#    check it against `qa(..., handle_impossible_answer=True, top_k=5)`. Then shrink
#    `doc_stride` to 0 and find an answer that the windows now cut in two.
