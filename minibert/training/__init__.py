"""Training: the optimizer, the loop, and the end-to-end recipes built on them.

optim.py     AdamW (decay only for weight matrices), learning-rate schedules, clipping
trainer.py   a model-agnostic loop with checkpoints and exact resume (Trainer, TrainConfig)
recipes.py   pretraining from scratch and fine-tuning a text classifier, end to end
tagging.py   fine-tuning a token classifier on tagged sentences
"""
