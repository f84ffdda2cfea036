# syntax=docker/dockerfile:1
# The mlcycle component image: every kfp step of every pipeline runs in it (Settings.image,
# ghcr.io/mlcycle/mlcycle:<mlcycle.__version__>, compiled into pipelines/compiled/*.yaml).
#
# NOT BUILT HERE: the development machine has no container runtime, so this file has not been built or
# run. It is kept plain so that it can be checked by reading. Build from the repository root:
#   docker build -t ghcr.io/mlcycle/mlcycle:$(python -c 'import mlcycle; print(mlcycle.__version__)') .
#
# The steps are Lightweight Python Components compiled with install_kfp_package=False and no
# packages_to_install: kfp ships the function's source and runs it with this image's `python3`, which
# must already have mlcycle (and so kfp) installed. Runs as a non-root user (uid 10001, as the
# predictor image); kfp writes outputs under /tmp and the mounted artifact paths.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY components ./components
COPY pipelines ./pipelines
COPY inference ./inference
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install . \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} +

FROM python:${PYTHON_VERSION}-slim
RUN groupadd --gid 10001 mlcycle \
 && useradd --uid 10001 --gid 10001 --home-dir /home/mlcycle --create-home --shell /usr/sbin/nologin mlcycle
COPY --from=build /opt/venv /opt/venv
# python3 must resolve to the venv: kfp's step command calls `python3`.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/mlcycle \
    MLCYCLE_HOME=/tmp/mlcycle \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true
USER 10001:10001
WORKDIR /home/mlcycle
ENTRYPOINT []
CMD ["mlcycle", "--help"]
