#!/usr/bin/env bash
# Guards of the gateway image's SPA build stage (container/gateway/Dockerfile), run in its
# spa/ directory, so that a missing dashboard fails the build with a message saying what is
# missing rather than with a bare "file not found" from Docker or npm.
#
#   check-spa.sh sources   before `npm ci`: spa/package.json and spa/package-lock.json are there
#   check-spa.sh dist      after `npm run build`: the build wrote dist/index.html
set -euo pipefail

# die LINE...: the first line prefixed with the image's name, the others indented under it.
die() {
    printf 'ei-gateway image: %s\n' "$1" >&2
    shift
    if [ $# -gt 0 ]; then
        printf '    %s\n' "$@" >&2
    fi
    exit 1
}

case "${1:-}" in
    sources)
        missing=()
        for file in package.json package-lock.json; do
            [ -f "$file" ] || missing+=("spa/$file")
        done
        if [ ${#missing[@]} -gt 0 ]; then
            die "cannot build the dashboard: ${missing[*]} missing from the build context." \
                "The gateway image serves the Vue 3 + Vite dashboard built from spa/" \
                "(npm ci, then npm run build into spa/dist); see doc/images.md."
        fi
        ;;
    dist)
        [ -f dist/index.html ] \
            || die "npm run build wrote no spa/dist/index.html: Vite's outDir must be dist."
        ;;
    *)
        die "usage: ${0##*/} sources|dist"
        ;;
esac
