#!/usr/bin/env bash
# Camera stream service: feed a local webcam into a remote Elastic Inference system, e.g.
#   tools/run-css.sh -v /dev/video0 -q redis.example.com -p 6379 -a stream-password.txt -s
# as the producer's Redis user ei-stream, which may push frames and nothing else
# (-h lists every option; the password is read from a file, never given on the command line.)
set -euo pipefail
# shellcheck source=tools/stream-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/stream-common.sh"
feed_main webcam "$@"
