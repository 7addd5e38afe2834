"""Tokenizers: text in, integer ids out, as numpy arrays.

`load_tokenizer(path)` returns a `Tokenizer`, a thin wrapper of the Hugging Face `tokenizers`
library (Rust). It gives the same ids, offsets, masks and overflowing windows as Hugging Face's
fast tokenizer for that folder. The modules, by concern:

- core.py: the Tokenizer (batching into arrays, options, decoding, saving);
- encoding.py: the Encoding it returns (arrays, and word_ids / sequence_ids per row);
- load.py: load_tokenizer, which picks the builder for the files a folder has:
  tokenizer.json as saved, bert_vocab.py (vocab.txt), byte_bpe.py (vocab.json + merges.txt),
  spiece.py (spiece.model, with the optional sentencepiece package);
- special_tokens.py: which token plays unk, cls, sep, pad and mask;
- files.py: copy_tokenizer_files (with module_folders, a sentence-transformers folder's
  module folders) and train_wordpiece (a new BERT vocabulary from text).

wordpiece.py (beside this package) writes BERT's WordPiece from scratch, to be read.
"""

from .core import DEFAULT_MAX_LENGTH, Tokenizer
from .encoding import Encoding
from .files import (
    TOKENIZER_FILES,
    copy_tokenizer_files,
    module_folders,
    reuse_or_train_wordpiece,
    train_wordpiece,
)
from .load import load_tokenizer

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "TOKENIZER_FILES",
    "Encoding",
    "Tokenizer",
    "copy_tokenizer_files",
    "load_tokenizer",
    "module_folders",
    "reuse_or_train_wordpiece",
    "train_wordpiece",
]
