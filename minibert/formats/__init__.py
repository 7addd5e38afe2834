"""Readers for checkpoint formats other than Hugging Face folders: Google's TF1 tensor bundles,
fairseq RoBERTa and sharded PyTorch files, each giving tensors under Hugging Face names."""
