"""Predict with a loaded model: one call on a float ``[N, F]`` array, predictions and probabilities back.

Calls the scikit-learn estimator directly (no pyfunc, no pandas). For a classifier whose
``predict`` is ``classes[argmax(predict_proba)]`` (checked when the model was loaded), the model runs
once per call instead of twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlcycle.serving.loading import LoadedModel


@dataclass(frozen=True)
class Prediction:
    """Predictions for ``N`` rows; ``probabilities`` is ``[N, len(classes)]`` for classifiers."""

    predictions: np.ndarray
    probabilities: np.ndarray | None = None
    classes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.predictions)

    def slice(self, start: int, stop: int) -> Prediction:
        """Rows ``start:stop`` (views, no copy): how a micro-batch is split back per request."""
        proba = self.probabilities[start:stop] if self.probabilities is not None else None
        return Prediction(self.predictions[start:stop], proba, self.classes)


def predict(loaded: LoadedModel, x: np.ndarray) -> Prediction:
    """Predict ``x`` (float ``[N, F]`` in signature order, as the decoders in schema return it)."""
    est = loaded.estimator
    if loaded.classes is None:
        return Prediction(np.asarray(est.predict(x)))
    proba = est.predict_proba(x)
    fast = loaded.predict_from_proba
    preds = loaded.classes[np.argmax(proba, axis=1)] if fast else np.asarray(est.predict(x))
    return Prediction(preds, proba, loaded.classes)
