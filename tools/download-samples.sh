#!/usr/bin/env bash
# Fetch the sample videos used by `ei up` and the demos: vtest.avi (768x576 pedestrians) and
# Megamind.avi (a face), both from Debian's opencv-doc package. No root is needed for the
# download itself; the .deb is kept in a cache directory so a rerun costs nothing.
#
# Idempotent: when both files are present with the expected SHA-256 it exits at once.
set -euo pipefail

usage() {
    cat <<EOF
usage: ${0##*/} [-d DIR] [-c CACHE] [-h]

Download vtest.avi and Megamind.avi (Debian package opencv-doc) into DIR.

  -d DIR     where the videos go (default: samples)
  -c CACHE   where the downloaded .deb is kept (default: <repo>/.cache/samples)
  -h         show this help
EOF
}

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=samples
cache="$repo_root/.cache/samples"

while getopts ":d:c:h" opt; do
    case "$opt" in
        d) dir=$OPTARG ;;
        c) cache=$OPTARG ;;
        h) usage; exit 0 ;;
        :) echo "${0##*/}: -$OPTARG needs a value" >&2; usage >&2; exit 2 ;;
        *) echo "${0##*/}: unknown option -$OPTARG" >&2; usage >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [ $# -gt 0 ]; then
    echo "${0##*/}: unexpected argument: $1" >&2
    usage >&2
    exit 2
fi

# Names as they appear in opencv-doc 4.6.0+dfsg-12 (Debian bookworm), with their SHA-256.
declare -A sha256=(
    [vtest.avi]=45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf
    [Megamind.avi]=0057387cb7e75c8fd1663b62cfdc51fa53f527795d0fe3c1fea2fd159d3130b5
)
member_dir=./usr/share/doc/opencv-doc/examples/data

die() { echo "${0##*/}: $*" >&2; exit 1; }

# verified FILE: the file exists and has the expected hash for its name.
verified() {
    local file=$1 want=${sha256[$(basename "$1")]}
    [ -f "$file" ] && [ "$(sha256sum "$file" | cut -d' ' -f1)" = "$want" ]
}

missing=()
for name in "${!sha256[@]}"; do
    verified "$dir/$name" || missing+=("$name")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "samples already present and verified in $dir"
    exit 0
fi

command -v apt-get >/dev/null || die "apt-get not found: this script needs a Debian/Ubuntu system"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found: this script needs a Debian/Ubuntu system"

mkdir -p "$cache" "$dir"

find_deb() { find "$cache" -maxdepth 1 -name 'opencv-doc_*_all.deb' -print -quit; }

deb=$(find_deb)
if [ -z "$deb" ]; then
    echo "downloading opencv-doc (about 95 MB) into $cache"
    if ! (cd "$cache" && apt-get download opencv-doc); then
        if [ "$(id -u)" -eq 0 ]; then
            echo "apt-get download failed; refreshing package lists with apt-get update"
            apt-get update
            (cd "$cache" && apt-get download opencv-doc) || die "apt-get download opencv-doc failed"
        else
            die "apt-get download opencv-doc failed; the package lists may be empty: run" \
                "'sudo apt-get update' once, then run this script again"
        fi
    fi
    deb=$(find_deb)
    [ -n "$deb" ] || die "apt-get download succeeded but no opencv-doc_*.deb is in $cache"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Extract only the two videos rather than the whole (large) documentation tree.
members=()
for name in "${missing[@]}"; do
    members+=("$member_dir/$name")
done
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" "${members[@]}" \
    || die "$deb does not contain ${missing[*]}; delete it and run again"

for name in "${missing[@]}"; do
    src="$tmp/$member_dir/$name"
    if ! verified "$src"; then
        die "$name from $deb has an unexpected SHA-256; delete $deb and run again"
    fi
    mv -f "$src" "$dir/$name.part"
    mv -f "$dir/$name.part" "$dir/$name"
    echo "fetched $dir/$name"
done
