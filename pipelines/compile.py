"""Compile every pipeline to KFP YAML under ``pipelines/compiled/`` (``mlcycle compile``)."""

from __future__ import annotations

from pathlib import Path

COMPILED_DIR = Path(__file__).resolve().parent / "compiled"


def pipelines() -> dict:
    """Pipeline name → pipeline function, for every pipeline the project ships."""
    from pipelines.training_pipeline import training_pipeline

    found = {"training_pipeline": training_pipeline}
    try:
        from pipelines.monitoring_pipeline import monitoring_pipeline
    except ImportError:
        pass
    else:
        found["monitoring_pipeline"] = monitoring_pipeline
    try:
        from pipelines.batch_pipeline import batch_pipeline, sharded_batch_pipeline
    except ImportError:
        pass
    else:
        found["batch_pipeline"] = batch_pipeline
        found["sharded_batch_pipeline"] = sharded_batch_pipeline
    return found


def compile_all(out_dir: Path = COMPILED_DIR) -> list[Path]:
    from kfp import compiler

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, func in pipelines().items():
        path = out_dir / f"{name}.yaml"
        compiler.Compiler().compile(func, str(path))
        written.append(path)
    return written
