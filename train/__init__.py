"""Reasoning-aware fine-tuning: action loss + lambda x rationale loss (ReFineVLA step two).

Installed with the `train` extra (transformers, accelerate, peft, tensorboard). The trainer
arrives with its own issue; this package reserves the import name `refinevla_bench.train`.
"""
