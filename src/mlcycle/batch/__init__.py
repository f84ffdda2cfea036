"""Batch inference: score a CSV or Parquet table with a registered model, using the predictor's code.

- :func:`~mlcycle.batch.score.score_batch`: stream an input in chunks through
  :func:`mlcycle.serving.load_model`, :func:`mlcycle.serving.check_rows` and :func:`mlcycle.serving.predict`
  into a Parquet output; bad rows fail the job (:class:`~mlcycle.batch.score.BadRowsError`) or are
  quarantined; the job is an MLflow run.
- :mod:`~mlcycle.batch.shards`: the same job cut into shards (Parquet row groups / files, CSV byte ranges)
  for a ``dsl.ParallelFor``: :func:`~mlcycle.batch.shards.plan_shards`,
  :func:`~mlcycle.batch.shards.score_shard`, :func:`~mlcycle.batch.shards.collect_shards`; the output is a
  directory of Parquet parts and a manifest.
- :mod:`~mlcycle.batch.io`: chunked readers (local or ``s3://``) and staged Parquet writers.
"""

from mlcycle.batch.score import (
    BAD_ROW_RULES,
    DEFAULT_CHUNK_ROWS,
    EXPERIMENT,
    BadRowsError,
    BatchResult,
    default_quarantine_uri,
    score_batch,
)

__all__ = [
    "BAD_ROW_RULES",
    "DEFAULT_CHUNK_ROWS",
    "EXPERIMENT",
    "BadRowsError",
    "BatchResult",
    "default_quarantine_uri",
    "score_batch",
]
