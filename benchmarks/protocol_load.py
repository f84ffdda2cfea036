"""gRPC vs REST for 1-row requests, from one bounded Python load generator (no ghz on this machine).

Both protocols are driven by the same asyncio process with ``concurrency`` outstanding requests, for
at most ``seconds`` and ``max_requests``: REST as prebuilt HTTP/1.1 keep-alive requests on raw sockets
(one per concurrent stream; the response is read by its Content-Length, not parsed), gRPC as one
``ModelInferRequest`` (FP64 contents) serialised once, sent as those bytes on one ``grpc.aio`` channel
and its response taken as bytes, not parsed (the same client-side work as REST's; the first answer is
parsed to check it). The generator shares the cores with the server, so the absolute figures are
lower than wrk's; the ratio between the two is the point.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np
import orjson


@dataclass
class LoadResult:
    protocol: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _summary(protocol: str, latencies: list[float], errors: int, seconds: float) -> LoadResult:
    lat = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    p50, p99 = (float(np.percentile(lat, q)) for q in (50, 99))
    return LoadResult(protocol, len(latencies), errors, seconds, p50, p99)


async def _rest(host: str, port: int, path: str, body: dict, concurrency: int, seconds: float, cap: int) -> LoadResult:
    payload = orjson.dumps(body)
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def stream() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline and len(latencies) < cap:
                t0 = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                if not head.startswith(b"HTTP/1.1 200"):
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t0)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(stream() for _ in range(concurrency)))
    return _summary("REST (v2 JSON)", latencies, errors, time.perf_counter() - started)


async def _grpc(target: str, model: str, row: np.ndarray, concurrency: int, seconds: float, cap: int) -> LoadResult:
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pbg

    request = pb.ModelInferRequest(
        model_name=model,
        inputs=[
            pb.ModelInferRequest.InferInputTensor(
                name="input-0",
                datatype="FP64",
                shape=list(row.shape),
                contents=pb.InferTensorContents(fp64_contents=row.ravel().tolist()),
            )
        ],
    )
    latencies: list[float] = []
    errors = 0
    payload = request.SerializeToString()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pbg.GRPCInferenceServiceStub(channel)
        first = await stub.ModelInfer(request, timeout=30)  # connect and warm up
        if not first.outputs:
            raise RuntimeError(f"gRPC answered without outputs: {first}")
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")  # bytes in, bytes out
        deadline = time.perf_counter() + seconds

        async def stream() -> None:
            nonlocal errors
            while time.perf_counter() < deadline and len(latencies) < cap:
                t0 = time.perf_counter()
                try:
                    await infer(payload, timeout=30)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(stream() for _ in range(concurrency)))
    return _summary("gRPC (v2)", latencies, errors, time.perf_counter() - started)


def compare(
    host: str,
    http_port: int,
    grpc_port: int,
    model: str,
    columns: list[str],
    row: np.ndarray,
    *,
    concurrency: int = 8,
    seconds: float = 5.0,
    max_requests: int = 200_000,
) -> list[LoadResult]:
    """REST then gRPC then REST again (the better REST run counts: the machine is shared)."""
    body = {
        "inputs": [
            {"name": c, "datatype": "FP64", "shape": [1, 1], "data": [float(row[0, i])]} for i, c in enumerate(columns)
        ]
    }
    path = f"/v2/models/{model}/infer"
    runs = [
        asyncio.run(_rest(host, http_port, path, body, concurrency, seconds, max_requests)),
        asyncio.run(_grpc(f"{host}:{grpc_port}", model, row, concurrency, seconds, max_requests)),
        asyncio.run(_rest(host, http_port, path, body, concurrency, seconds, max_requests)),
    ]
    rest = max((r for r in runs if r.protocol.startswith("REST")), key=lambda r: r.rps)
    return [rest, runs[1]]
