"""The KServe predictor for MLflow scikit-learn models: ``python -m inference <model URIs>``.

A small :class:`kserve.Model` subclass (:mod:`inference.model`) over :mod:`mlcycle.serving`, and KServe's
model server adjusted to bind where it is told (:mod:`inference.server`). No logic lives here that batch
inference would need: loading, decoding, validation and prediction are in ``mlcycle.serving``.
"""
