"""question-answering: the span of a context that answers a question.

    pipe = minibert.pipeline("question-answering", path)
    pipe(question="Where do I live?", context="My name is Wolfgang and I live in Berlin.")
    -> {"score": 0.92, "start": 34, "end": 40, "answer": "Berlin"}

As transformers 4's QuestionAnsweringPipeline (transformers 5 removed it), step by step:

1. The question and the context are encoded as a pair, cut to max_seq_len tokens. A context
   too long for one window is split into several, each overlapping the one before by
   doc_stride tokens (the question is repeated in each).
2. In each window only context tokens (and [CLS], the "no answer" position) may be part of an
   answer. The start and end logits of the others are set to -10000, and each is turned into
   probabilities by a softmax over the window.
3. A span (s, e) scores p_start(s) * p_end(e), for s <= e < s + max_answer_len. The best
   top_k * 2 + 10 spans of each window are kept: some may collapse into one answer in step 4.
4. Each span becomes characters of the context: from the start of the word of its first token
   to the end of the word of its last (align_to_words), so an answer never cuts a word. The
   same answer text found twice (another window, or another span of the same words) adds up
   its scores.
5. With handle_impossible_answer, the empty answer competes with the score of [CLS] as start
   and end (its lowest over the windows).

The top_k best answers are returned: one dict, or a list when there are several.
max_question_len is accepted as transformers does, and, as in its fast-tokenizer path, unused.
"""

import numpy as np

from ..errors import InputError
from .base import Pipeline, check_int, check_text, softmax
from .encoding import encode_windows

MASKED_LOGIT = -10000.0  # transformers' value for positions that cannot be in an answer
CONTEXT = 1  # the sequence id of the context: the question comes first


