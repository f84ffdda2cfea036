"""Sharded batch scoring: plan shards from the input, score each with the batch job's own code, collect.

Three plain functions, one per pipeline step (the batch pipeline runs them as a ``dsl.ParallelFor``):

- :func:`plan_shards` cuts the input into shards without reading its rows: a Parquet file (or a directory /
  ``s3://`` prefix of them) by row groups, balanced by row count, from the footers alone; a CSV file by byte
  ranges (a shard reads the lines that start in its range). It pins the model version (an alias that moves
  mid-job cannot split the output between two versions), resolves the key columns, opens the job's one
  MLflow run and writes the plan next to the output, under ``<output>.shards/<digest>/``.
- :func:`score_shard` scores one shard through :mod:`mlcycle.batch.score`'s chunk loop (the predictor's
  loading, validation and prediction) into a staging part. A shard whose part is already there (staged by
  an earlier attempt, or committed in the output dataset by the same plan) is not scored again.
- :func:`collect_shards` moves the parts into the output directory, writes the manifest last and records
  the totals on the MLflow run.

The output is a directory (or ``s3://`` prefix): ``part-<digest>-<shard>.parquet`` files, quarantined rows
under ``quarantine/``, and ``_manifest.json`` (shard → rows read, scored and quarantined, the part's
SHA-256). The manifest is the commit: it is written after every part is in place, and a failed shard leaves
the output path as it was (nothing, or the previous complete dataset). The *digest* names a plan: the input
files' identity (size and mtime, or ETag), the pinned model, keys, rule, chunk size and shard layout; a
re-run with the same digest reuses every part that exists and scores only the missing ones.

Row numbers (``row``) are positions in the whole input, as in the unsharded output. A Parquet shard knows
its first row from the footers; a CSV shard cannot know it without reading the lines before it, so it
numbers from 0 and :func:`collect_shards` shifts its part (one pass over the scored columns, not the input).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from mlcycle.batch.io import Piece, StagedParquet, line_start, object_size, open_binary, open_pieces, read_header
from mlcycle.batch.score import (
    BAD_ROW_RULES,
    DEFAULT_CHUNK_ROWS,
    EXPERIMENT,
    _keys,
    _score_chunks,
)
from mlcycle.config import Settings
from mlcycle.data.io import TABLE_SUFFIXES, is_s3, s3_client, split_s3, table_format
from mlcycle.errors import InvalidInputError, MlcycleError

log = logging.getLogger(__name__)

FORMAT = "mlcycle-batch-dataset/1"
MANIFEST = "_manifest.json"
PLAN = "plan.json"
QUARANTINE_DIR = "quarantine"


class ShardFailedError(MlcycleError):
    """One shard of a sharded batch job failed; nothing was written to the output.

    The message names the shard and what it read, then the shard's own error; ``http_status`` is the
    cause's (bad rows stay a client's 400, an outage a 503).

    Attributes:
        shard: the shard's index.
        cause_type: the class name of the shard's error.
    """

    def __init__(self, message: str, *, shard: int, cause: BaseException) -> None:
        super().__init__(message, field=getattr(cause, "field", None) or "input")
        self.shard = shard
        self.cause_type = type(cause).__name__
        self.http_status = getattr(cause, "http_status", 500)


@dataclass(frozen=True)
class Shard:
    """A slice of the input: its pieces, and its first row when the format records it (Parquet).

    Attributes:
        index: 0-based; shards are in input order.
        pieces: what the shard reads, in order.
        first_row: the input position of its first row (Parquet), ``None`` for a CSV byte range.
        rows: its row count (Parquet), ``None`` for CSV.
    """

    index: int
    pieces: tuple[Piece, ...]
    first_row: int | None = None
    rows: int | None = None

    @property
    def id(self) -> str:
        return f"shard-{self.index:05d}"

    def describe(self) -> str:
        what = self.pieces[0].describe() if len(self.pieces) == 1 else \
            f"{self.pieces[0].describe()} .. {self.pieces[-1].describe()}"
        rows = f", rows {self.first_row}-{self.first_row + self.rows - 1}" if self.rows else ""
        return f"{what}{rows}"


@dataclass(frozen=True)
class ShardPlan:
    """What every step of one sharded job agrees on; stored as ``plan.json`` in the staging area."""

    digest: str
    run_id: str
    model_ref: str
    model_uri: str
    model_name: str
    model_version: str
    input_uri: str
    output_uri: str
    staging_uri: str
    kind: str
    keys: tuple[str, ...]
    on_bad_rows: str
    chunk_rows: int
    shards: tuple[Shard, ...]

    @property
    def plan_uri(self) -> str:
        return join(self.staging_uri, PLAN)

    def part_name(self, index: int) -> str:
        return f"part-{self.digest}-{index:05d}.parquet"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> ShardPlan:
        raw = json.loads(text)
        shards = tuple(
            Shard(index=s["index"], first_row=s["first_row"], rows=s["rows"],
                  pieces=tuple(Piece(uri=p["uri"],
                                     row_groups=tuple(p["row_groups"]) if p["row_groups"] is not None else None,
                                     byte_range=tuple(p["byte_range"]) if p["byte_range"] is not None else None)
                               for p in s["pieces"]))
            for s in raw.pop("shards"))
        return cls(**{**raw, "keys": tuple(raw["keys"]), "shards": shards})


@dataclass(frozen=True)
class ShardResult:
    """What one shard produced (or found already produced).

    ``where`` is ``staging`` (scored by this attempt or an earlier one, not yet collected) or ``output``
    (already in the output dataset, committed by an earlier run of the same plan). ``reused`` says this call
    scored nothing.
    """

    index: int
    rows_read: int
    rows_scored: int
    rows_quarantined: int
    first_row: int | None
    sha256: str
    size: int
    quarantine_sha256: str | None = None
    where: str = "staging"
    reused: bool = False
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ShardResult:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class DatasetResult:
    """A collected dataset: where it is, its MLflow run, its manifest, and the totals."""

    run_id: str
    output_uri: str
    manifest: dict[str, Any]
    shards_scored: int
    shards_reused: int
    rows_read: int = 0
    rows_scored: int = 0
    rows_quarantined: int = 0
    seconds: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def parts(self) -> list[str]:
        return [join(self.output_uri, s["part"]) for s in self.manifest["shards"] if s["part"]]

    def metrics(self) -> dict[str, float]:
        return {
            "rows_read": float(self.rows_read), "rows_scored": float(self.rows_scored),
            "rows_quarantined": float(self.rows_quarantined), "shards": float(len(self.manifest["shards"])),
            "shards_scored": float(self.shards_scored), "shards_reused": float(self.shards_reused),
            "seconds": self.seconds,
        }


# --- storage: local paths and s3:// alike -------------------------------------------------------------------

def join(base: str, *names: str) -> str:
    return "/".join([base.rstrip("/"), *names])


def _size(uri: str, endpoint: str | None) -> int | None:
    try:
        return object_size(uri, endpoint)
    except InvalidInputError:
        return None


def _read_text(uri: str, endpoint: str | None) -> str | None:
    if not is_s3(uri):
        path = Path(uri)
        return path.read_text(encoding="utf-8") if path.is_file() else None
    if _size(uri, endpoint) is None:
        return None
    bucket, key = split_s3(uri)
    return s3_client(endpoint).get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")


def _write_text(uri: str, text: str, endpoint: str | None) -> None:
    """Write ``text`` whole: a local file by rename, an S3 object by one PUT (atomic either way)."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        s3_client(endpoint).put_object(Bucket=bucket, Key=key, Body=text.encode("utf-8"))
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _move(src: str, dst: str, endpoint: str | None) -> None:
    if is_s3(src):
        (sb, sk), (db, dk) = split_s3(src), split_s3(dst)
        client = s3_client(endpoint)
        client.copy({"Bucket": sb, "Key": sk}, db, dk)  # server side, multipart for large parts
        client.delete_object(Bucket=sb, Key=sk)
        return
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)


