"""The KServe predictor for MLflow models: ``python -m inference <model URIs>``.

A thin adapter: a small :class:`kserve.Model` subclass (:mod:`inference.model`) over
:class:`mlcycle.serving.endpoint.ModelEndpoint`, the routes (:mod:`inference.routes`), and KServe's
servers adjusted in the one module that touches KServe's private API (:mod:`inference.kserve_private`).
"""
