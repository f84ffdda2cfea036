"""Where training data comes from: scikit-learn's bundled sets, synthetic data, or a table by path/URI.

Nothing is downloaded: ``wine`` and ``breast_cancer`` ship inside scikit-learn, ``synthetic`` is made by
``make_classification``, and anything else is a CSV/Parquet path or ``s3://`` URI with a named target.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlcycle.data.io import read_table
from mlcycle.errors import InvalidInputError

BUILTIN = ("wine", "breast_cancer")
DEFAULT_TARGET = "target"


@dataclass(frozen=True)
class SyntheticSpec:
    """``synthetic`` or ``synthetic:rows=10000,features=20,classes=3,seed=0``."""

    rows: int = 2000
    features: int = 13
    classes: int = 3
    informative: int | None = None
    seed: int = 0

    @classmethod
    def parse(cls, source: str) -> SyntheticSpec:
        _, _, options = source.partition(":")
        values: dict[str, int] = {}
        for part in filter(None, options.split(",")):
            key, sep, raw = part.partition("=")
            key = key.strip()
            if not sep or key not in cls.__dataclass_fields__:
                raise InvalidInputError(
                    f"synthetic option {part!r}: use rows=, features=, classes=, informative=, seed=",
                    field="dataset",
                )
            try:
                values[key] = int(raw)
            except ValueError:
                raise InvalidInputError(f"synthetic option {key} must be an integer, got {raw!r}",
                                        field="dataset") from None
        spec = cls(**values)
        if spec.rows < 1 or spec.features < 2 or spec.classes < 2:
            raise InvalidInputError("synthetic data needs rows >= 1, features >= 2, classes >= 2",
                                    field="dataset")
        return spec


def dataset_name(source: str) -> str:
    """The default registered-model name for a data source (``wine`` for ``wine``, file stem for a path)."""
    if source in BUILTIN:
        return source
    if source.startswith("synthetic"):
        return "synthetic"
    stem = source.rstrip("/").rsplit("/", 1)[-1].split(".", 1)[0]
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in stem).strip("-_")
    return cleaned or "model"


def make_synthetic(spec: SyntheticSpec) -> pd.DataFrame:
    """A classification table of any size, deterministic for a seed."""
    from sklearn.datasets import make_classification

    informative = spec.informative or max(2, min(spec.features, spec.features // 2 + 1))
    X, y = make_classification(
        n_samples=spec.rows,
        n_features=spec.features,
        n_informative=min(informative, spec.features),
        n_redundant=0,
        n_classes=spec.classes,
        n_clusters_per_class=1,
        random_state=spec.seed,
    )
    frame = pd.DataFrame(X, columns=[f"f{i:02d}" for i in range(spec.features)])
    frame[DEFAULT_TARGET] = y.astype(np.int64)
    return frame


def load_dataset(source: str, target: str | None = None, *, endpoint_url: str | None = None
                 ) -> tuple[pd.DataFrame, str]:
    """Load a data source as one table and return it with the name of its target column.

    Args:
        source: ``wine``, ``breast_cancer``, ``synthetic[:options]``, a CSV/Parquet path or ``s3://`` URI.
        target: the target column; required for tables, ``target`` for the built-in sets.
        endpoint_url: S3 endpoint for ``s3://`` sources.

    Raises:
        InvalidInputError: unknown source or missing target column (``field`` says which).
    """
    if source in BUILTIN:
        from sklearn import datasets

        bunch = getattr(datasets, f"load_{source}")(as_frame=True)
        frame = bunch.frame.copy()
        frame[DEFAULT_TARGET] = frame[DEFAULT_TARGET].astype(np.int64)
        return frame, DEFAULT_TARGET
    if source == "synthetic" or source.startswith("synthetic:"):
        return make_synthetic(SyntheticSpec.parse(source)), DEFAULT_TARGET
    if not (source.endswith((".csv", ".parquet", ".pq")) or source.startswith("s3://")):
        raise InvalidInputError(
            f"unknown dataset {source!r}: use {', '.join(BUILTIN)}, synthetic[:rows=N,...], "
            "or a .csv/.parquet path or s3:// URI",
            field="dataset",
        )
    if not target:
        raise InvalidInputError(f"{source}: name the target column (--target)", field="target")
    frame = read_table(source, endpoint_url=endpoint_url)
    if target not in frame.columns:
        raise InvalidInputError(
            f"target column {target!r} is not in {source} (columns: {', '.join(map(str, frame.columns))})",
            field="target",
        )
    return frame, target


def content_hash(frame: pd.DataFrame) -> str:
    """A stable SHA-256 of a table's columns, dtypes and values (row order matters), for lineage."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(f"{c}:{t}" for c, t in frame.dtypes.astype(str).items()).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()
