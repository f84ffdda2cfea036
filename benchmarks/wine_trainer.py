"""A user's own trainer for bench_pipeline.py: the same random forest the built-in ``random_forest`` fits.

The benchmark runs the training pipeline with ``trainer="wine_trainer:fit"`` (this directory on PYTHONPATH)
and with the built-in estimator, so the difference is the trainer path itself, not the model.
"""

from __future__ import annotations

from mlcycle.training.estimators import ESTIMATORS

skops_trusted_types = list(ESTIMATORS["random_forest"].skops_trusted_types)
defaults = dict(ESTIMATORS["random_forest"].defaults)


def fit(train, target, params):
    """Fit a RandomForestClassifier with the built-in's defaults (overridden by ``params``)."""
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(**{**defaults, **params}).fit(train.drop(columns=[target]), train[target])
