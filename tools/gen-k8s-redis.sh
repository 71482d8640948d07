# shellcheck shell=bash
# Sourced by gen-k8s-yaml.sh: the Redis users of the components and their passwords, and the
# keys that sign login sessions and webhook deliveries. The users, their commands and key patterns are core/acl.py's
# (run with the system's python3: it needs the standard library only); this file keeps
# passwords across renders, takes given ones (-p), makes new ones (-R, or none yet) and gets
# the aclfile, which holds each password's SHA-256 only.

# A generated or given in-cluster Redis password goes into a URL unescaped (core/acl.py
# PASSWORD_RE); the session and webhook secrets are 32 bytes in base64url without padding, as
# `ei up` makes the session's.
readonly PASSWORD_RE='^[A-Za-z0-9._~-]{16,128}$'
readonly SESSION_SECRET_RE='^[A-Za-z0-9_-]{43}$'
PYTHON=${PYTHON:-python3}

# Filled by redis_users and redis_*_users: COMPONENTS in core/acl.py's order; per component
# its USERS name, PASSWORDS and URLS; REDIS_ACL the aclfile as the inside of a double-quoted
# YAML string (in-cluster Redis only).
declare -A USERS=() PASSWORDS=() URLS=()
COMPONENTS=()
REDIS_ACL=""

# acl_module ARGS...: python3 -m elastic_inference.core.acl ARGS.
acl_module() {
    PYTHONPATH=$ROOT/apps "$PYTHON" -m elastic_inference.core.acl "$@"
}

# components_list: the components, space-separated (for the help text).
components_list() {
    local list
    list=$(acl_module --components 2>/dev/null | cut -d' ' -f1 | tr '\n' ' ') || true
    printf '%s' "${list% }"
}

# random_password: 48 hex digits (192 bits).
random_password() {
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'
}

# redis_users [ROTATED...]: load COMPONENTS and USERS; die on a ROTATED that is none of them.
redis_users() {
    local component user
    command -v "$PYTHON" >/dev/null || die "$PYTHON is needed (standard library only): set PYTHON"
    while read -r component user; do
        COMPONENTS+=("$component") USERS[$component]=$user
    done < <(acl_module --components)
    ((${#COMPONENTS[@]})) || die "core/acl.py listed no Redis users"
    for component in "$@"; do
        [[ -v "USERS[$component]" ]] ||
            die "-R $component: no such component (choose among ${COMPONENTS[*]})"
    done
}

# redis_external_users URL USER PASSWORD: every component uses the URL given (an external
# Redis: its users are the operator's to make).
redis_external_users() {
    local component
    for component in "${COMPONENTS[@]}"; do
        USERS[$component]=$2 PASSWORDS[$component]=$3 URLS[$component]=$1
    done
}

# redis_in_cluster_users EARLIER_SECRETS PASSWORD_FILE [ROTATED...]: a password per component,
# kept from the Secrets of an earlier render (the running Redis has them) unless given in
# PASSWORD_FILE ('' for none, '-' for stdin) or ROTATED; any other new and random. Then each
# URL, and REDIS_ACL.
redis_in_cluster_users() {
    local earlier=$1 password_file=$2 component password extra kept=0 acl
    shift 2
    if [[ -f $earlier ]]; then
        while read -r component password; do
            if [[ -v "USERS[$component]" && $password =~ $PASSWORD_RE ]]; then
                PASSWORDS[$component]=$password
                kept=$((kept + 1))
            fi
        done < <(sed -n -e 's/^  name: ei-redis-\([a-z]*\)$/\1/p' \
                        -e 's/^  redis-password: "\(.*\)"$/\1/p' "$earlier" | paste -d' ' - -)
    fi
    ((kept == 0)) || echo "keeping the Redis passwords of the earlier render in $(dirname "$earlier")"
    if [[ -n $password_file ]]; then
        [[ $password_file == - || (-r $password_file && ! -d $password_file) ]] ||
            die "cannot read file '$password_file'"
        while read -r component password extra; do
            [[ -n $component ]] || continue
            [[ -v "USERS[$component]" && -z $extra ]] ||
                die "'$password_file': expected lines COMPONENT PASSWORD with COMPONENT among ${COMPONENTS[*]} (passwords not shown)"
            [[ $password =~ $PASSWORD_RE ]] ||
                die "the password of $component in '$password_file' must be 16 to 128 of A-Z a-z 0-9 . _ ~ - (password not shown)"
            PASSWORDS[$component]=$password
        done < <(if [[ $password_file == - ]]; then cat; else cat -- "$password_file"; fi)
    fi
    for component in "$@"; do
        unset "PASSWORDS[$component]"
    done
    for component in "${COMPONENTS[@]}"; do
        [[ -v "PASSWORDS[$component]" ]] || PASSWORDS[$component]=$(random_password)
        # shellcheck disable=SC2034  # URLS and REDIS_ACL are read by gen-k8s-yaml.sh
        URLS[$component]=redis://${USERS[$component]}:${PASSWORDS[$component]}@redis:6379/0
    done
    acl=$(for component in "${COMPONENTS[@]}"; do
              printf '%s %s\n' "$component" "${PASSWORDS[$component]}"
          done | acl_module) || die "core/acl.py could not render the aclfile"
    acl=$(yaml_escape "$acl")
    # shellcheck disable=SC2034
    REDIS_ACL=${acl//$'\n'/\\n}\\n
}

# earlier_value EARLIER_SECRETS KEY: the value of KEY in an earlier render's Secrets, if any.
earlier_value() {
    sed -n "s/^  $2: \"\\(.*\\)\"\$/\\1/p" "$1" 2>/dev/null | head -n 1 || true
}

# kept_secret EARLIER_SECRETS KEY: the key of that name kept from an earlier render (what it
# signs outlives a re-render), else 32 random bytes in base64url.
kept_secret() {
    local secret
    secret=$(earlier_value "$1" "$2")
    [[ $secret =~ $SESSION_SECRET_RE ]] ||
        secret=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    printf '%s' "$secret"
}

# session_secret EARLIER_SECRETS: the key that signs login sessions (sessions outlive a
# re-render).
session_secret() {
    kept_secret "$1" session-secret
}
