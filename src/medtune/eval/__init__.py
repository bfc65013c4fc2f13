"""Evaluation: corpus metrics (sacreBLEU), terminology accuracy and the translation evaluator."""
