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


FOREST_TYPES = ("RandomForestClassifier", "ExtraTreesClassifier")


def supports_forest_fast_path(estimator: object) -> bool:
    """True for a bare single-output random/extra-trees classifier (see :func:`forest_predict_proba`)."""
    return type(estimator).__name__ in FOREST_TYPES and getattr(estimator, "n_outputs_", 0) == 1


def forest_predict_proba(forest: object, x: np.ndarray) -> np.ndarray:
    """``forest.predict_proba(x)`` without joblib: the same sums in the same order, so the same bits.

    scikit-learn dispatches one joblib task per tree even with ``n_jobs=1``; for a 100-tree forest and
    a few rows that bookkeeping costs more than the trees. The input is already validated (finite,
    right width), so each tree's ``tree_.predict`` is called directly on one float32 copy.
    """
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    trees = forest.estimators_
    out = np.zeros((len(x32), forest.n_classes_), dtype=np.float64)
    for tree in trees:
        out += tree.tree_.predict(x32)[:, : tree.n_classes_]
    out /= len(trees)
    return out


def predict(loaded: LoadedModel, x: np.ndarray) -> Prediction:
    """Predict ``x`` (float ``[N, F]`` in signature order, as the decoders in schema return it)."""
    est = loaded.estimator
    compiled = loaded.compiled
    if compiled is not None:  # checked at load time to reproduce est (mlcycle.serving.compiled)
        if loaded.classes is None:
            return Prediction(compiled.predict(x))
        proba = compiled.predict_proba(x)
        return Prediction(loaded.classes[np.argmax(proba, axis=1)], proba, loaded.classes)
    if loaded.classes is None:
        return Prediction(np.asarray(est.predict(x)))
    proba = forest_predict_proba(est, x) if loaded.forest_fast_path else est.predict_proba(x)
    fast = loaded.predict_from_proba
    preds = loaded.classes[np.argmax(proba, axis=1)] if fast else np.asarray(est.predict(x))
    return Prediction(preds, proba, loaded.classes)
