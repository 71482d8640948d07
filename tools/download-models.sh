#!/usr/bin/env bash
# Fetch the built-in detection models (BlazeFace from the PyPI mediapipe wheel, SSD MobileNetV2
# OIDv4 from the npm @mediapipe/objectron package), each checked against a pinned SHA-256, and
# optionally copy in your own models. A thin wrapper: the work is done by
# elastic_inference.engine.fetch, the same code as `ei models fetch`.
#
# Idempotent: files already present with the right hash are kept; the downloaded packages are
# cached in DIR/.cache, so a rerun takes well under a second.
set -euo pipefail

usage() {
    cat <<EOF
usage: ${0##*/} [-d DIR] [-u USER_DIR] [-c CACHE] [-o] [-q] [-h]

Download and verify the detection models into DIR.

  -d DIR       where the models go (default: models)
  -u USER_DIR  also copy your own models from USER_DIR (.xml+.bin, .onnx, .tflite, with
               optional NAME.json / NAME.labels); see doc/models.md
  -c CACHE     where the downloaded packages are kept (default: DIR/.cache)
  -o           also try the Open Model Zoo SSD models (needs internet access)
  -q           only report errors
  -h           show this help

Environment: PYTHON (default: the repository's .venv/bin/python if present, else python3).
EOF
}

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
args=()

while getopts ":d:u:c:oqh" opt; do
    case "$opt" in
        d) args+=(--model-dir "$OPTARG") ;;
        u) args+=(--user-dir "$OPTARG") ;;
        c) args+=(--cache-dir "$OPTARG") ;;
        o) args+=(--omz) ;;
        q) args+=(--quiet) ;;
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

if [ -z "${PYTHON:-}" ]; then
    if [ -x "$repo_root/.venv/bin/python" ]; then
        PYTHON="$repo_root/.venv/bin/python"
    else
        PYTHON=python3
    fi
fi

# Works from a plain checkout too (package not installed): the import package lives in apps/.
export PYTHONPATH="$repo_root/apps${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" -m elastic_inference.engine.fetch ${args[@]+"${args[@]}"}
