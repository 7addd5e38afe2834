"""Data for training and evaluation, before the model sees it.

text.py      sentences and documents from running text, the offline corpus cache,
             labelled files, group splits
batches.py   tokenized examples, padded batches of similar length
masking.py   masked-LM inputs and the NSP / SOP sentence pairs of pretraining
"""
