"""Compression beyond int8: pruning attention heads and layers, eliminating word vectors as they
go up the layers (PoWER-BERT), trimming the vocabulary, built on the models, training and
quantisation code below it."""
