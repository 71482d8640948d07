#!/usr/bin/env bash
# File stream service: feed a video file (looped) into a remote Elastic Inference system, e.g.
#   tools/run-fss.sh -f samples/vtest.avi -q redis.example.com -t people,face
# (-h lists every option; the password is read from a file, never given on the command line.)
set -euo pipefail
# shellcheck source=tools/stream-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/stream-common.sh"
feed_main file "$@"
