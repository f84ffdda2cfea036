"""The current side of a drift check: the predictor's payload logs for one model and time window.

Layout (docs/contracts.md): ``<root>/<base_name>/part-<utc-timestamp>-<pid>-<seq>.parquet`` under a
local directory or an ``s3://`` prefix. When the predictor's own reader
(``mlcycle.serving.payload_log.read_payloads``) is available it is used, so both sides read one layout;
this module's reader is the same contract, kept so monitoring works on its own.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

TIMESTAMP = "timestamp"


def _filesystem(source: str, s3_endpoint_url: str | None):
    """A pyarrow filesystem and the path inside it for a local directory or an s3:// prefix."""
    from pyarrow import fs

    if source.startswith("s3://"):
        kwargs = {"endpoint_override": s3_endpoint_url} if s3_endpoint_url else {}
        if s3_endpoint_url and s3_endpoint_url.startswith("http://"):
            kwargs["scheme"] = "http"
        return fs.S3FileSystem(**kwargs), source.removeprefix("s3://")
    return fs.LocalFileSystem(), str(source)


def read_payload_logs(
    source: str,
    model_name: str,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    s3_endpoint_url: str | None = None,
) -> pd.DataFrame:
    """All payload rows of ``model_name`` (registered or base name) with ``since <= timestamp < until``.

    A missing directory or a window without rows gives an empty frame, never an error: "no traffic"
    is a monitoring result, not a fault. A team-qualified name keeps only that team's rows.
    """
    try:  # the predictor's reader, once it exists, is the single implementation of the layout
        from mlcycle.serving.payload_log import read_payloads
    except ImportError:
        read_payloads = None
    if read_payloads is not None:
        return read_payloads(source, model_name, since=since, until=until, s3_endpoint_url=s3_endpoint_url)
    import pyarrow as pa
    import pyarrow.dataset as ds
    from pyarrow import fs as pafs

    filesystem, root = _filesystem(source, s3_endpoint_url)
    directory = f"{root.rstrip('/')}/{model_name.rpartition('.')[2]}"
    info = filesystem.get_file_info(directory)
    if info.type != pafs.FileType.Directory:
        return pd.DataFrame()
    files = [
        f.path
        for f in filesystem.get_file_info(pafs.FileSelector(directory, recursive=False))
        if f.type == pafs.FileType.File and f.path.endswith(".parquet")
    ]
    if not files:
        return pd.DataFrame()
    # Parts written by different predictor versions may differ in columns; unify them by name.
    schemas = [ds.dataset(f, filesystem=filesystem, format="parquet").schema for f in files]
    dataset = ds.dataset(
        files, filesystem=filesystem, format="parquet", schema=pa.unify_schemas(schemas, promote_options="permissive")
    )
    condition = None
    if since is not None:
        condition = ds.field(TIMESTAMP) >= pa.scalar(since, type=dataset.schema.field(TIMESTAMP).type)
    if until is not None:
        upper = ds.field(TIMESTAMP) < pa.scalar(until, type=dataset.schema.field(TIMESTAMP).type)
        condition = upper if condition is None else condition & upper
    frame = dataset.to_table(filter=condition).to_pandas()
    if "." in model_name:
        frame = frame[frame["model_name"] == model_name].reset_index(drop=True)
    return frame


def write_payload_log(frame: pd.DataFrame, root: str, model_name: str, *, seq: int = 0) -> str:
    """Write ``frame`` as one payload-log part (the predictor's layout); for demos, tests and backfills."""
    import os
    from datetime import UTC
    from datetime import datetime as dt
    from pathlib import Path

    directory = Path(root) / model_name
    directory.mkdir(parents=True, exist_ok=True)
    stamp = dt.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = directory / f"part-{stamp}-{os.getpid()}-{seq:06d}.parquet"
    frame.to_parquet(path, index=False)
    return str(path)