def _delete(uri: str, endpoint: str | None) -> None:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        s3_client(endpoint).delete_object(Bucket=bucket, Key=key)
    else:
        Path(uri).unlink(missing_ok=True)


def _list(prefix: str, endpoint: str | None) -> list[str]:
    """Every file under the directory or prefix ``prefix`` (recursive), as full URIs, sorted."""
    if not is_s3(prefix):
        root = Path(prefix)
        return sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    bucket, key = split_s3(prefix)
    key = key.rstrip("/") + "/" if key else ""
    found = []
    for page in s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
        found += [f"s3://{bucket}/{o['Key']}" for o in page.get("Contents", [])]
    return sorted(found)


def _remove_tree(prefix: str, endpoint: str | None) -> None:
    if is_s3(prefix):
        for uri in _list(prefix, endpoint):
            _delete(uri, endpoint)
    else:
        shutil.rmtree(prefix, ignore_errors=True)


def _identity(uri: str, endpoint: str | None) -> dict[str, Any]:
    """What changes when the file changes: size and mtime (local), size and ETag (S3)."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        head = s3_client(endpoint).head_object(Bucket=bucket, Key=key)
        return {"uri": uri, "size": int(head["ContentLength"]), "etag": head.get("ETag", "")}
    stat = Path(uri).stat()
    return {"uri": uri, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def input_files(input_uri: str, endpoint: str | None = None) -> list[str]:
    """The files an input names: itself, or the Parquet files of a directory / ``s3://`` prefix, sorted.

    Raises:
        InvalidInputError: nothing there, or a directory with no Parquet files in it.
    """
    path_part = split_s3(input_uri)[1] if is_s3(input_uri) else input_uri
    if Path(path_part).suffix.lower() in TABLE_SUFFIXES:
        object_size(input_uri, endpoint)  # raises a clear "no such file/object"
        return [input_uri]
    if not is_s3(input_uri) and not Path(input_uri).is_dir():
        raise InvalidInputError(f"no such file or directory: {input_uri}", field="input")
    files = [u for u in _list(input_uri, endpoint)
             if Path(u).suffix.lower() in (".parquet", ".pq") and not Path(u).name.startswith((".", "_"))]
    if not files:
        raise InvalidInputError(f"{input_uri} holds no .parquet files (a directory input is Parquet files)",
                                field="input")
    return files


# --- planning -----------------------------------------------------------------------------------------------

def _parquet_shards(files: Sequence[str], shards: int, endpoint: str | None) -> list[Shard]:
    """Contiguous row groups, cut where the running row count crosses ``total * i / shards``."""
    import pyarrow.parquet as pq

    units: list[tuple[str, int, int]] = []  # (file, row group, rows)
    names = None
    for uri in files:
        with open_binary(uri, endpoint, buffer_size=1 << 16) as fh:
            f = pq.ParquetFile(fh)
            these = tuple(f.schema_arrow.names)
            if names is None:
                names = these
            elif these != names:
                raise InvalidInputError(
                    f"{uri} has columns {', '.join(these)}; {files[0]} has {', '.join(names)}", field="input")
            units += [(uri, g, f.metadata.row_group(g).num_rows) for g in range(f.metadata.num_row_groups)]
    units = [u for u in units if u[2] > 0] or units[:1]
    total = sum(u[2] for u in units)
    n = max(1, min(shards, len(units)))
    groups: list[list[tuple[str, int, int]]] = [[] for _ in range(n)]
    done = 0
    for i, unit in enumerate(units):
        # The shard whose share of the rows this unit's first row falls in (a shard left without a unit,
        # next to a large row group, is dropped).
        k = min(n - 1, done * n // total if total else i * n // len(units))
        groups[k].append(unit)
        done += unit[2]
    result, first = [], 0
    for k, group in enumerate(g for g in groups if g):
        pieces: list[Piece] = []
        for uri, g, _ in group:
            if pieces and pieces[-1].uri == uri:
                pieces[-1] = replace(pieces[-1], row_groups=(*pieces[-1].row_groups, g))
            else:
                pieces.append(Piece(uri=uri, row_groups=(g,)))
        rows = sum(u[2] for u in group)
        result.append(Shard(index=k, pieces=tuple(pieces), first_row=first, rows=rows))
        first += rows
    return result


def _csv_shards(uri: str, shards: int, endpoint: str | None) -> list[Shard]:
    """Equal byte ranges of the data (after the header), moved to line starts so no range is empty."""
    with open_binary(uri, endpoint, buffer_size=1 << 16) as fh:
        size = object_size(uri, endpoint)
        header_end = len(read_header(fh))
        cuts = sorted({line_start(fh, header_end + (size - header_end) * i // shards, header_end, size)
                       for i in range(shards)} | {size})
    ranges = list(zip(cuts, cuts[1:], strict=False)) or [(header_end, size)]
    return [Shard(index=k, pieces=(Piece(uri=uri, byte_range=r),)) for k, r in enumerate(ranges)]


def staging_uri(output_uri: str, digest: str) -> str:
    """Where a plan's parts wait until collected: ``<output>.shards/<digest>``, beside the output."""
    return f"{output_uri.rstrip('/')}.shards/{digest}"


