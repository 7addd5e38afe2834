"""The Lee document-similarity benchmark (Lee, Pincombe & Welsh 2005) for sentence embeddings.

50 short news documents (lee.cor) and the mean human similarity rating of each of their 1,225
pairs (similarities.txt, the upper triangle of a 50 x 50 matrix in [0, 1]), as gensim ships
them and scripts/fetch_data.py caches them under lee/. A model's score is the Spearman
correlation between the ratings and the cosine similarity of the documents' mean-pooled
embeddings; we report Pearson's beside it, the figure older papers on this data give.

Documents longer than the model's window are chunked, not truncated: each window of
max_length - 2 tokens is run on its own and the document's vector is the mean over the tokens
of all its windows (document_embeddings). With all-MiniLM-L6-v2's 256 tokens no document needs
a second window; at 128, 5 of the 50 do.
"""

from pathlib import Path

import numpy as np

from ..data.batches import collate
from ..data.text import data_dir
from ..errors import InputError
from ..functional.pooling import l2_normalize
from ..sentence import SentenceEncoder
from .metrics import pearson, spearman


def default_folder() -> Path:
    """The cache's lee/ folder ($MINIBERT_DATA, else ~/.cache/minibert/data)."""
    return data_dir() / "lee"


def read_lee(folder=None) -> dict:
    """{"documents": 50 texts, "pairs": (1225, 2) indices i < j, "scores": (1225,) ratings}.

    lee.cor is latin-1, one document per line; similarities.txt holds the 50 x 50 upper
    triangle of mean human ratings in [0, 1] (row i, column j: documents i and j).
    """
    folder = Path(folder) if folder is not None else default_folder()
    corpus, ratings = folder / "lee.cor", folder / "similarities.txt"
    for file in (corpus, ratings):
        if not file.is_file():
            raise FileNotFoundError(
                f"{file} is missing: run `python scripts/fetch_data.py --only lee`"
            )
    documents = [line.strip() for line in corpus.read_text(encoding="latin-1").splitlines()]
    documents = [d for d in documents if d]
    matrix = np.loadtxt(ratings, ndmin=2)  # (N, N)
    if matrix.shape != (len(documents), len(documents)):
        raise InputError(
            f"{ratings} is {matrix.shape[0]} x {matrix.shape[1]} but {corpus} has "
            f"{len(documents)} documents"
        )
    i, j = np.triu_indices(len(documents), 1)
    return {"documents": documents, "pairs": np.stack([i, j], 1), "scores": matrix[i, j]}


def document_embeddings(model, tokenizer, texts, max_length: int, batch_size: int = 16):
    """Mean-pooled, unit-length embeddings of texts of any length; returns (vectors, chunked).

    A text longer than max_length tokens is cut into windows of max_length - 2 tokens, each
    wrapped in [CLS] ... [SEP] and run on its own; the document's vector is the mean over the
    tokens of all its windows (windows weighted by their tokens), so a text that fits in one
    window gets exactly the mean pooling of SentenceEncoder. chunked counts the texts that
    needed more than one window.
    Shapes: N texts -> vectors (N, C) float32
    """
    if max_length < 3:
        raise ValueError(
            f"max_length must leave room for a token between [CLS] and [SEP]: {max_length}"
        )
    cls, sep, width = tokenizer.cls_token_id, tokenizer.sep_token_id, max_length - 2
    windows, owner = [], []  # windows of token ids, and the text each belongs to
    for index, text in enumerate(texts):
        body = tokenizer(text, truncation=False, padding=False)["input_ids"][0][1:-1]
        for start in range(0, max(len(body), 1), width):
            windows.append(np.array([cls, *body[start : start + width], sep], np.int64))
            owner.append(index)
    owner = np.array(owner)
    C = model.config.hidden_size
    sums = np.zeros((len(texts), C), np.float64)  # (N, C) sum of token vectors
    counts = np.zeros(len(texts), np.float64)  # (N,) tokens
    for start in range(0, len(windows), batch_size):
        rows = [{"input_ids": w} for w in windows[start : start + batch_size]]
        batch = collate(rows, tokenizer.pad_token_id)
        hidden = model(batch["input_ids"], attention_mask=batch["attention_mask"])
        mask = batch["attention_mask"][..., None]  # (b, T, 1)
        token_sums = (hidden.last_hidden_state * mask).sum(1)  # (b, C)
        np.add.at(sums, owner[start : start + batch_size], token_sums)
        np.add.at(counts, owner[start : start + batch_size], mask.sum((1, 2)))
    vectors = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
    chunked = int((np.bincount(owner, minlength=len(texts)) > 1).sum())
    return l2_normalize(vectors), chunked


def lee_scores(model, tokenizer, lee: dict, max_length: int) -> dict:
    """The Lee correlations of a model (eval mode) and its tokenizer on read_lee's data."""
    vectors, chunked = document_embeddings(model, tokenizer, lee["documents"], max_length)
    i, j = lee["pairs"].T
    cosines = (vectors[i] * vectors[j]).sum(1)  # (P,)
    return {
        "spearman": spearman(cosines, lee["scores"]),
        "pearson": pearson(cosines, lee["scores"]),
        "documents": len(lee["documents"]),
        "pairs": len(cosines),
        "max_length": max_length,
        "chunked_documents": chunked,
    }


def lee_correlation(encoder_or_model_path=None, data_dir=None, max_length: int | None = None):
    """Spearman (and Pearson) correlation between the Lee human ratings and the cosine
    similarity of mean-pooled document embeddings (long documents chunked, see
    document_embeddings); returns a dict with both, the counts and the max_length used.

    Args:
        encoder_or_model_path: a SentenceEncoder (its model, tokenizer and max_length), a
            model folder with a tokenizer, or None for the installed all-MiniLM-L6-v2.
        data_dir: the folder holding lee.cor and similarities.txt (default: the cache's lee/).
        max_length: tokens per window (default: the encoder's, else sentence_bert_config.json,
            else the model's position table).
    """
    encoder = encoder_or_model_path
    if not isinstance(encoder, SentenceEncoder):
        encoder = SentenceEncoder(encoder)
    length = max_length or encoder.max_length
    return lee_scores(encoder.model, encoder.tokenizer, read_lee(data_dir), length)
