"""Task pipelines: fill-mask, classification, NER, question answering and sentence vectors from a
model folder, called as transformers' pipelines are.

    pipe = minibert.pipeline("fill-mask", path)
    pipe("Paris is the [MASK] of France.", top_k=3)

Each task is one module: fill_mask.py, text_classification.py, token_classification.py,
question_answering.py, features.py (feature-extraction and sentence-similarity). base.py holds
what they share (loading the model with the task's head, options, scores); encoding.py the
tokenizer's offsets, word ids and overlapping windows that token classification and question
answering read.
"""

from ..errors import MinibertError
from .features import FeatureExtractionPipeline, SentenceSimilarityPipeline
from .fill_mask import FillMaskPipeline
from .question_answering import QuestionAnsweringPipeline
from .text_classification import TextClassificationPipeline
from .token_classification import TokenClassificationPipeline

TASKS = {
    "fill-mask": FillMaskPipeline,
    "text-classification": TextClassificationPipeline,
    "token-classification": TokenClassificationPipeline,
    "question-answering": QuestionAnsweringPipeline,
    "feature-extraction": FeatureExtractionPipeline,
    "sentence-similarity": SentenceSimilarityPipeline,
}
# the other names transformers accepts for the same tasks
ALIASES = {"sentiment-analysis": "text-classification", "ner": "token-classification"}


def pipeline(task: str, model_path=None, **options):
    """The pipeline of `task` on the model folder `model_path` (config, weights, tokenizer).

    options are the defaults of every call (e.g. top_k=3, aggregation_strategy="simple");
    a call's own keyword arguments win. Tasks: see TASKS (and ALIASES). As in transformers,
    the folder may also be given as model=path.
    """
    name = ALIASES.get(task, task)
    if name not in TASKS:
        raise MinibertError(f"unknown task {task!r}; minibert's pipelines are {sorted(TASKS)}")
    if "model" in options:
        if model_path is not None:
            raise MinibertError("give the model folder once: as model_path or as model=")
        model_path = options.pop("model")
    if model_path is None:
        raise MinibertError(f"pipeline({task!r}) needs a model folder: pipeline(task, path)")
    return TASKS[name](model_path, **options)


__all__ = ["ALIASES", "TASKS", "pipeline", *(cls.__name__ for cls in TASKS.values())]