def check_dataset_uri(output_uri: str) -> None:
    """A sharded job's output is a directory (or ``s3://`` prefix), not a file."""
    path_part = split_s3(output_uri)[1] if is_s3(output_uri) else output_uri
    if Path(path_part).suffix.lower() in TABLE_SUFFIXES:
        raise InvalidInputError(
            f"output {output_uri!r} names a file; a sharded job writes a directory of Parquet parts and a "
            f"manifest: pass a directory (e.g. {output_uri.rsplit('.', 1)[0]}/)", field="output")
    if is_s3(output_uri) and not split_s3(output_uri)[1].strip("/"):
        raise InvalidInputError(f"output {output_uri!r} needs a prefix inside the bucket", field="output")


def read_manifest(output_uri: str, endpoint: str | None = None) -> dict[str, Any] | None:
    """The output dataset's manifest, or ``None`` when there is none."""
    text = _read_text(join(output_uri, MANIFEST), endpoint)
    return json.loads(text) if text is not None else None


def plan_shards(
    model: str,
    input_uri: str,
    output_uri: str,
    settings: Settings,
    *,
    shards: int,
    keys: Sequence[str] | None = None,
    on_bad_rows: str = "fail",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> ShardPlan:
    """Cut ``input_uri`` into at most ``shards`` shards and open the job's MLflow run; see the module.

    Fewer shards than asked come out when the input has fewer row groups (Parquet) or lines (CSV).

    Raises:
        InvalidInputError: bad arguments; an unreadable input; an output that is a file, or a non-empty
            directory that is not a dataset this writes.
        ModelNotFoundError: the model does not exist.
    """
    from mlcycle.serving import check_rows, load_model

    if on_bad_rows not in BAD_ROW_RULES:
        raise InvalidInputError(
            f"on_bad_rows is {on_bad_rows!r}; use one of {', '.join(BAD_ROW_RULES)}", field="on_bad_rows")
    if chunk_rows < 1:
        raise InvalidInputError(f"chunk_rows must be at least 1, got {chunk_rows}", field="chunk_rows")
    if shards < 1:
        raise InvalidInputError(f"shards must be at least 1, got {shards}", field="shards")
    check_dataset_uri(output_uri)
    output_uri = output_uri.rstrip("/")
    if output_uri == input_uri.rstrip("/"):
        raise InvalidInputError("input and output must be different", field="output")
    endpoint = settings.s3_endpoint_url
    files = input_files(input_uri, endpoint)
    kinds = {table_format(f) for f in files}
    kind = kinds.pop()
    if kind == "csv" and len(files) > 1:
        raise InvalidInputError("a sharded CSV input is one file", field="input")

    loaded = load_model(model, settings)
    with open_pieces([Piece(uri=files[0])], endpoint_url=endpoint) as table:
        check_rows(pd.DataFrame(columns=list(table.columns)), loaded.schema)
        resolved_keys = _keys(keys, table.columns, loaded)
    planned = _parquet_shards(files, shards, endpoint) if kind == "parquet" else _csv_shards(files[0], shards,
                                                                                                endpoint)
    identity = {
        "inputs": [_identity(f, endpoint) for f in files], "model": loaded.uri, "keys": resolved_keys,
        "on_bad_rows": on_bad_rows, "chunk_rows": chunk_rows, "format": FORMAT,
        "shards": [[asdict(p) for p in s.pieces] for s in planned],
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    staging = staging_uri(output_uri, digest)

    manifest = read_manifest(output_uri, endpoint)
    if manifest is None and _list(output_uri, endpoint):
        raise InvalidInputError(
            f"output {output_uri} exists and is not a batch dataset (no {MANIFEST}); choose an empty or new "
            "directory", field="output")
    earlier = _read_text(join(staging, PLAN), endpoint)
    if earlier is not None:
        run_id = ShardPlan.from_json(earlier).run_id
    elif manifest is not None and manifest.get("digest") == digest:
        run_id = manifest["run_id"]
    else:
        run_id = ""
    name = loaded.registered_name or loaded.served_name
    plan = ShardPlan(
        digest=digest, run_id=run_id, model_ref=loaded.ref, model_uri=loaded.uri, model_name=name,
        model_version=loaded.version or "", input_uri=input_uri, output_uri=output_uri, staging_uri=staging,
        kind=kind, keys=tuple(resolved_keys), on_bad_rows=on_bad_rows, chunk_rows=chunk_rows,
        shards=tuple(planned))
    plan = replace(plan, run_id=_open_run(plan, settings))
    _write_text(plan.plan_uri, plan.to_json(), endpoint)
    log.info("planned %d shard(s) of %s (plan %s, run %s)", len(planned), input_uri, digest, plan.run_id)
    return plan


def _open_run(plan: ShardPlan, settings: Settings) -> str:
    """The job's MLflow run: the plan's earlier one (marked running again), or a new one."""
    from mlflow.tracking import MlflowClient

    from mlcycle.tracking import ensure_experiment

    client = MlflowClient()
    if plan.run_id:
        client.update_run(plan.run_id, status="RUNNING")
        return plan.run_id
    tags = {"mlcycle.team": settings.team, "mlcycle.batch.model": plan.model_name,
            "mlcycle.batch.model_version": plan.model_version, "mlcycle.batch.plan": plan.digest,
            "mlflow.runName": f"batch-{plan.model_name}-v{plan.model_version or 'uri'}-sharded"}
    run = client.create_run(ensure_experiment(EXPERIMENT, settings), tags=tags)
    from mlflow.entities import Param

    params = {
        "model_uri": plan.model_ref, "model_version": plan.model_version, "model_resolved_uri": plan.model_uri,
        "input": plan.input_uri, "output": plan.output_uri, "on_bad_rows": plan.on_bad_rows,
        "chunk_rows": plan.chunk_rows, "keys": ",".join(plan.keys), "shards": len(plan.shards),
        "plan": plan.digest,
    }
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
    return run.info.run_id


def load_plan(plan_uri: str, endpoint: str | None = None) -> ShardPlan:
    """The plan :func:`plan_shards` wrote (a shard or collect step's first read)."""
    text = _read_text(plan_uri, endpoint)
    if text is None:
        raise InvalidInputError(f"no shard plan at {plan_uri}", field="plan")
    return ShardPlan.from_json(text)


# --- scoring one shard --------------------------------------------------------------------------------------

def _summary_uri(plan: ShardPlan, index: int) -> str:
    return join(plan.staging_uri, f"shard-{index:05d}.json")


def _existing(plan: ShardPlan, index: int, endpoint: str | None) -> ShardResult | None:
    """The shard's part if a run of this plan already made it: staged, or committed in the output."""
    text = _read_text(_summary_uri(plan, index), endpoint)
    if text is not None:
        done = ShardResult.from_json(text)
        if _size(join(plan.staging_uri, plan.part_name(index)), endpoint) == done.size:
            return replace(done, reused=True)
    manifest = read_manifest(plan.output_uri, endpoint)
    if manifest is not None and manifest.get("digest") == plan.digest:
        entry = next((s for s in manifest["shards"] if s["shard"] == index), None)
        if entry is not None and entry["part"] and \
                _size(join(plan.output_uri, entry["part"]), endpoint) == entry["size"]:
            return ShardResult(index=index, rows_read=entry["rows_read"], rows_scored=entry["rows"],
                               rows_quarantined=entry["quarantined"], first_row=entry["first_row"],
                               sha256=entry["sha256"], size=entry["size"],
                               quarantine_sha256=entry.get("quarantine_sha256"), where="output", reused=True)
    return None


def score_shard(plan: ShardPlan, index: int, settings: Settings) -> ShardResult:
    """Score shard ``index`` of ``plan`` into its staging part (unless a run of this plan already did).

    Raises:
        ShardFailedError: the shard failed (bad rows under rule ``fail``, unreadable input, ...); its
            staging part is discarded and the job's MLflow run is marked failed.
    """
    from mlcycle.serving import load_model

    if not 0 <= index < len(plan.shards):
        raise InvalidInputError(f"shard {index} is not in the plan ({len(plan.shards)} shards)", field="shard")
    endpoint = settings.s3_endpoint_url
    if (done := _existing(plan, index, endpoint)) is not None:
        log.info("shard %d of %s already scored (%s); not scoring it again", index, plan.digest, done.where)
        return done
    shard = plan.shards[index]
    output = quarantine = None
    try:
        loaded = load_model(plan.model_uri, settings)
        if settings.serving_compile:  # as score_batch and the predictor do: compiled where it reproduces the model
            from mlcycle.serving.compiled import compile_loaded

            compile_loaded(loaded)
        with open_pieces(shard.pieces, endpoint_url=endpoint) as table:
            wanted = set(loaded.schema.columns) | set(plan.keys)
            read = [c for c in table.columns if c in wanted]
            output = StagedParquet(join(plan.staging_uri, plan.part_name(index)), endpoint_url=endpoint)
            if plan.on_bad_rows == "quarantine":
                quarantine = StagedParquet(join(plan.staging_uri, QUARANTINE_DIR, plan.part_name(index)),
                                           endpoint_url=endpoint)
            constants = (plan.model_name, plan.model_version, plan.run_id)
            counts, seconds, cpu_seconds = _score_chunks(
                loaded, table, read, list(plan.keys), plan.on_bad_rows, plan.chunk_rows, constants, output,
                quarantine, None, first_row=shard.first_row or 0)
        quarantine_sha = quarantine.checksum() if quarantine is not None else None
        sha = output.checksum()
        size = output.staging.stat().st_size
        if quarantine is not None:
            quarantine.commit()
        output.commit()
    except BaseException as e:
        for staged in (output, quarantine):
            if staged is not None:
                staged.discard()
        if isinstance(e, Exception):
            _mark_failed(plan, index, e)
            where = "" if shard.first_row is not None else " (rows count from the shard's first line)"
            raise ShardFailedError(
                f"shard {index} of {len(plan.shards)} ({shard.describe()}) failed{where}: "
                f"{getattr(e, 'message', None) or e}", shard=index, cause=e) from e
        raise
    result = ShardResult(index=index, rows_read=counts["read"], rows_scored=counts["scored"],
                         rows_quarantined=counts["quarantined"], first_row=shard.first_row, sha256=sha, size=size,
                         quarantine_sha256=quarantine_sha, seconds=seconds, cpu_seconds=cpu_seconds)
    _write_text(_summary_uri(plan, index), result.to_json(), endpoint)  # the shard's commit
    log.info("shard %d: scored %d of %d rows in %.1fs", index, result.rows_scored, result.rows_read, seconds)
    return result


def _mark_failed(plan: ShardPlan, index: int, error: Exception) -> None:
    from mlflow.tracking import MlflowClient

    with contextlib.suppress(Exception):  # reporting the failure must not hide it
        client = MlflowClient()
        client.set_tag(plan.run_id, "mlcycle.batch.failed_shard", str(index))
        client.set_tag(plan.run_id, "mlcycle.batch.error", f"{type(error).__name__}: {error}"[:5000])
        client.set_terminated(plan.run_id, status="FAILED")


# --- collecting ---------------------------------------------------------------------------------------------

def _shift_rows(src: str, dst: str, offset: int, endpoint: str | None) -> tuple[str, int]:
    """Copy part ``src`` to ``dst`` with ``row`` shifted by ``offset``; the new part's SHA-256 and size."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    staged = StagedParquet(dst, endpoint_url=endpoint)
    try:
        with open_binary(src, endpoint) as fh:
            f = pq.ParquetFile(fh)
            for g in range(f.metadata.num_row_groups):
                table = f.read_row_group(g)
                where = table.schema.get_field_index("row")
                staged.write(table.set_column(where, "row", pc.add(table.column("row"), offset)))
            if staged.schema is None:
                staged.write(f.schema_arrow.empty_table())
        sha = staged.checksum()
        size = staged.staging.stat().st_size
        staged.commit()
    except BaseException:
        staged.discard()
        raise
    _delete(src, endpoint)
    return sha, size


def collect_shards(plan: ShardPlan, results: Sequence[ShardResult], settings: Settings) -> DatasetResult:
    """Put every shard's part into the output dataset, write the manifest, and finish the MLflow run.

    Raises:
        InvalidInputError: a shard of the plan has no result (the job is not complete).
    """
    from mlflow.tracking import MlflowClient

    endpoint = settings.s3_endpoint_url
    by_index = {r.index: r for r in results}
    missing = [i for i in range(len(plan.shards)) if i not in by_index]
    if missing:
        raise InvalidInputError(f"shard(s) {missing} of plan {plan.digest} have no output", field="shards")
    ordered = [by_index[i] for i in range(len(plan.shards))]
    keep = {r.index for r in ordered if r.rows_scored} or {0}
    keep_quarantine = {r.index for r in ordered if r.rows_quarantined} or {0}
    entries, offset = [], 0
    for r in ordered:
        first = r.first_row if r.first_row is not None else offset
        name = plan.part_name(r.index)
        sha, size, qsha = r.sha256, r.size, r.quarantine_sha256
        if r.where == "staging":
            parts = [(join(plan.staging_uri, name), join(plan.output_uri, name), r.index in keep)]
            if plan.on_bad_rows == "quarantine":
                parts.append((join(plan.staging_uri, QUARANTINE_DIR, name),
                              join(plan.output_uri, QUARANTINE_DIR, name), r.index in keep_quarantine))
            for k, (src, dst, wanted) in enumerate(parts):
                if not wanted:
                    _delete(src, endpoint)
                elif r.first_row is None and first:
                    new_sha, new_size = _shift_rows(src, dst, first, endpoint)
                    if k == 0:
                        sha, size = new_sha, new_size
                    else:
                        qsha = new_sha
                else:
                    _move(src, dst, endpoint)
        entries.append({
            "shard": r.index, "part": name if r.index in keep else None, "rows_read": r.rows_read,
            "rows": r.rows_scored, "quarantined": r.rows_quarantined, "first_row": first, "sha256": sha,
            "size": size,
            "quarantine_part": f"{QUARANTINE_DIR}/{name}" if plan.on_bad_rows == "quarantine"
            and r.index in keep_quarantine else None,
            "quarantine_sha256": qsha, "pieces": [p.describe() for p in plan.shards[r.index].pieces],
        })
        offset = first + r.rows_read
    totals = {k: sum(e[v] for e in entries) for k, v in
              (("rows_read", "rows_read"), ("rows_scored", "rows"), ("rows_quarantined", "quarantined"))}
    manifest = {
        "format": FORMAT, "digest": plan.digest, "run_id": plan.run_id, "model": plan.model_ref,
        "model_uri": plan.model_uri, "model_name": plan.model_name, "model_version": plan.model_version,
        "input": plan.input_uri, "keys": list(plan.keys), "on_bad_rows": plan.on_bad_rows, **totals,
        "shards": entries,
    }
    _write_text(join(plan.output_uri, MANIFEST), json.dumps(manifest, indent=1), endpoint)  # the commit
    listed = {join(plan.output_uri, e[k]) for e in entries for k in ("part", "quarantine_part") if e[k]}
    for uri in _list(plan.output_uri, endpoint):
        if Path(uri).name.startswith("part-") and uri not in listed:
            _delete(uri, endpoint)  # a part of an earlier plan, no longer in the manifest
    _remove_tree(plan.staging_uri, endpoint)
    if not is_s3(plan.staging_uri):
        with contextlib.suppress(OSError):
            Path(plan.staging_uri).parent.rmdir()  # <output>.shards, when no other plan waits there

    scored = [r for r in ordered if not r.reused]
    result = DatasetResult(
        run_id=plan.run_id, output_uri=plan.output_uri, manifest=manifest, shards_scored=len(scored),
        shards_reused=len(ordered) - len(scored), seconds=sum(r.seconds for r in scored), **totals)
    client = MlflowClient()
    now = int(time.time() * 1000)
    from mlflow.entities import Metric

    metrics = {**result.metrics(), "cpu_seconds": sum(r.cpu_seconds for r in scored),
               "shard_seconds_max": max((r.seconds for r in scored), default=0.0)}
    client.log_batch(plan.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
    client.log_dict(plan.run_id, manifest, "manifest.json")
    client.set_terminated(plan.run_id, status="FINISHED")
    log.info("collected %d shard(s) into %s: %d rows scored, %d quarantined", len(ordered), plan.output_uri,
             result.rows_scored, result.rows_quarantined)
    return result


def score_sharded(
    model: str,
    input_uri: str,
    output_uri: str,
    settings: Settings,
    *,
    shards: int,
    keys: Sequence[str] | None = None,
    on_bad_rows: str = "fail",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> DatasetResult:
    """Plan, score every shard one after another in this process, collect: what the pipeline does with its
    steps, without the fan-out (for tests and for a machine without kfp)."""
    plan = plan_shards(model, input_uri, output_uri, settings, shards=shards, keys=keys, on_bad_rows=on_bad_rows,
                       chunk_rows=chunk_rows)
    results = [score_shard(plan, i, settings) for i in range(len(plan.shards))]
    return collect_shards(plan, results, settings)


def read_dataset(output_uri: str, endpoint: str | None = None, *, quarantine: bool = False) -> pd.DataFrame:
    """The dataset's rows as one frame, in shard order, as its manifest lists them."""
    import io

    manifest = read_manifest(output_uri, endpoint)
    if manifest is None:
        raise InvalidInputError(f"{output_uri} has no {MANIFEST}: not a complete batch dataset", field="output")
    frames = []
    for entry in manifest["shards"]:
        part = entry["quarantine_part" if quarantine else "part"]
        if not part:
            continue
        uri = join(output_uri, part)
        if is_s3(uri):
            bucket, key = split_s3(uri)
            body = s3_client(endpoint).get_object(Bucket=bucket, Key=key)["Body"].read()
            frames.append(pd.read_parquet(io.BytesIO(body)))
        else:
            frames.append(pd.read_parquet(uri))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
