#!/usr/bin/env bash
# Installs the Debian packages whose servers and tools the test suite starts on loopback: PostgreSQL
# (MLflow's backend), Prometheus + promtool, Pushgateway, wrk and h2load (load), and the container engine of
# tests/containers (podman with runc, debootstrap for the offline base image). `make test` runs this first.
# Idempotent: does nothing when everything is there. As root (or with passwordless sudo) it installs what
# is missing; otherwise it stops with one line naming the packages and the command — the tests that need
# them are never skipped silently.
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-pushgateway >/dev/null 2>&1 || need+=(prometheus-pushgateway)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
# Where docker answers, the container tier uses it; otherwise podman (runc: crun refuses cgroups v1 hybrid).
if ! { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }; then
  for tool in podman runc debootstrap; do command -v $tool >/dev/null 2>&1 || need+=($tool); done
  command -v podman >/dev/null 2>&1 || need+=(buildah fuse-overlayfs slirp4netns uidmap)
fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi

if [ "$(id -u)" -eq 0 ]; then sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo=(sudo -n)
else
  echo "the tests need Debian packages that are missing: ${need[*]} — install them with" \
       "'sudo apt-get install -y --no-install-recommends ${need[*]}' (or run 'make test' as root)" >&2
  exit 1
fi
echo "installing Debian packages for the tests: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
# policy-rc.d stops the packages from starting system services: the tests start their own, on free ports.
printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
"${sudo[@]}" chmod +x /usr/sbin/policy-rc.d
trap '"${sudo[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
