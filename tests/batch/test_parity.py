"""Batch/online parity: the same rows through the running predictor (v2 over HTTP) and through the batch
job give identical predictions and probabilities, row for row, bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcycle.batch import score_batch
from tests.batch.conftest import wine_like
from tests.inference.conftest import start_predictor, stop_predictor

# Uneven request sizes, so rows reach the model in different groupings online than in the batch job.
REQUEST_SIZES = [1, 7, 100, 33, 250]


@pytest.fixture(scope="module")
def predictor(batch_wine, tmp_path_factory):
    """The champion (forest, v1) with the challenger (logistic regression, v2) loaded as a 0% canary, so
    both versions answer on their pinned routes."""
    env = {**batch_wine.env, "MLCYCLE_SERVING_PAYLOAD_LOG": "false"}
    log = tmp_path_factory.mktemp("batch-predictor") / "predictor.log"
    p = start_predictor(
        ["models:/wine@champion", "--canary", "models:/wine@challenger", "--canary-percent", "0"], env, log,
        grpc=False,
    )
    yield p
    stop_predictor(p.proc)


def rows(wine) -> pd.DataFrame:
    frame = pd.concat([wine.X, wine_like(wine.X, 400, seed=11)], ignore_index=True)
    frame.insert(0, "id", np.arange(len(frame)))
    return frame


def online(predictor, frame: pd.DataFrame, version: str, sizes: list[int]) -> tuple[list, np.ndarray]:
    """Every row of ``frame`` through ``/v2/models/wine/versions/<version>/infer``, ``sizes`` rows a request."""
    predictions, probabilities = [], []
    with predictor.client() as client:
        start = 0
        for size in sizes:
            part = frame.iloc[start:start + size]
            if part.empty:
                break
            body = {"inputs": [{"name": c, "shape": [len(part)], "datatype": "FP64", "data": part[c].tolist()}
                               for c in part.columns if c != "id"]}
            r = client.post(f"/v2/models/wine/versions/{version}/infer", json=body)
            assert r.status_code == 200, r.text
            out = {o["name"]: o for o in r.json()["outputs"]}
            predictions += out["predictions"]["data"]
            probabilities.append(np.reshape(out["probabilities"]["data"], out["probabilities"]["shape"]))
            start += size
    assert start >= len(frame)
    return predictions, np.concatenate(probabilities)


def batch_scores(wine, tmp_path, ref: str, frame: pd.DataFrame, chunk_rows: int) -> pd.DataFrame:
    frame.to_csv(tmp_path / "in.csv", index=False)
    score_batch(ref, str(tmp_path / "in.csv"), str(tmp_path / "out.parquet"), wine.settings, chunk_rows=chunk_rows)
    batch = pd.read_parquet(tmp_path / "out.parquet")
    assert batch["id"].tolist() == frame["id"].tolist()
    assert (batch["model_version"] == ref_version(ref)).all()
    return batch


def ref_version(ref: str) -> str:
    return {"models:/wine@champion": "1", "models:/wine@challenger": "2"}[ref]


def proba(batch: pd.DataFrame) -> np.ndarray:
    return batch[["proba_0", "proba_1", "proba_2"]].to_numpy()


def not_vacuous(predictions: list, probabilities: np.ndarray) -> None:
    """The rows span every class and the probabilities are not all one-hot."""
    assert set(predictions) == {0, 1, 2} and ((probabilities > 0) & (probabilities < 1)).any()


def test_forest_champion_batch_equals_the_predictor_bit_for_bit(predictor, wine, tmp_path):
    frame = rows(wine)
    batch = batch_scores(wine, tmp_path, "models:/wine@champion", frame, chunk_rows=128)
    predictions, probabilities = online(predictor, frame, "1", REQUEST_SIZES * 3)
    assert batch["prediction"].tolist() == predictions
    np.testing.assert_array_equal(proba(batch), probabilities)  # exact, however the rows are grouped
    not_vacuous(predictions, probabilities)


def test_linear_challenger_batch_equals_the_predictor_for_the_same_grouping(predictor, wine, tmp_path):
    """A linear model's probabilities come from a matrix product; BLAS may sum a row's terms in another
    order for another number of rows, so online answers themselves move in the last bits with micro-batch
    size. Grouped as the batch job groups them (one request per chunk), the answers are identical; grouped
    otherwise, predictions are identical and probabilities agree to a few units in the last place."""
    frame = rows(wine)
    batch = batch_scores(wine, tmp_path, "models:/wine@challenger", frame, chunk_rows=128)
    predictions, probabilities = online(predictor, frame, "2", [128] * 5)
    assert batch["prediction"].tolist() == predictions
    np.testing.assert_array_equal(proba(batch), probabilities)
    not_vacuous(predictions, probabilities)

    predictions, probabilities = online(predictor, frame, "2", REQUEST_SIZES * 3)
    assert batch["prediction"].tolist() == predictions
    np.testing.assert_array_max_ulp(proba(batch), probabilities, maxulp=64)
