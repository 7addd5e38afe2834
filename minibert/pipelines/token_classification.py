"""token-classification (NER): a label per token, or entities grouped from them.

    pipe = minibert.pipeline("token-classification", path, aggregation_strategy="simple")
    pipe("Ada Lovelace lived in London.")
    -> [{"entity_group": "PER", "score": 0.98, "word": "ada lovelace", "start": 0, "end": 12},
        {"entity_group": "LOC", "score": 0.99, "word": "london", "start": 22, "end": 28}]

As transformers' TokenClassificationPipeline. Each token's scores are a softmax over the
labels; special tokens are skipped. Then, by aggregation_strategy:

- "none": one dict per token: entity (its best label), score, index, word, start, end;
- "simple": adjacent tokens whose labels continue one entity (B-X then I-X, or X then X)
  are grouped: entity_group X, the mean of their scores, the joined word;
- "first" / "average" / "max": first the sub-word tokens of each word agree on one label
  (the first token's, the mean scores' best, or the most confident token's), so an entity
  never ends inside a word; then words are grouped as with "simple".

Words are found from the offsets: with a WordPiece vocabulary a token whose text in the
sentence is not the token itself ("##ing" against "ing") continues a word; otherwise a token
that follows a character other than a space does. Entities labelled with ignore_labels
(default ["O"]) are left out. start and end index the characters of the text.

A text longer than the model takes is cut to its length, unless stride is given: then it is
read in overlapping windows (each repeating `stride` tokens of the one before), the entities
of every window are gathered, and where two overlap the longer one is kept (of two of one
length, the higher score), as transformers does. stride needs a grouping strategy.
"""

import numpy as np

from ..errors import InputError
from .base import Pipeline, as_text_list, check_int, label_names, softmax
from .encoding import encode_windows, tokens_to_string

STRATEGIES = ("none", "simple", "first", "average", "max")