class QuestionAnsweringPipeline(Pipeline):
    task = "question-answering"
    head = "ForQuestionAnswering"
    defaults = {
        "top_k": 1,
        "doc_stride": None,  # None: min(max_seq_len // 2, 128)
        "max_answer_len": 15,
        "max_seq_len": None,  # None: min(the tokenizer's limit, 384)
        "max_question_len": 64,
        "handle_impossible_answer": False,
        "align_to_words": True,
    }

    def __call__(self, inputs=None, context=None, *, question=None, **options):
        """Answers to one question (a dict, or question= and context=) or to a list of them."""
        options = self.check_options(options)
        examples, single = _examples(inputs, context, question)
        results = [self.answer(q, c, options) for q, c in examples]
        return results[0] if single else results

    def answer(self, question: str, context: str, options: dict):
        top_k = check_int("top_k", options["top_k"])
        max_answer_len = check_int("max_answer_len", options["max_answer_len"])
        max_seq_len = options["max_seq_len"]
        if max_seq_len is None:
            max_seq_len = min(self.tokenizer.model_max_length, 384)
        max_seq_len = check_int("max_seq_len", max_seq_len)
        stride = options["doc_stride"]
        if stride is None:
            stride = min(max_seq_len // 2, 128)
        stride = check_int("doc_stride", stride, minimum=0)
        if stride > max_seq_len:
            raise InputError(f"doc_stride ({stride}) is larger than max_seq_len ({max_seq_len})")
        check_int("max_question_len", options["max_question_len"])  # checked, then unused
        for name in ("handle_impossible_answer", "align_to_words"):
            if not isinstance(options[name], (bool, np.bool_)):
                raise InputError(f"{name} must be True or False, got {options[name]!r}")
        windows = encode_windows(
            self.tokenizer, question, context, max_seq_len, stride, "only_second", overflow=True
        )
        answers = {}  # answer text, lower-cased -> the answer's dict
        null_score = 1_000_000.0  # large and positive: lowered by each window's [CLS] score
        outputs = self.forward(windows, options["batch_size"])
        for window, out in zip(windows, outputs, strict=True):
            p_start, p_end, allowed = self.probabilities(window, out)
            null_score = min(null_score, float(p_start[0] * p_end[0]))
            p_start[0] = p_end[0] = 0.0  # the empty answer is not a span
            for s, e, score in _best_spans(p_start, p_end, allowed, top_k * 2 + 10, max_answer_len):
                start, end = _characters(window, s, e, options["align_to_words"])
                text = context[start:end]
                if text.lower() in answers:
                    answers[text.lower()]["score"] += score
                else:
                    found = {"score": score, "start": start, "end": end, "answer": text}
                    answers[text.lower()] = found
        ranked = list(answers.values())
        if options["handle_impossible_answer"]:
            ranked.append({"score": null_score, "start": 0, "end": 0, "answer": ""})
        ranked = sorted(ranked, key=lambda answer: answer["score"], reverse=True)[:top_k]
        return ranked[0] if len(ranked) == 1 else ranked

    def probabilities(self, window: dict, out: dict):
        """p_start, p_end (T,) of one window from its logits, and which positions an answer may
        use (T,)."""
        allowed = np.array([sequence == CONTEXT for sequence in window["sequence_ids"]]) & (
            np.asarray(window["attention_mask"]) == 1
        )  # (T,)
        cls = self.tokenizer.cls_token_id
        allowed |= np.asarray(window["input_ids"]) == cls  # [CLS] stands for "no answer"
        start = np.where(allowed, out["start_logits"], MASKED_LOGIT)  # (T,)
        end = np.where(allowed, out["end_logits"], MASKED_LOGIT)  # (T,)
        return softmax(start).astype(np.float64), softmax(end).astype(np.float64), allowed


def _best_spans(p_start, p_end, allowed, k: int, max_answer_len: int):
    """The k best spans (s, e, score), best first, with s <= e < s + max_answer_len, each end
    among the allowed positions."""
    T = len(p_start)
    scores = np.outer(p_start, p_end)  # (T, T): score of the span from s to e
    s_index, e_index = np.indices((T, T))
    in_band = (e_index >= s_index) & (e_index < s_index + max_answer_len)
    scores = np.where(in_band, scores, 0.0)
    flat = scores.ravel()
    order = np.argsort(-flat, kind="stable")[:k]
    spans = []
    for position in order:
        s, e = divmod(int(position), T)
        if allowed[s] and allowed[e]:
            spans.append((s, e, float(flat[position])))
    return spans


def _characters(window: dict, s: int, e: int, align_to_words: bool) -> tuple[int, int]:
    """Characters of the context that tokens s..e cover, widened to whole words when asked."""
    offsets, words = window["offsets"], window["word_ids"]
    if align_to_words and words[s] is not None and words[e] is not None:
        # a word's characters: from its first token in the window to its last
        in_context = [
            (offset, word)
            for offset, word, sequence in zip(offsets, words, window["sequence_ids"], strict=True)
            if sequence == CONTEXT
        ]
        start = min(offset[0] for offset, word in in_context if word == words[s])
        end = max(offset[1] for offset, word in in_context if word == words[e])
        return start, end
    return offsets[s][0], offsets[e][1]


def _examples(inputs, context, question) -> tuple[list, bool]:
    """[(question, context)] from the forms transformers takes, and whether one came."""
    if question is not None or (isinstance(inputs, str) and context is not None):
        question = inputs if question is None else question
        if isinstance(question, str) and isinstance(context, str):
            pairs, single = [(question, context)], True
        elif isinstance(question, list) and isinstance(context, str):
            pairs, single = [(q, context) for q in question], False
        elif isinstance(question, list) and isinstance(context, list):
            if len(question) != len(context):
                raise InputError(
                    f"{len(question)} questions but {len(context)} contexts: give one each"
                )
            pairs, single = list(zip(question, context, strict=True)), False
        else:
            raise InputError("question and context must be str, or lists of str")
    elif isinstance(inputs, dict):
        pairs, single = [_pair(inputs)], True
    elif isinstance(inputs, (list, tuple)) and inputs:
        pairs, single = [_pair(item) for item in inputs], len(inputs) == 1
    else:
        raise InputError(
            "question-answering takes question= and context=, a {'question', 'context'} dict, "
            f"or a list of such dicts; got {inputs!r:.80}"
        )
    for q, c in pairs:
        for name, text in (("question", q), ("context", c)):
            check_text(text, name)
            if not text.strip():
                raise InputError(f"the {name} is empty")
    return pairs, single


def _pair(item) -> tuple:
    if not isinstance(item, dict) or "question" not in item or "context" not in item:
        raise InputError(
            f"each example must be a dict with 'question' and 'context', got {item!r:.80}"
        )
    return item["question"], item["context"]
