"""Compression beyond int8: pruning attention heads and layers, trimming the vocabulary, built on
the models, training and quantisation code below it."""
