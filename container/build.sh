#!/usr/bin/env bash
# Build, publish and save the container images. An image is a folder with a Dockerfile under
# container/ (container/infer/Dockerfile is the image ei-infer), found by looking, so a new
# folder is a new image with no change here. The build context is the repository root (what
# goes into it is decided by .dockerignore). doc/images.md describes the images.
set -euo pipefail

prog=${0##*/}
container_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(dirname "$container_dir")
# Another client with docker's command line (podman, nerdctl) may stand in.
docker=${DOCKER:-docker}

usage() {
    cat <<EOF
usage: $prog -r REGISTRY [-a ACTION] [-c COMPONENTS] [-g TAG] [-o DIR] [-n] [-h] [-- BUILD_ARGS...]

Build, publish or save the Elastic Inference images, one per folder container/*/Dockerfile,
each named REGISTRY/ei-COMPONENT:TAG.

  -r REGISTRY    registry and namespace to tag and push to, e.g. docker.io/myname,
                 ghcr.io/myorg or localhost:5000 (required)
  -a ACTION      build (default): docker build
                 publish: docker push
                 save: docker save, one tarball per image into DIR
                 all: build every image, then push every image, then save every image
  -c COMPONENTS  all (default) or a comma-separated list of: ${components[*]}
  -g TAG         image tag (default: $default_tag, as tools/gen-k8s-yaml.sh -t; give the
                 release's version, e.g. -g $version, for images that must not change)
  -o DIR         where save writes ei-COMPONENT-TAG.tar (default: dist/images in the
                 repository, which git ignores)
  -n             dry run: print the commands instead of running them
  -h             show this help
  -- BUILD_ARGS  further arguments for docker build, e.g. -- --platform linux/arm64 --pull

Environment: DOCKER (default: docker), another client with docker's command line such as
podman; SOURCE_DATE_EPOCH, the image creation time (default: now).

Examples:
  $prog -r localhost:5000 -c infer -n
  $prog -r docker.io/myname -a all -g $version
  $prog -r ghcr.io/myorg -c stream,gateway -a save -o /tmp/images
EOF
}

# usage_error MESSAGE: a mistake on the command line; exit status 2 like other tools' usage.
usage_error() {
    printf '%s: %s\n' "$prog" "$*" >&2
    printf "run '%s -h' for help\n" "$prog" >&2
    exit 2
}

die() {
    printf '%s: %s\n' "$prog" "$*" >&2
    exit 1
}

# The images: every folder of container/ that holds a Dockerfile, in name order.
components=()
shopt -s nullglob
for dockerfile in "$container_dir"/*/Dockerfile; do
    components+=("$(basename "$(dirname "$dockerfile")")")
done
shopt -u nullglob

# The package version (setup.cfg) labels the image (org.opencontainers.image.version); the tag
# defaults to latest, as tools/gen-k8s-yaml.sh's does, so that the two agree unless told.
version=$(sed -n 's/^version[[:space:]]*=[[:space:]]*//p' "$repo_root/setup.cfg" 2>/dev/null \
    | head -n 1 || true)
version=${version:-unknown}
default_tag=latest

registry=""
action=build
selection=all
tag=$default_tag
out_dir=$repo_root/dist/images
dry_run=false

while getopts ":r:a:c:g:o:nh" opt; do
    case "$opt" in
        r) registry=$OPTARG ;;
        a) action=$OPTARG ;;
        c) selection=$OPTARG ;;
        g) tag=$OPTARG ;;
        o) out_dir=$OPTARG ;;
        n) dry_run=true ;;
        h) usage; exit 0 ;;
        :) usage_error "-$OPTARG needs a value" ;;
        *) usage_error "unknown option -$OPTARG" ;;
    esac
