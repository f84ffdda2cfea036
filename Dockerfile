# syntax=docker/dockerfile:1
# The mlcycle images, two targets over shared stages (built and tested here: `make images`,
# tests/containers/):
#   component  ghcr.io/mlcycle/mlcycle:<version>            every kfp step (Settings.image, COMPONENT_IMAGE)
#   predictor  ghcr.io/mlcycle/mlcycle-predictor:<version>  `python -m inference <model URI>` (the ServingRuntime)
#
# Both carry exactly the runtime lock (requirements/runtime.txt: hashed, --no-deps, nothing resolved at build
# time; the predictor without the monitoring stack it never imports), then the mlcycle wheel with --no-deps.
# The base is a build argument: a public python:3.11-slim, or the offline Debian base scripts/images.sh
# builds from Debian's packages when no registry answers (its python3 is Debian's 3.11). Every stage starts
# from that one base: the venv links to the base's python3.
#
# Runtime: uid 10001, no writes outside /tmp (HOME and MLCYCLE_HOME live there), so a read-only root file
# system with an emptyDir on /tmp works (the ServingRuntime's securityContext). The predictor's entry point
# and health check are exec-form Python: no shell is needed. kfp runs a component step as `sh -c ...`
# (its Lightweight Python Component launcher), which both bases have.

ARG BASE_IMAGE=python:3.11-slim

# The predictor's set: the lock without the monitoring stack the predictor never imports (evidently and the
# packages only it needs: plotly, statsmodels, ...; ~330 MB), so that the predictor image stays under 1.2 GB.
# The lock is split by package name, hashes kept (/opt/lock/serving.txt, /opt/lock/monitoring.txt); these
# big layers are reused until requirements/runtime.txt (or the base) changes. The packages' own test suites
# are never imported at run time (~160 MB); everything is byte-compiled at build time, since a read-only
# root file system cannot cache .pyc files at run time.
FROM ${BASE_IMAGE} AS serving
ARG NOT_SERVED="evidently plotly statsmodels patsy formulaic interface-meta nltk faker litestar litestar-htmx polyfactory dynaconf iterative-telemetry"
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN groupadd --gid 10001 mlcycle \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin mlcycle \
 && python3 -m venv /opt/venv
COPY requirements/runtime.txt /opt/lock/runtime.txt
RUN cd /opt/lock \
 && awk -v names="$NOT_SERVED" -v out=monitoring.txt 'BEGIN { n = split(names, a, " "); for (i = 1; i <= n; i++) skip[a[i]] = 1 } \
      /^[A-Za-z0-9]/ { name = tolower($1); sub(/[=\[;].*/, "", name); gsub(/[_.]/, "-", name); drop = (name in skip) } \
      { if (drop) print > out; else print }' runtime.txt > serving.txt \
 && test "$(grep -c '^[a-z]' monitoring.txt)" -eq "$(echo $NOT_SERVED | wc -w)" \
 && /opt/venv/bin/pip install --quiet --require-hashes --no-deps -r serving.txt \
 && /opt/venv/bin/pip check \
 && find /opt/venv/lib/python3.11/site-packages -type d \( -name tests -o -name test \) -prune -exec rm -rf {} + \
 && /opt/venv/bin/python -m compileall -q -j 0 /opt/venv/lib >/dev/null
# python3 resolves to the venv (kfp's step command calls `python3`); nothing writes outside /tmp.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    USER=mlcycle \
    MLCYCLE_HOME=/tmp/mlcycle \
    MPLCONFIGDIR=/tmp/matplotlib \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true
LABEL org.opencontainers.image.source="https://github.com/mlcycle/mlcycle" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="mlcycle"
WORKDIR /tmp

# The component image's set: the whole lock.
FROM serving AS monitoring
RUN pip install --quiet --require-hashes --no-deps -r /opt/lock/monitoring.txt \
 && pip check \
 && find /opt/venv/lib/python3.11/site-packages -type d \( -name tests -o -name test \) -prune -exec rm -rf {} + \
 && python -m compileall -q -j 0 /opt/venv/lib >/dev/null

# The mlcycle wheel, built with pip's isolated build (hatchling, the build tool only: it does not reach the
# images). Source changes rebuild from here: small layers.
FROM serving AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY components ./components
COPY pipelines ./pipelines
COPY inference ./inference
RUN pip wheel --quiet --no-deps --wheel-dir /wheel .

# Each target: its set, then the wheel with --no-deps over it; the version labels last, so that a new commit
# does not invalidate the big layers.
FROM monitoring AS component
COPY --from=wheel /wheel /wheel
RUN pip install --quiet --no-deps /wheel/*.whl && pip check \
 && rm -rf /wheel && python -m compileall -q /opt/venv/lib >/dev/null
USER 10001:10001
ARG VERSION=0.0.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="mlcycle" \
      org.opencontainers.image.description="mlcycle's kfp pipeline steps (Lightweight Python Components)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
ENTRYPOINT []
CMD ["mlcycle", "--help"]

# Last, so that a plain `docker build .` gives the predictor. pip check may report mlcycle's evidently
# requirement (left out above) and nothing else.
FROM serving AS predictor
COPY --from=wheel /wheel /wheel
RUN pip install --quiet --no-deps /wheel/*.whl \
 && { pip check || true; } | { ! grep -v -E '^mlcycle [^ ]+ requires evidently, which is not installed'; } \
 && rm -rf /wheel && python -m compileall -q /opt/venv/lib >/dev/null
USER 10001:10001
ARG VERSION=0.0.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="mlcycle-predictor" \
      org.opencontainers.image.description="mlcycle's KServe predictor (v1/v2 REST, v2 gRPC, /metrics)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
  CMD ["python3", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/v2/health/ready').status != 200)"]
# The predictor binds 127.0.0.1 unless told otherwise; in a container it listens on every interface.
ENTRYPOINT ["python3", "-m", "inference", "--host", "0.0.0.0", "--http-port", "8080", "--grpc-port", "8081"]
# The model(s) to serve; override with `docker run <image> models:/<name>@champion`.
CMD ["models:/wine@champion"]
