#!/usr/bin/env bash
# make images: build the serving and training images (docker/*.Dockerfile) from the repo root.
#   IMAGE_REPO  where to tag (and with --push, push) the images; default: local names
#               e.g. europe-west1-docker.pkg.dev/salesloop-dev/salesloop
#   IMAGE_TAG   default: the current commit (short sha), so an image names its source
# Without a Docker engine (as on the development machines) it says so and exits 0, unless
# REQUIRE_DOCKER=1 (CI's deploy job sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
push=0
[[ "${1:-}" == "--push" ]] && push=1
repo="${IMAGE_REPO:-salesloop}"
tag="${IMAGE_TAG:-$(git rev-parse --short HEAD 2>/dev/null || echo dev)}"
if ! docker info >/dev/null 2>&1; then
  if [[ "${REQUIRE_DOCKER:-0}" == "1" ]]; then
    echo "images: no Docker engine reachable" >&2
    exit 1
  fi
  echo "images: no Docker engine here; skipped (set REQUIRE_DOCKER=1 to make this an error)"
  exit 0
fi
for image in serving training; do
  ref="${repo}/${image}:${tag}"
  echo "images: building ${ref}"
  DOCKER_BUILDKIT=1 docker build --pull -f "docker/${image}.Dockerfile" -t "${ref}" .
  if [[ "${push}" == "1" ]]; then
    docker push "${ref}"
  fi
done