done
# Arguments after "--" go to docker build; any other leftover is a mistake.
build_args=()
if [ $# -ge "$OPTIND" ]; then
    last_option=$((OPTIND - 1))
    if [ "$last_option" -ge 1 ] && [ "${!last_option}" = "--" ]; then
        build_args=("${@:OPTIND}")
    else
        usage_error "unexpected argument: ${!OPTIND} (docker build arguments go after --)"
    fi
fi

[ ${#components[@]} -gt 0 ] || die "no container/*/Dockerfile found in $container_dir"

registry=${registry%/}
[ -n "$registry" ] \
    || usage_error "missing -r REGISTRY (e.g. -r docker.io/myname or -r localhost:5000)"
if ! [[ $registry =~ ^[A-Za-z0-9][A-Za-z0-9._:-]*(/[a-z0-9][a-z0-9._-]*)*$ ]]; then
    usage_error "invalid registry '$registry': expected HOST[:PORT][/NAMESPACE...], e.g." \
        "docker.io/myname (namespaces are lower case)"
fi

case "$action" in
    build | publish | save | all) ;;
    *) usage_error "unknown action '$action': choose build, publish, save or all" ;;
esac

# Docker's rule for a tag: up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'.
if ! [[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
    usage_error "invalid tag '$tag': up to 128 letters, digits, '_', '.', '-', not starting" \
        "with '.' or '-'"
fi

selected=()
if [ "$selection" = all ]; then
    selected=("${components[@]}")
else
    IFS=, read -r -a requested <<<"$selection"
    [ ${#requested[@]} -gt 0 ] || usage_error "-c needs a component or 'all'"
    for name in "${requested[@]}"; do
        known=false
        for component in "${components[@]}"; do
            [ "$name" = "$component" ] && known=true
        done
        $known \
            || usage_error "unknown component '$name'; known components: ${components[*]} (or all)"
        selected+=("$name")
    done
fi

# run COMMAND...: run it, or with -n print it quoted so that it can be pasted into a shell.
run() {
    if $dry_run; then
        local line
        line=$(printf '%q ' "$@")
        printf '%s\n' "${line% }"
    else
        printf '+ %s\n' "$*" >&2
        "$@"
    fi
}

# The provenance labels (org.opencontainers.image.*). The revision is marked -dirty when
# tracked files have uncommitted changes, so such an image cannot pass for the commit.
revision=unknown
if git -C "$repo_root" rev-parse --git-dir >/dev/null 2>&1; then
    revision=$(git -C "$repo_root" rev-parse HEAD 2>/dev/null || echo unknown)
    if [ "$revision" != unknown ] \
        && [ -n "$(git -C "$repo_root" status --porcelain --untracked-files=no)" ]; then
        revision="$revision-dirty"
    fi
fi
# The remote's URL with any user:password@ removed: a label is readable by anyone who can pull.
source_url=$(git -C "$repo_root" remote get-url origin 2>/dev/null || true)
source_url=$(printf '%s' "$source_url" | sed -E 's#^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@#\1#')
if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
    [[ $SOURCE_DATE_EPOCH =~ ^[0-9]+$ ]] || die "SOURCE_DATE_EPOCH must be seconds since 1970"
    # GNU date takes -d @SECONDS, BSD date -r SECONDS.
    created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null \
        || date -u -r "$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
else
    created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
fi

if ! $dry_run && ! command -v "$docker" >/dev/null 2>&1; then
    die "'$docker' not found: install Docker, set DOCKER to another client (DOCKER=podman)," \
        "or use -n to print the commands"
fi

image() { printf '%s/ei-%s:%s' "$registry" "$1" "$tag"; }

build() {
    local component=$1
    run "$docker" build \
        --file "$container_dir/$component/Dockerfile" \
        --tag "$(image "$component")" \
        --build-arg "VERSION=$version" \
        --build-arg "REVISION=$revision" \
        --build-arg "CREATED=$created" \
        --build-arg "SOURCE=$source_url" \
        ${build_args[@]+"${build_args[@]}"} \
        "$repo_root"
}

publish() {
    run "$docker" push "$(image "$1")"
}

save() {
    $dry_run || mkdir -p "$out_dir"
    run "$docker" save --output "$out_dir/ei-$1-$tag.tar" "$(image "$1")"
}

# One step for every image before the next step, so that a failed build publishes nothing.
steps=("$action")
[ "$action" = all ] && steps=(build publish save)
for step in "${steps[@]}"; do
    for component in "${selected[@]}"; do
        "$step" "$component"
    done
done
