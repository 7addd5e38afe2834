"""Task pipelines: fill-mask, classification, NER, question answering and sentence vectors from a
model folder, called as transformers' pipelines are."""
