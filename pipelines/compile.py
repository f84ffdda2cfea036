"""Compile every pipeline to KFP YAML under ``pipelines/compiled/`` (``mlcycle compile``)."""

from __future__ import annotations

from pathlib import Path

COMPILED_DIR = Path(__file__).resolve().parent / "compiled"


def pipelines() -> dict:
    """Pipeline name → pipeline function, for every pipeline the project ships."""
    from pipelines.training_pipeline import parallel_training_pipeline, training_pipeline

    found = {"training_pipeline": training_pipeline, "parallel_training_pipeline": parallel_training_pipeline}
    try:
        from pipelines.registration_pipeline import registration_pipeline
    except ImportError:
        pass
    else:
        found["registration_pipeline"] = registration_pipeline
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


def use_image(path: Path, image: str) -> Path:
    """Point every step of the compiled pipeline at ``path`` that runs mlcycle's image at ``image`` instead.

    ``image`` is a user image built ``FROM`` mlcycle's (so a ``--trainer`` module is importable in the
    steps); steps on other images are left alone. The YAML is parsed and written back, never edited as text.
    """
    import yaml

    from mlcycle.config import COMPONENT_IMAGE
    from mlcycle.errors import InvalidInputError

    if not image or any(c.isspace() for c in image):
        raise InvalidInputError(f"--image {image!r} is not an image reference", field="image")
    documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    for document in documents:
        executors = (document or {}).get("deploymentSpec", {}).get("executors", {})
        for executor in executors.values():
            container = executor.get("container", {})
            if container.get("image") == COMPONENT_IMAGE:
                container["image"] = image
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False), encoding="utf-8")
    return path


def compile_all(out_dir: Path = COMPILED_DIR, image: str | None = None) -> list[Path]:
    """Compile every pipeline to ``out_dir``; with ``image``, for a user image built FROM mlcycle's."""
    from kfp import compiler

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, func in pipelines().items():
        path = out_dir / f"{name}.yaml"
        compiler.Compiler().compile(func, str(path))
        if image:
            use_image(path, image)
        written.append(path)
    return written
