# shellcheck shell=bash
# Shared by run-css.sh (a webcam) and run-fss.sh (a file): feed one source into the frame
# queues of a remote Elastic Inference system, as `ei stream` or as the ei-stream image.
#
# It logs in as the producer's Redis user, ei-stream (core/acl.py: it may push frames and
# register its stream, nothing else), so a camera never holds a password that reads results.
# The password is read from a file (never a command-line argument, which `ps` shows) and
# reaches `ei stream` only through its environment as part of EI_REDIS_URL; the dry run (-n)
# prints the command with the password masked.

feed_usage() {
    local source_flag=$1 source_help=$2
    cat <<EOF
usage: ${0##*/} ${source_flag%%  *} -q HOST [-p PORT] [-u USER] [-a PASSWORD_FILE] [-s] [-C CA_FILE]
       [-t TYPES] [-i STREAM_ID] [-r FPS] [-w MAX_WIDTH] [-D IMAGE] [-n] [-h] [-- EI_STREAM_FLAGS...]

Feed $source_help into the Redis queues of an Elastic Inference system.

  $source_flag
  -q HOST       Redis host of the system (required)
  -p PORT       Redis port (default 6379)
  -u USER       Redis user (default ei-stream, the producer's; default for a Redis that
                has a password only)
  -a FILE       file holding the user's password (the ei-redis-stream Secret's
                redis-password on Kubernetes)
  -s            TLS: connect with rediss://
  -C CA_FILE    TLS: CA certificate that signed the server's certificate
  -t TYPES      comma-separated inference types (default people)
  -i ID         stream id (default: derived from the source)
  -r FPS        frames per second to send (default: the source's own rate)
  -w WIDTH      downscale frames wider than this (default 1280)
  -D IMAGE      run the ei-stream container image with docker instead of a local ei
  -n            print the command instead of running it
  -h            show this help

Arguments after -- go to \`ei stream\` as they are (for example -- --max-frames 100).
EOF
}

feed_fail() {
    echo "${0##*/}: $*" >&2
    exit 2
}

# The absolute form of an existing path (for docker volume mounts).
feed_abspath() {
    echo "$(cd "$(dirname -- "$1")" && pwd)/$(basename -- "$1")"
}

# feed_main KIND "$@": KIND is webcam (source option -v) or file (-f); parse the options,
# validate them, and run `ei stream` (or the image) with EI_REDIS_URL in its environment.
feed_main() {
    local kind=$1
    shift
    local source_flag source_help letter source=""
    if [ "$kind" = webcam ]; then
        source_flag="-v DEVICE     webcam: /dev/videoN or its index N (default /dev/video0)"
        source_help="a local webcam"
        letter=v
        source=/dev/video0
    else
        source_flag="-f FILE       the video file to play (looped)"
        source_help="a video file"
        letter=f
    fi
    local host="" port=6379 user=ei-stream password_file="" tls=false ca_file="" types=people
    local stream_id="" fps="" width="" image="" dry_run=false

    local opt
    while getopts ":${letter}:q:p:u:a:sC:t:i:r:w:D:nh" opt; do
        case "$opt" in
            v | f) source=$OPTARG ;;
            q) host=$OPTARG ;;
            p) port=$OPTARG ;;
            u) user=$OPTARG ;;
            a) password_file=$OPTARG ;;
            s) tls=true ;;
            C) ca_file=$OPTARG ;;
            t) types=$OPTARG ;;
            i) stream_id=$OPTARG ;;
            r) fps=$OPTARG ;;
            w) width=$OPTARG ;;
            D) image=$OPTARG ;;
            n) dry_run=true ;;
            h) feed_usage "$source_flag" "$source_help"; exit 0 ;;
            :) feed_fail "-$OPTARG needs a value (-h for help)" ;;
            *) feed_fail "unknown option -$OPTARG (-h for help)" ;;
        esac
    done
    shift $((OPTIND - 1))
    local extra=("$@")

    # Validate everything before touching the network: a clear message beats a stack trace.
    [ -n "$host" ] || feed_fail "-q HOST is required: the Redis host of the system"
    [[ $host =~ ^[A-Za-z0-9.:_-]+$ ]] || feed_fail "-q $host is not a host name or address"
    [[ $port =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] \
        || feed_fail "-p $port is not a port number (1-65535)"
    [[ $user =~ ^[A-Za-z0-9._-]{1,64}$ ]] \
        || feed_fail "-u $user: a Redis user name is 1-64 of A-Z a-z 0-9 . _ -"
    [[ $types =~ ^[a-z0-9_-]+(,[a-z0-9_-]+)*$ ]] \
        || feed_fail "-t $types: comma-separated type names such as face,people"
    [ -z "$stream_id" ] || [[ $stream_id =~ ^[A-Za-z0-9_.-]{1,64}$ ]] \
        || feed_fail "-i $stream_id: a stream id is 1-64 of A-Z a-z 0-9 _ . -"
    [ -z "$fps" ] || [[ $fps =~ ^[0-9]+(\.[0-9]+)?$ ]] || feed_fail "-r $fps is not a rate"
    [ -z "$width" ] || [[ $width =~ ^[0-9]+$ ]] || feed_fail "-w $width is not a width"
    if [ "$kind" = webcam ]; then
        [[ $source =~ ^[0-9]+$ ]] && source=/dev/video$source
        [[ $source =~ ^/dev/video[0-9]+$ ]] || feed_fail "-v $source: use /dev/videoN or N"
        [ -e "$source" ] || feed_fail "no webcam $source (is it plugged in? ls /dev/video*)"
    else
        [ -n "$source" ] || feed_fail "-f FILE is required"
        [ -f "$source" ] || feed_fail "no such video file: $source"
    fi
    local password=""
    if [ -n "$password_file" ]; then
        [ -r "$password_file" ] || feed_fail "cannot read the password file $password_file"
        password=$(head -n 1 -- "$password_file")
        [ -n "$password" ] || feed_fail "the password file $password_file is empty"
    fi
    if [ -n "$ca_file" ]; then
        $tls || feed_fail "-C needs -s (TLS)"
        [ -r "$ca_file" ] || feed_fail "cannot read the CA file $ca_file"
    fi

    local scheme=redis auth="" shown_auth="" query=""
    $tls && scheme=rediss
    if [ -n "$password" ]; then
        # Percent-encode the password so any character survives inside the URL.
        auth="$user:$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$password")@"
        shown_auth="$user:***@"
    fi

    local flags=(--types "$types")
    [ -n "$stream_id" ] && flags+=(--stream-id "$stream_id")
    [ -n "$fps" ] && flags+=(--fps "$fps")
    [ -n "$width" ] && flags+=(--max-width "$width")
    flags+=("${extra[@]}")

    local cmd
    if [ -n "$image" ]; then
        # The image runs as a non-root user: it needs the video group to open a webcam, and a
        # file or CA certificate must be mounted into the container (read-only).
        cmd=(docker run --rm --init -e EI_REDIS_URL)
        if [ "$kind" = webcam ]; then
            cmd+=(--device "$source" --group-add video)
            flags=(--source "$source" "${flags[@]}")
        else
            cmd+=(-v "$(feed_abspath "$source"):/input/video:ro")
            flags=(--source /input/video "${flags[@]}")
        fi
        if [ -n "$ca_file" ]; then
            cmd+=(-v "$(feed_abspath "$ca_file"):/input/ca.pem:ro")
            query="?ssl_ca_certs=/input/ca.pem"
        fi
        cmd+=("$image" "${flags[@]}")
    else
        local repo_root ei
        repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
        if [ -x "$repo_root/.venv/bin/ei" ]; then
            ei=$repo_root/.venv/bin/ei
        else
            ei=$(command -v ei) || feed_fail "no ei command: run make venv, or use -D IMAGE"
        fi
        [ -n "$ca_file" ] && query="?ssl_ca_certs=$(feed_abspath "$ca_file")"
        cmd=("$ei" stream --source "$source" "${flags[@]}")
    fi
    local url="$scheme://$auth$host:$port/0$query"
    local shown_url="$scheme://$shown_auth$host:$port/0$query"

    if $dry_run; then
        printf 'EI_REDIS_URL=%q' "$shown_url"
        printf ' %q' "${cmd[@]}"
        printf '\n'
        return 0
    fi
    echo "${0##*/}: feeding $source into $shown_url as types $types (Ctrl-C stops)" >&2
    EI_REDIS_URL=$url exec "${cmd[@]}"
}
