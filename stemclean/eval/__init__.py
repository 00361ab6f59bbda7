"""Evaluation: quality metrics against exact ground truth, and the classical baselines the model is compared with."""
