"""Sentence embeddings: run the encoder, pool its token vectors into one vector per text.

A sentence-transformers folder says how in modules.json, and SentenceEncoder follows it:

- folder.py: what the folder says, in the classic or the modern layout (modules, pooling modes,
  token limit, prompts);
- dense.py: the Dense module (a linear layer and an activation after pooling);
- encoder.py: SentenceEncoder, which runs them in order, and sentence_length.

The pooling modes themselves are pure functions in functional/pooling.py.
"""

from .encoder import FolderOverrideWarning, SentenceEncoder, sentence_length
from .folder import SentenceFolder, read_sentence_folder

__all__ = [
    "FolderOverrideWarning",
    "SentenceEncoder",
    "SentenceFolder",
    "read_sentence_folder",
    "sentence_length",
]
