"""Data: loading sources, quality rules, the train/test split, and content hashes for lineage."""

from mlcycle.data.datasets import content_hash, dataset_name, load_dataset
from mlcycle.data.validation import QualityRules, split_dataset, validate_dataset

__all__ = ["QualityRules", "content_hash", "dataset_name", "load_dataset", "split_dataset", "validate_dataset"]
