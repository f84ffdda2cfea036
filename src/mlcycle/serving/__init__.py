"""Serving MLflow scikit-learn models: plain functions the predictor and batch inference share.

- :mod:`~mlcycle.serving.loading`: ``load_model(ref, settings) -> LoadedModel`` (aliases resolved to
  registry versions; the raw estimator, its classes and input schema).
- :mod:`~mlcycle.serving.schema`: signature -> v2 metadata; v2/v1 request decoding and DataFrame row
  checks with errors that name the problem.
- :mod:`~mlcycle.serving.predict`: ``predict(loaded, X) -> Prediction``.
- :mod:`~mlcycle.serving.batching`: the adaptive micro-batcher.
- :mod:`~mlcycle.serving.routing`: canary traffic split, sticky per request id.
- :mod:`~mlcycle.serving.servability`: ``check_servability(model_uri, settings)`` for the gate.
- :mod:`~mlcycle.serving.promotion`: ``promote`` / ``rollback`` by moving the ``champion`` alias.
- :mod:`~mlcycle.serving.payload_log`, :mod:`~mlcycle.serving.metrics`, :mod:`~mlcycle.serving.auth`:
  payload logging, Prometheus metrics and API keys for the predictor.

Nothing here imports MLflow at import time; the functions that need it import it when called.
"""

from mlcycle.serving.loading import LoadedModel, load_model
from mlcycle.serving.predict import Prediction, predict
from mlcycle.serving.schema import InputSchema, V2Input, check_rows, decode_v1, decode_v2, frame_to_array

__all__ = [
    "InputSchema",
    "LoadedModel",
    "Prediction",
    "V2Input",
    "check_rows",
    "decode_v1",
    "decode_v2",
    "frame_to_array",
    "load_model",
    "predict",
]