class TokenClassificationPipeline(Pipeline):
    task = "token-classification"
    head = "ForTokenClassification"
    defaults = {"aggregation_strategy": "none", "ignore_labels": None, "stride": None}

    def __init__(self, model_path, **options):
        super().__init__(model_path, **options)
        self.labels = label_names(self.model)
        # WordPiece marks word pieces ("##"): a token's length then tells a piece from a word
        model = self.tokenizer.backend.model
        self.marks_pieces = bool(getattr(model, "continuing_subword_prefix", None))

    def __call__(self, inputs, **options):
        """Entities of one text, or a list of them for a list of texts."""
        options = self.check_options(options)
        strategy = options["aggregation_strategy"]
        if not isinstance(strategy, str) or strategy.lower() not in STRATEGIES:
            raise InputError(f"aggregation_strategy must be one of {STRATEGIES}, got {strategy!r}")
        ignore = options["ignore_labels"]
        ignore = ["O"] if ignore is None else ignore
        if isinstance(ignore, str) or not isinstance(ignore, (list, tuple, set)):
            raise InputError(f"ignore_labels must be a list of labels, got {ignore!r}")
        stride = check_int("stride", options["stride"], minimum=0, allow_none=True)
        if stride is not None and strategy.lower() == "none":
            raise InputError(
                "stride reads a long text in windows whose entities are merged, which needs "
                "aggregation_strategy simple, first, average or max, not 'none'"
            )
        texts, single = as_text_list(inputs)
        results = [
            self.text_entities(text, strategy.lower(), set(ignore), stride, options)
            for text in texts
        ]
        return results[0] if single else results

    def text_entities(self, text: str, strategy: str, ignore: set, stride, options) -> list:
        """The entities of one text, over its windows when a stride is given."""
        windows = encode_windows(
            self.tokenizer, text, stride=stride or 0, overflow=stride is not None
        )
        outputs = self.forward(windows, options["batch_size"])
        found = []
        for window, out in zip(windows, outputs, strict=True):
            found += self.entities(text, window, softmax(out["logits"]), strategy, ignore)
        return _without_overlaps(found) if len(windows) > 1 else found

    def entities(self, text: str, window: dict, scores, strategy: str, ignore: set) -> list:
        """The entities of one text from its tokens' scores (T, K)."""
        tokens = self.tokens(text, window, scores)
        if strategy in ("none", "simple"):
            found = [self.token_entity(token) for token in tokens]
        else:
            found = [self.word_entity(word, strategy) for word in _words(tokens)]
        if strategy != "none":
            found = self.group(found)
        key = "entity" if strategy == "none" else "entity_group"
        return [entity for entity in found if entity[key] not in ignore]

    def tokens(self, text: str, window: dict, scores) -> list[dict]:
        """The ordinary tokens with their scores, characters, and whether each continues a word."""
        unk = self.tokenizer.unk_token_id
        tokens = []
        for index, token_id in enumerate(window["input_ids"]):
            if window["special_tokens_mask"][index]:
                continue
            start, end = window["offsets"][index]
            word = self.tokenizer.convert_ids_to_tokens(token_id)
            in_text = text[start:end]
            if self.marks_pieces:
                continues = len(word) != len(in_text)
            else:  # no marks: a token glued to the character before it continues a word
                continues = start > 0 and " " not in text[start - 1 : start + 1]
            if token_id == unk:  # [UNK] stands for the characters it covers, a word of its own
                word, continues = in_text, False
            tokens.append(
                {
                    "word": word,
                    "scores": scores[index],
                    "start": start,
                    "end": end,
                    "index": index,
                    "continues": continues,
                }
            )
        return tokens

    def token_entity(self, token: dict) -> dict:
        best = int(np.argmax(token["scores"]))
        return {
            "entity": self.labels[best],
            "score": float(token["scores"][best]),
            "index": token["index"],
            "word": token["word"],
            "start": token["start"],
            "end": token["end"],
        }

    def word_entity(self, pieces: list[dict], strategy: str) -> dict:
        """One label for all the pieces of a word (strategy first, average or max)."""
        if strategy == "first":
            scores = pieces[0]["scores"]
        elif strategy == "max":  # the piece most sure of its label decides
            scores = max(pieces, key=lambda piece: piece["scores"].max())["scores"]
        else:  # average: the mean of the pieces' score vectors
            scores = np.mean([piece["scores"] for piece in pieces], axis=0)
        best = int(np.argmax(scores))
        return {
            "entity": self.labels[best],
            "score": float(scores[best]),
            "word": tokens_to_string(self.tokenizer, [piece["word"] for piece in pieces]),
            "start": pieces[0]["start"],
            "end": pieces[-1]["end"],
        }

    def group(self, entities: list[dict]) -> list[dict]:
        """Adjacent entities of one type (B-X then I-X, or X then X) become one entity_group."""
        groups, current = [], []
        for entity in entities:
            if current:
                begins, kind = _tag(entity["entity"])
                _, last_kind = _tag(current[-1]["entity"])
                if kind != last_kind or begins:
                    groups.append(self.entity_group(current))
                    current = []
            current.append(entity)
        if current:
            groups.append(self.entity_group(current))
        return groups

    def entity_group(self, entities: list[dict]) -> dict:
        return {
            "entity_group": entities[0]["entity"].split("-", 1)[-1],
            "score": float(np.mean([entity["score"] for entity in entities])),
            "word": tokens_to_string(self.tokenizer, [entity["word"] for entity in entities]),
            "start": entities[0]["start"],
            "end": entities[-1]["end"],
        }


def _words(tokens: list[dict]) -> list[list[dict]]:
    """Tokens gathered into words: a token that continues a word joins the one before."""
    words = []
    for token in tokens:
        if token["continues"] and words:
            words[-1].append(token)
        else:
            words.append([token])
    return words


def _tag(label: str) -> tuple[bool, str]:
    """(whether the label begins an entity, its type): "B-PER" -> (True, "PER"); "I-PER" and
    "PER" -> (False, "PER"), as transformers reads IOB tags."""
    if label.startswith("B-"):
        return True, label[2:]
    if label.startswith("I-"):
        return False, label[2:]
    return False, label


def _without_overlaps(entities: list[dict]) -> list[dict]:
    """Entities of overlapping windows, by start; of two that overlap, the longer is kept (of
    two of one length, the higher score)."""
    kept = []
    for entity in sorted(entities, key=lambda e: e["start"]):
        if kept and kept[-1]["start"] <= entity["start"] < kept[-1]["end"]:
            last = kept[-1]
            length, last_length = entity["end"] - entity["start"], last["end"] - last["start"]
            if length > last_length or (length == last_length and entity["score"] > last["score"]):
                kept[-1] = entity
        else:
            kept.append(entity)
    return kept
