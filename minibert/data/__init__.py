"""Data for training and evaluation, before the model sees it.

text.py      sentences and documents from running text, the offline corpus cache,
             labelled files (one label or several per text), group splits
conll.py     CoNLL-style tagged sentences, and their tags moved onto sub-tokens
batches.py   tokenized examples, padded batches of similar length
masking.py   masked-LM inputs and the NSP / SOP sentence pairs of pretraining
"""
