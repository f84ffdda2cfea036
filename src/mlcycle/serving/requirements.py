"""A model's recorded requirements (MLflow's ``requirements.txt``) against the serving environment.

:func:`compare_requirements` parses each line with :class:`packaging.requirements.Requirement` and
looks the distribution up in this environment, understanding equivalent distributions (``xgboost-cpu``
provides ``xgboost``, and the reverse). MLflow records the *exact* versions of the training
environment, which are rarely real constraints, so an ``==`` pin is compared only as precisely as the
package's serialization needs (:data:`PIN_PRECISION`: scikit-learn exactly, because it warns on any
difference when unpickling; numpy/scipy/lightgbm/xgboost by major.minor; mlflow/pandas/cloudpickle by
major); any other specifier (``>=1.2,<2``) is applied as written. A required package that is not
installed at all is a problem unless it is one of the tools MLflow picks up from a training
environment that a model never imports to predict (:data:`NOT_NEEDED_TO_PREDICT`).

:func:`check_model_requirements` raises :class:`~mlcycle.errors.ModelNotServableError` naming the
package and both versions; ``load_model`` calls it before loading, so a mismatch is refused at load
(and at the registration gate through servability), never an ImportError on the first request.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from mlcycle.errors import ModelNotServableError

# Distributions that provide the same import package.
EQUIVALENT: dict[str, tuple[str, ...]] = {
    "xgboost": ("xgboost", "xgboost-cpu"),
    "xgboost-cpu": ("xgboost-cpu", "xgboost"),
    "torch": ("torch", "torch-cpu"),
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "tensorflow-cpu": ("tensorflow-cpu", "tensorflow"),
    "opencv-python": ("opencv-python", "opencv-python-headless"),
}
# package -> how many release components of an == pin must match (None: all of them)
PIN_PRECISION: dict[str, int | None] = {
    "scikit-learn": None,
    "numpy": 2,
    "scipy": 2,
    "skops": 2,
    "lightgbm": 2,
    "xgboost": 2,
    "xgboost-cpu": 2,
    "mlflow": 1,
    "mlflow-skinny": 1,
    "pandas": 1,
    "cloudpickle": 1,
}
NOT_NEEDED_TO_PREDICT = frozenset(
    {"pytest", "psutil", "rich", "ipython", "ipykernel", "jupyter", "notebook", "pip", "setuptools", "wheel"}
)


def installed_version(name: str) -> tuple[str, str] | None:
    """``(distribution, version)`` installed here for ``name`` or an equivalent distribution."""
    for dist in EQUIVALENT.get(name, (name,)):
        try:
            return dist, metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def _pin_matches(name: str, wanted: str, have: str) -> tuple[bool, str]:
    precision = PIN_PRECISION.get(name, 0)
    if precision == 0:
        return True, "installed"
    try:
        a, b = Version(wanted).release, Version(have).release
    except InvalidVersion:
        return wanted == have, "exactly"
    n = precision or max(len(a), len(b))
    how = "exactly" if precision is None else ("major" if precision == 1 else "major.minor")
    return a[:n] == b[:n], how


def compare_requirements(text: str) -> tuple[list[str], dict[str, dict[str, str | None]]]:
    """Every problem (one sentence each) and the table ``{package: {model, installed}}``."""
    problems: list[str] = []
    table: dict[str, dict[str, str | None]] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = canonicalize_name(req.name)
        if name in NOT_NEEDED_TO_PREDICT:
            continue
        found = installed_version(name)
        wanted = str(req.specifier) or "any version"
        table[name] = {"model": wanted, "installed": f"{found[0]}=={found[1]}" if found else None}
        if found is None:
            problems.append(f"{name}{req.specifier} is required by the model but not installed here")
            continue
        dist, have = found
        pins = [s for s in req.specifier if s.operator == "=="]
        if len(pins) == 1 and len(req.specifier) == 1:
            ok, how = _pin_matches(name, pins[0].version, have)
            if not ok:
                problems.append(f"{name} {pins[0].version} (model) vs {have} (installed as {dist}) must match {how}")
        elif req.specifier and not req.specifier.contains(have, prereleases=True):
            problems.append(f"{name}{req.specifier} (model) vs {have} (installed as {dist}) is not compatible")
    return problems, table


def check_model_requirements(local_path: Path | str, uri: str) -> None:
    """Refuse a model whose ``requirements.txt`` this environment does not satisfy.

    Raises:
        ModelNotServableError: with every problem, package and both versions named.
    """
    path = Path(local_path) / "requirements.txt"
    if not path.is_file():
        return
    problems, _ = compare_requirements(path.read_text())
    if problems:
        raise ModelNotServableError(f"not servable: {uri}: " + "; ".join(problems), field="requirements")
