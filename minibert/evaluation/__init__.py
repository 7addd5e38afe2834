"""Measuring models: how good, how close to another, how fast.

metrics.py     classification accuracy and macro-F1; Spearman and Pearson correlations
agreement.py   how closely two sets of sentence vectors agree (mean cosine, top-1 retrieval)
lee.py         the Lee document-similarity benchmark for sentence embeddings
timing.py      latency and peak memory of a model in a fresh child process, timed in turns
"""
