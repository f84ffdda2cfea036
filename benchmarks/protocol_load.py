"""gRPC vs REST for 1-row requests, both driven by h2load (nghttp2's C load generator; no ghz here).

One tool for both protocols, so neither pays for a heavier client on the shared cores (the Python
generator this replaced spent more CPU per gRPC call, in ``grpc.aio``'s client, than per raw-socket REST
call). REST is HTTP/1.1 keep-alive (``--h1``) on ``concurrency`` connections, one request outstanding on
each, as wrk drives it. gRPC is ``ModelInfer`` over h2c with the request serialised once (FP64
contents), run two ways, the better counting: ``concurrency`` streams on one connection (one channel,
as a gRPC client multiplexes) and ``concurrency`` connections with one stream each. Each run lasts at
most ``seconds`` after a one-second warm-up; latencies come from h2load's per-request log.

h2load sees HTTP status, not gRPC's: a failed call is still HTTP 200, with its grpc-status in the
trailers and no DATA frame. So the first answer is taken with a real gRPC client and checked, and a run
counts as errors the calls whose answer bytes are missing (h2load's DATA total against the checked
answer's length times the calls).
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

GRPC_PATH = "/inference.GRPCInferenceService/ModelInfer"


@dataclass
class LoadResult:
    protocol: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    shape: str = ""  # connections x streams

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def h2load(
    url: str, body: Path, headers: list[str], *, connections: int, streams: int, seconds: float, h1: bool
) -> tuple[list[float], int, float, int]:
    """One h2load run: (latencies in seconds of the 2xx answers, other answers, seconds measured, DATA bytes)."""
    if shutil.which("h2load") is None:
        raise RuntimeError("h2load is missing: bash scripts/install-debian-deps.sh installs nghttp2-client")
    with tempfile.TemporaryDirectory() as tmp:
        log_file = Path(tmp) / "requests.tsv"
        args = ["h2load", "-c", str(connections), "-m", str(streams), "-D", str(seconds), "--warm-up-time", "1"]
        args += [f"--log-file={log_file}", "-d", str(body), *[a for h in headers for a in ("-H", h)]]
        if h1:
            args.append("--h1")
        done = subprocess.run([*args, url], capture_output=True, text=True, timeout=seconds + 60, check=False)
        finished = re.search(r"finished in [\d.]+s", done.stdout)
        data = re.search(r"traffic: .* \((\d+)\) data", done.stdout)
        if done.returncode != 0 or not finished or not data:
            raise RuntimeError(f"h2load failed ({done.returncode}): {done.stdout[-500:]} {done.stderr[-500:]}")
        rows = [line.split("\t") for line in log_file.read_text().splitlines() if line]
    latencies = [int(r[2]) / 1e6 for r in rows if r[1].startswith("2")]
    # h2load's "finished in" counts the warm-up too; its log and totals hold the measured window only
    return latencies, len(rows) - len(latencies), seconds, int(data.group(1))


def _result(protocol: str, shape: str, lat: list[float], errors: int, seconds: float) -> LoadResult:
    """``lat``: the latencies of every HTTP-2xx answer, of which ``errors`` were failures all the same."""
    ms = np.asarray(lat) * 1000 if lat else np.zeros(1)
    p50, p99 = (float(np.percentile(ms, q)) for q in (50, 99))
    return LoadResult(protocol, len(lat) - errors, errors, seconds, p50, p99, shape)


def rest(host: str, port: int, path: str, body: dict, concurrency: int, seconds: float, work: Path) -> LoadResult:
    body_path = work / "rest-1.json"
    body_path.write_bytes(orjson.dumps(body))
    lat, refused, took, _ = h2load(
        f"http://{host}:{port}{path}",
        body_path,
        ["content-type: application/json"],
        connections=concurrency,
        streams=1,
        seconds=seconds,
        h1=True,
    )
    result = _result("REST (v2 JSON)", f"{concurrency}x1", lat, 0, took)
    result.errors = refused
    return result


def grpc_request(model: str, row: np.ndarray) -> bytes:
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    tensor = pb.ModelInferRequest.InferInputTensor(
        name="input-0",
        datatype="FP64",
        shape=list(row.shape),
        contents=pb.InferTensorContents(fp64_contents=row.ravel().tolist()),
    )
    return pb.ModelInferRequest(model_name=model, inputs=[tensor]).SerializeToString()


def checked_answer_length(target: str, payload: bytes) -> int:
    """One real gRPC call: the answer must have outputs; returns its length as framed on the wire."""
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    with grpc.insecure_channel(target) as channel:
        answer = channel.unary_unary(GRPC_PATH)(payload, timeout=30)
    if not pb.ModelInferResponse.FromString(answer).outputs:
        raise RuntimeError(f"gRPC at {target} answered without outputs")
    return 5 + len(answer)  # gRPC's length-prefixed message: 1 flag byte, 4 length bytes


def grpc(host: str, port: int, model: str, row: np.ndarray, concurrency: int, seconds: float, work: Path) -> LoadResult:
    payload = grpc_request(model, row)
    body_path = work / "grpc-1.bin"
    body_path.write_bytes(b"\x00" + struct.pack(">I", len(payload)) + payload)
    answer = checked_answer_length(f"{host}:{port}", payload)
    runs = []
    for connections, streams in ((1, concurrency), (concurrency, 1)):
        lat, refused, took, data = h2load(
            f"http://{host}:{port}{GRPC_PATH}",
            body_path,
            ["content-type: application/grpc", "te: trailers"],
            connections=connections,
            streams=streams,
            seconds=seconds,
            h1=False,
        )
        errors = max(0, len(lat) - data // answer)  # answers without their message bytes: non-OK grpc-status
        result = _result("gRPC (v2)", f"{connections}x{streams}", lat, errors, took)
        result.errors += refused
        runs.append(result)
    return max(runs, key=lambda r: r.rps)


def compare(
    host: str,
    http_port: int,
    grpc_port: int,
    model: str,
    columns: list[str],
    row: np.ndarray,
    *,
    concurrency: int = 32,
    seconds: float = 5.0,
) -> list[LoadResult]:
    """REST then gRPC then REST again (the better REST run counts: the machine is shared)."""
    body = {
        "inputs": [
            {"name": c, "datatype": "FP64", "shape": [1, 1], "data": [float(row[0, i])]} for i, c in enumerate(columns)
        ]
    }
    path = f"/v2/models/{model}/infer"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        runs = [
            rest(host, http_port, path, body, concurrency, seconds, work),
            grpc(host, grpc_port, model, row, concurrency, seconds, work),
            rest(host, http_port, path, body, concurrency, seconds, work),
        ]
    best_rest = max((r for r in runs if r.protocol.startswith("REST")), key=lambda r: r.rps)
    return [best_rest, runs[1]]
