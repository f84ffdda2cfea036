"""Reading and writing tables (CSV or Parquet) from a local path or an ``s3://`` URI.

S3 goes through boto3 with the endpoint from settings (MinIO on a cluster); local paths are plain files.
"""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from mlcycle.errors import InvalidInputError

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` → ``(bucket, key)``."""
    parsed = urlparse(uri)
    if not parsed.netloc:
        raise InvalidInputError(f"{uri!r} has no bucket; write s3://bucket/key", field="uri")
    return parsed.netloc, parsed.path.lstrip("/")


def s3_client(endpoint_url: str | None = None):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url)


def table_format(uri: str) -> str:
    suffix = Path(urlparse(uri).path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise InvalidInputError(
        f"{uri!r}: unknown table format {suffix or '(none)'!r}; use a .csv or .parquet file", field="uri"
    )


def read_table(uri: str, *, endpoint_url: str | None = None, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet table from a local path or ``s3://`` URI.

    Raises:
        InvalidInputError: unknown format, missing file, or a file that does not parse.
    """
    kind = table_format(uri)
    try:
        if is_s3(uri):
            bucket, key = split_s3(uri)
            body = s3_client(endpoint_url).get_object(Bucket=bucket, Key=key)["Body"].read()
            source: object = io.BytesIO(body)
        else:
            if not Path(uri).is_file():
                raise InvalidInputError(f"no such file: {uri}", field="uri")
            source = uri
        if kind == "csv":
            return pd.read_csv(source, usecols=columns)
        return pd.read_parquet(source, columns=columns)
    except InvalidInputError:
        raise
    except (ValueError, OSError) as e:
        raise InvalidInputError(f"cannot read {uri}: {e}", field="uri") from e


def write_table(df: pd.DataFrame, uri: str, *, endpoint_url: str | None = None) -> None:
    """Write a table as CSV or Parquet (by suffix) to a local path or ``s3://`` URI."""
    kind = table_format(uri)
    buffer = io.BytesIO()
    if kind == "csv":
        df.to_csv(buffer, index=False)
    else:
        df.to_parquet(buffer, index=False)
    if is_s3(uri):
        bucket, key = split_s3(uri)
        s3_client(endpoint_url).put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)  # never leave a half-written table behind
