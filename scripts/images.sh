#!/usr/bin/env bash
# Builds the two mlcycle images (Dockerfile targets `component` and `predictor`) with whichever engine is
# here: docker if it answers, else podman with a private configuration that works on these machines.
#
#   bash scripts/images.sh          build both images and print their sizes (what `make images` runs)
#   bash scripts/images.sh env      print ENGINE=... and the variables every podman process needs
#   bash scripts/images.sh base     build only the offline base image
#
# Podman on a 2-core CI VM with cgroups v1 hybrid and no right to raise rlimits (measured, see
# docs/containers.md): runc (crun refuses hybrid cgroups), cgroupfs, fixed default ulimits, file events,
# overlay storage in MLCYCLE_CONTAINERS_DIR (default /var/tmp/mlcycle-containers, outside the clone) so the
# layer cache survives between runs. When no registry answers, the base image is built offline from
# Debian's packages (debootstrap bookworm: Python 3.11, the lock's Python) with the host's CA bundle, so that
# pip inside the build trusts an intercepting proxy.
#
# Environment: MLCYCLE_BASE_IMAGE (default python:3.11-slim if a registry answers, else the offline base),
# MLCYCLE_IMAGE_REPOSITORY (default ghcr.io/mlcycle/mlcycle), MLCYCLE_CONTAINER_ENGINE (docker|podman).
#
# Each image carries the label mlcycle.source-digest: a hash of the build context (the files .dockerignore
# lets in), the Dockerfile and the base's name. An image whose label equals this source's digest is not rebuilt
# (the container tests build once per session this way); any other change rebuilds over the layer cache.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${MLCYCLE_CONTAINERS_DIR:-/var/tmp/mlcycle-containers}
OFFLINE_BASE=localhost/mlcycle-base:bookworm
REPO=${MLCYCLE_IMAGE_REPOSITORY:-ghcr.io/mlcycle/mlcycle}
PY=.venv/bin/python; [ -x "$PY" ] || PY=python3

engine() {
  if [ -n "${MLCYCLE_CONTAINER_ENGINE:-}" ]; then echo "$MLCYCLE_CONTAINER_ENGINE"
  elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then echo docker
  elif command -v podman >/dev/null 2>&1; then echo podman
  else echo "no container engine: install podman (scripts/install-debian-deps.sh does, as root) or docker" >&2
       return 1; fi
}

podman_config() {
  mkdir -p "$DIR/storage" "$DIR/run" "$DIR/tmp"
  cat > "$DIR/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
image_copy_tmp_dir = "$DIR/tmp"
CONF
  cat > "$DIR/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$DIR/storage"
runroot = "$DIR/run"
CONF
  export CONTAINERS_CONF="$DIR/containers.conf" CONTAINERS_STORAGE_CONF="$DIR/storage.conf" TMPDIR="$DIR/tmp"
}

ENGINE=$(engine)
if [ "$ENGINE" = podman ]; then podman_config; fi

if [ "${1:-}" = env ]; then
  echo "ENGINE=$ENGINE"
  if [ "$ENGINE" = podman ]; then
    echo "CONTAINERS_CONF=$CONTAINERS_CONF"; echo "CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF"
  fi
  exit 0
fi

# The offline base: a minimal Debian with Python 3.11, venv and the host's CA certificates.
build_offline_base() {
  if $ENGINE image exists "$OFFLINE_BASE" 2>/dev/null \
     || { [ "$ENGINE" = docker ] && docker image inspect "$OFFLINE_BASE" >/dev/null 2>&1; }; then return 0; fi
  command -v debootstrap >/dev/null || { echo "the offline base needs debootstrap (apt-get install debootstrap)" >&2; exit 1; }
  local mirror rootfs
  # The Debian mirror apt already uses (it answers where a public registry may not).
  mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 2>/dev/null \
           | awk '$2 == "bookworm" && $3 == "main" {print $1; exit}' || true)
  rootfs=$(mktemp -d "$DIR/tmp/rootfs.XXXXXX")
  echo "building the offline base $OFFLINE_BASE (debootstrap bookworm from ${mirror:-http://deb.debian.org/debian})" >&2
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" \
    "${mirror:-http://deb.debian.org/debian}" >"$DIR/tmp/debootstrap.log" 2>&1 \
    || { tail -20 "$DIR/tmp/debootstrap.log" >&2; exit 1; }
  # The host's trust store (it may hold an intercepting proxy's CA) replaces the base's.
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc \
         "$rootfs"/usr/share/man "$rootfs"/usr/share/locale
  tar -C "$rootfs" -c . | $ENGINE import \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["/usr/bin/python3"]' --quiet - "$OFFLINE_BASE" >/dev/null
  rm -rf "$rootfs"
}

if [ "${1:-}" = base ]; then build_offline_base; exit 0; fi

# The build context's files (as .dockerignore selects them), the Dockerfile and the base, hashed.
source_digest() {
  { find requirements/runtime.txt pyproject.toml README.md src components pipelines inference -type f \
      ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    sha256sum Dockerfile .dockerignore; echo "base $1"; } | sha256sum | cut -c1-32
}

BASE=${MLCYCLE_BASE_IMAGE:-}
if [ -z "$BASE" ]; then
  if timeout 20 $ENGINE pull -q python:3.11-slim >/dev/null 2>&1; then BASE=python:3.11-slim
  else build_offline_base; BASE=$OFFLINE_BASE; fi
elif [ "$BASE" = "$OFFLINE_BASE" ]; then build_offline_base
fi

DIGEST=$(source_digest "$BASE")
FORMAT=; [ "$ENGINE" = podman ] && FORMAT=docker
VERSION=$($PY -c 'import mlcycle; print(mlcycle.__version__)')
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
for target in component predictor; do
  tag="$REPO:$VERSION"; [ "$target" = predictor ] && tag="$REPO-predictor:$VERSION"
  have=$($ENGINE image inspect --format '{{ index .Config.Labels "mlcycle.source-digest" }}' "$tag" 2>/dev/null || true)
  if [ "$have" = "$DIGEST" ]; then echo "$tag is up to date (source digest $DIGEST)" >&2; continue; fi
  start=$(date +%s)
  # --network=host: pip reaches the package index through the host's network (and proxy).
  # podman: the docker image format, which keeps the predictor's HEALTHCHECK (OCI has none).
  $ENGINE build --network=host -q ${FORMAT:+--format "$FORMAT"} --target "$target" -t "$tag" \
    --label "mlcycle.source-digest=$DIGEST" \
    --build-arg BASE_IMAGE="$BASE" --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" \
    -f Dockerfile . >/dev/null
  echo "built $tag from $BASE in $(( $(date +%s) - start )) s" >&2
done
$ENGINE images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -F "$REPO" | sort
