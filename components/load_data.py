"""Component: load, validate and split a data source."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Output

from mlcycle.config import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def load_data(
    dataset: str,
    target: str,
    model_name: str,
    team: str,
    test_size: float,
    seed: int,
    train_data: Output[Dataset],
    test_data: Output[Dataset],
    task: str = "",
) -> NamedTuple("LoadedData", [("target", str), ("data_hash", str), ("registered_name", str), ("rows", int)]):
    """Load a data source, check its schema and quality, and split it into train and test sets.

    Args:
        dataset: ``wine``, ``breast_cancer``, ``synthetic[:rows=N,...]``, or a CSV/Parquet path or s3:// URI.
        target: target column (empty for the built-in sets).
        model_name: registered-model name; empty means the dataset's name.
        team: the team whose namespace and registry prefix this run uses (empty: none).
        test_size: share of rows held out for evaluation.
        seed: random seed for the split.
        train_data: the training split (Parquet).
        test_data: the holdout split (Parquet).
        task: ``classification`` (class rules, stratified split) or ``regression``; empty: from the target.

    Returns:
        target: the target column; data_hash: SHA-256 of the loaded table; registered_name: the
        team-qualified model name; rows: number of rows loaded.
    """
    from collections import namedtuple

    from mlcycle import lifecycle
    from mlcycle.tracking import configured_settings

    settings = configured_settings()
    name = lifecycle.resolve_registered_name(dataset, model_name, team, settings)
    prepared = lifecycle.prepare_data(dataset, target or None, train_data.path, test_data.path,
                                      test_size=test_size, seed=seed, endpoint_url=settings.s3_endpoint_url,
                                      task=task)
    return namedtuple("LoadedData", "target data_hash registered_name rows")(
        prepared.target, prepared.data_hash, name, prepared.rows)
