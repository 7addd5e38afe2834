"""The files beside a model's weights, and new BERT vocabularies trained from text.

copy_tokenizer_files copies what a folder's tokenizer (and sentence-transformers pooling) needs;
train_wordpiece trains a WordPiece vocabulary with the `tokenizers` library and writes vocab.txt.
"""

import json
import shutil
from pathlib import Path

import tokenizers
from tokenizers import models, normalizers, pre_tokenizers, trainers

from .core import Tokenizer
from .load import load_tokenizer

BERT_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # train_wordpiece's, in order
# What a tokenizer (or a sentence-transformers pooling setup) needs beside the weights
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
)


def copy_tokenizer_files(source, target, hidden_size: int | None = None) -> list[str]:
    """Copy the tokenizer and sentence-transformers files of folder source into target; returns
    their names. The module folders modules.json names (1_Pooling/, 2_Dense/, ...) are copied
    too, and not listed.

    A sentence-transformers pooling config names the width it pools: a narrower student's
    copy says hidden_size instead of the teacher's.
    """
    source, target = Path(source), Path(target)
    copied = [name for name in TOKENIZER_FILES if (source / name).is_file()]
    for name in copied:
        shutil.copyfile(source / name, target / name)
    for folder in module_folders(source):
        shutil.copytree(source / folder, target / folder, dirs_exist_ok=True)
    pooling = target / "1_Pooling" / "config.json"
    if hidden_size is not None and pooling.is_file():
        config = json.loads(pooling.read_text())
        if "word_embedding_dimension" in config:
            config["word_embedding_dimension"] = hidden_size
            pooling.write_text(json.dumps(config, indent=2) + "\n")
    return copied


def module_folders(source) -> list[str]:
    """The sub-folders of a sentence-transformers folder's modules (1_Pooling, 2_Dense, ...):
    the paths modules.json names, or 1_Pooling alone without a readable modules.json."""
    source = Path(source)
    try:
        modules = json.loads((source / "modules.json").read_text(encoding="utf-8"))
        paths = [m.get("path", "") for m in modules if isinstance(m, dict)]
    except (OSError, ValueError, TypeError):
        paths = ["1_Pooling"]
    return [p for p in paths if isinstance(p, str) and p and (source / p).is_dir()]


def train_wordpiece(texts, vocab_size: int, folder, lowercase: bool = True) -> Tokenizer:
    """Train a BERT WordPiece vocabulary on texts with the tokenizers library, write vocab.txt
    (and tokenizer.json) into folder, and return the loaded Tokenizer.

    The library's trainer breaks ties between equally frequent merges in no fixed order, so two
    trainings on the same text can give slightly different vocabularies: a run keeps its
    vocabulary in its folder, and resuming reuses it (see reuse_or_train_wordpiece).
    """
    tok = tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=BERT_SPECIAL_TOKENS,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = sorted(tok.get_vocab().items(), key=lambda item: item[1])
    (folder / "vocab.txt").write_text("".join(token + "\n" for token, _ in vocab))
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": lowercase}))
    tokenizer = load_tokenizer(folder)  # BERT's full pipeline, built from vocab.txt
    tokenizer.save(folder)
    return tokenizer


def reuse_or_train_wordpiece(texts, vocab_size: int, folder, lowercase: bool = True):
    """The tokenizer already trained in folder (a resumed run), or a newly trained one."""
    if (Path(folder) / "vocab.txt").is_file():
        return load_tokenizer(folder)
    return train_wordpiece(texts, vocab_size, folder, lowercase)
