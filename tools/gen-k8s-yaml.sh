#!/usr/bin/env bash
# Render the Kubernetes manifests of Elastic Inference from the templates in kubernetes/.
#
# Template syntax (doc/deployment.md, "How the templates work"):
#   ${NAME}            replaced by a value this script sets (an unknown NAME is an error);
#   ... # if NAME      a line kept only when NAME is set (non-empty), the marker removed;
#   ... # unless NAME  a line kept only when NAME is empty.
# A YAML document (between --- lines) that mentions ${TYPE} is rendered once per inference type,
# one that mentions ${STREAM_ID} once per sample stream, one that mentions ${COMPONENT} once per
# Redis user (gen-k8s-redis.sh); gen-k8s-render.sh does the rendering.
# kubernetes/kustomization.yaml, itself a template, lists the templates to render; its rendered
# copy in the output directory lists the rendered files, so
# `kubectl apply --server-side -k DIR` applies them all. Every Kubernetes
# manifest under kubernetes/monitoring/ is copied with ${NAMESPACE} replaced, and every Grafana
# dashboard kubernetes/monitoring/dashboards/*.json becomes a ConfigMap for the Grafana sidecar.
set -euo pipefail

PROG=$(basename "$0")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEMPLATES=$ROOT/kubernetes
MONITORING=$TEMPLATES/monitoring
readonly PROG ROOT TEMPLATES MONITORING

# The inference types (engine/models.py INFER_TYPES) and the sample streams of `ei up`
# (services/local.py SAMPLE_STREAMS: id, video, types); tests/deploy/test_kubernetes.py
# checks that they agree.
readonly INFER_TYPES=(face people car object)
readonly SAMPLE_STREAMS=("vtest-people vtest.avi people" "vtest-car vtest.avi car"
                         "megamind-face Megamind.avi face")
# The first line of every rendered file; also how an earlier render is recognised.
readonly RENDERED_MARK="# Rendered by tools/gen-k8s-yaml.sh"
# The Redis users, the session and webhook secrets (functions redis_*, kept_secret).
# shellcheck source=SCRIPTDIR/gen-k8s-redis.sh
source "$ROOT/tools/gen-k8s-redis.sh"
# The template engine: render_template NAME, render_monitoring OUT and the VARS they fill in.
# shellcheck source=SCRIPTDIR/gen-k8s-render.sh
source "$ROOT/tools/gen-k8s-render.sh"

usage() {
    cat <<EOF
Usage: $PROG -r REGISTRY [options]

Render the Kubernetes manifests of Elastic Inference into DIR; apply them with
  kubectl apply --server-side -k DIR
(doc/deployment.md has the whole walk-through).

  -r REGISTRY   registry and path of the images REGISTRY/ei-<service>:TAG, as given to
                container/build.sh -r, e.g. registry.example.com:5000/ei (required)
  -t TAG        image tag (default: latest)
  -n NAMESPACE  namespace to deploy into (default: elastic-inference)
  -o DIR        output directory (default: build/kubernetes in the repository); an
                earlier render there is replaced, any other non-empty directory refused
  -a SCALER     worker autoscaler, one per type: ratio (HPA on the ei_scale_ratio metric,
                default), cpu (HPA on CPU use) or keda (KEDA on the queue length)
  -m MAX        most replicas per worker type (default: 8)
  -d DEVICE     OpenVINO device of the workers: CPU (default), GPU, NPU or AUTO; GPU and
                NPU also request the Intel device plugin's resource
  -G GID        add the group GID to the workers' groups: the nodes' group of the GPU
                render node or NPU device (stat -c %g /dev/dri/renderD128)
  -p FILE       read Redis passwords from FILE ('-' for stdin), lines COMPONENT PASSWORD
                (16+ characters of A-Z a-z 0-9 . _ ~ -), COMPONENT one of
                  $(components_list)
                A component not listed keeps the password of an earlier render in DIR,
                else gets a random one. Passwords are never printed.
  -R COMPONENT  rotate: a new random password for COMPONENT's Redis user (repeatable;
                doc/security.md, "Rotating a password")
  -u FILE       use an external Redis instead of the in-cluster one: read its URL
                (redis:// or rediss:// for TLS; redis+cluster:// or rediss+cluster://
                for a Redis Cluster, doc/deployment.md) from FILE ('-' for stdin)
  -s SIZE       keep the in-cluster Redis data on a PersistentVolumeClaim of SIZE (e.g.
                5Gi) instead of an emptyDir
  -v SIZE       size of the media volume, the PersistentVolumeClaim ei-media that holds
                the videos of analysis jobs (default: 10Gi)
  -c CLASS      StorageClass of the media volume (default: the cluster's default class);
                it must offer ReadWriteMany, unless -O
  -O            make the media volume ReadWriteOnce instead of ReadWriteMany: for a
                single-node cluster, or storage that keeps a volume on one node
  -H HOST       serve the Ingress on this host name only (default: any host); the gateway
                and the websocket server then answer only for it, the node of an absolute
                -w URL and localhost (EI_ALLOWED_HOSTS)
  -i CLASS      ingressClassName of the Ingress (default: the cluster's default class)
  -T SECRET     serve the Ingress over HTTPS with the certificate of this Secret (type
                kubernetes.io/tls, in the namespace; for the host of -H if given)
  -I NAMESPACE  namespace of the ingress controller: the only one whose pods may reach the
                websocket server directly (default: pods of any namespace)
  -N            also expose the gateway and the websocket server on ports 30080 and 30081
                of every node (NodePort Services); needs -w
  -w URL        websocket URL the browser uses (EI_WEBSOCKET_URL of the gateway), e.g.
                ws://NODE:30081/ws with -N (default: /ws, through the Ingress)
  -P SOURCES    most managed sources one stream-pool replica reads (EI_MAX_SOURCES, default
                16); its autoscaler aims at three quarters of it per replica
  -A HOSTS      comma-separated host names (*.domain too), addresses and CIDR networks the
                stream pool may open URL sources on (EI_SOURCE_ALLOW, default: none, files
                only), e.g. 10.20.0.0/16,cam.example.com: cameras on private networks too
  -q FILE       read the URL of the MQTT broker of the event sinks (EI_MQTT_URL of ei track,
                mqtt:// or mqtts://, it may hold a password) from FILE ('-' for stdin);
                kept from an earlier render in DIR unless given; an empty one removes it
  -S NETWORKS   comma-separated CIDR networks the trackers may reach on ports 80, 443, 1883
                and 8883 for their event sinks (default: any address outside the private,
                loopback, link-local and shared ranges)
  -M            leave out kubernetes/monitoring (for clusters without the Prometheus
                operator: its ServiceMonitor and PrometheusRule kinds would not apply)
  -h            show this help
EOF
}

die() {
    printf '%s: %s\n' "$PROG" "$*" >&2
    exit 2
}

# check VALUE REGEX MESSAGE: die with MESSAGE unless VALUE matches REGEX.
check() {
    [[ $1 =~ $2 ]] || die "$3"
}

# read_secret FILE: the first line of FILE ('-': stdin), without its line ending.
read_secret() {
    local line=""
    if [[ $1 == - ]]; then
        IFS= read -r line || true
    else
        [[ -r $1 && ! -d $1 ]] || die "cannot read file '$1'"
        IFS= read -r line <"$1" || true
    fi
    printf '%s' "${line%$'\r'}"
}

# yaml_escape TEXT: TEXT for the inside of a double-quoted YAML string.
yaml_escape() {
    local text=${1//\\/\\\\}
    printf '%s' "${text//\"/\\\"}"
}

# url_decode TEXT: TEXT with %XX escapes decoded (URL user names and passwords).
url_decode() {
    printf '%b' "${1//%/\\x}"
}

# ----------------------------------------------------------------------------- options

registry="" tag=latest namespace=elastic-inference out=$ROOT/build/kubernetes autoscaler=ratio
max_replicas=8 device=CPU device_group="" password_file="" url_file="" storage="" ingress_host=""
ingress_class="" tls_secret="" ingress_namespace="" node_ports="" websocket_url=/ws websocket_url_given="" monitoring=yes
media_size=10Gi media_class="" media_access_mode=ReadWriteMany rotate=()
mqtt_file="" sink_networks="" max_sources=16 source_allow=""

while getopts ":r:t:n:o:a:m:d:G:p:R:u:s:v:c:OH:i:T:I:Nw:P:A:q:S:Mh" opt; do
    case $opt in
        r) registry=$OPTARG ;;
        t) tag=$OPTARG ;;
        n) namespace=$OPTARG ;;
        o) out=$OPTARG ;;
        a) autoscaler=$OPTARG ;;
        m) max_replicas=$OPTARG ;;
        d) device=${OPTARG^^} ;;
        G) device_group=$OPTARG ;;
        p) password_file=$OPTARG ;;
        R) rotate+=("$OPTARG") ;;
        u) url_file=$OPTARG ;;
        s) storage=$OPTARG ;;
        v) media_size=$OPTARG ;;
        c) media_class=$OPTARG ;;
        O) media_access_mode=ReadWriteOnce ;;
        H) ingress_host=$OPTARG ;;
        i) ingress_class=$OPTARG ;;
        T) tls_secret=$OPTARG ;;
        I) ingress_namespace=$OPTARG ;;
        N) node_ports=yes ;;
        w) websocket_url=$OPTARG websocket_url_given=yes ;;
        P) max_sources=$OPTARG ;;
        A) source_allow=$OPTARG ;;
        q) mqtt_file=$OPTARG ;;
        S) sink_networks=$OPTARG ;;
        M) monitoring="" ;;
        h) usage; exit 0 ;;
        :) die "option -$OPTARG needs a value (see -h)" ;;
        *) die "unknown option -$OPTARG (see -h)" ;;
    esac
done
shift $((OPTIND - 1))
(($# == 0)) || die "unexpected argument '$1' (see -h)"

[[ -n $registry ]] || die "the image registry is required: -r REGISTRY (see -h)"
# Docker's reference grammar: a host (with an optional port) or a first path component, then
# lower-case path components; no scheme, no tag.
check "$registry" '^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$' \
    "invalid registry '$registry': expected HOST[:PORT][/PATH] such as registry.example.com:5000/ei (no scheme, no tag, lower-case path)"
check "$tag" '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$' \
    "invalid tag '$tag': 1 to 128 of A-Z a-z 0-9 _ . -, not starting with . or -"
check "$namespace" '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$' \
    "invalid namespace '$namespace': up to 63 of a-z 0-9 -, starting and ending with a letter or digit"
hpa="" hpa_ratio="" keda=""
case $autoscaler in
    ratio) hpa=yes hpa_ratio=yes ;;
    cpu) hpa=yes ;;
    keda) keda=yes ;;
    *) die "invalid autoscaler '$autoscaler': choose ratio, cpu or keda" ;;
esac
check "$max_replicas" '^[1-9][0-9]{0,2}$' "invalid -m '$max_replicas': a whole number from 1 to 999"
check "$max_sources" '^[1-9][0-9]{0,2}$' "invalid -P '$max_sources': a whole number from 1 to 999"
# The pool's autoscaler target, three quarters of -P (a quantity: 12, or 1500m for -P 2):
# below the cap, so that replicas at the cap ask for more; room for a departed one's sources.
pool_sources_target=$((max_sources * 750))m
((max_sources % 4)) || pool_sources_target=$((max_sources * 3 / 4))
if [[ -n $source_allow ]]; then
    IFS=, read -ra allowed <<<"$source_allow"
    for entry in "${allowed[@]}"; do
        check "$entry" '^((\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*(/[0-9]{1,2})?|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*(/[0-9]{1,3})?)$' \
            "invalid entry '$entry' in -A: host names, *.domain, addresses or CIDR networks such as cam.example.com,10.20.0.0/16"
    done
fi
case $device in
    CPU | AUTO) accelerator="" ;;
    GPU) accelerator=gpu.intel.com/i915 ;;  # Intel GPU device plugin
    NPU) accelerator=npu.intel.com/accel ;;  # Intel NPU device plugin
    *) die "invalid device '$device': choose CPU, GPU, NPU or AUTO" ;;
esac
[[ -z $device_group ]] || check "$device_group" '^[1-9][0-9]{0,9}$' \
    "invalid group '$device_group': a numeric group id such as 110"
[[ -z $storage ]] || check "$storage" '^[1-9][0-9]*(Mi|Gi|Ti)$' \
    "invalid Redis storage size '$storage': a quantity such as 512Mi, 5Gi or 1Ti"
check "$media_size" '^[1-9][0-9]*(Mi|Gi|Ti)$' \
    "invalid media volume size '$media_size': a quantity such as 512Mi, 10Gi or 1Ti"
[[ -z $media_class ]] || check "$media_class" '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$' \
    "invalid storage class '$media_class': a lower-case DNS name such as nfs-client"
[[ -z $url_file || -z $storage ]] || die "-s sizes the in-cluster Redis; it does not go with -u"
[[ -z $url_file || -z $password_file ]] ||
    die "-p sets the in-cluster Redis passwords; with -u the password is part of the URL"
[[ -z $url_file || ${#rotate[@]} == 0 ]] ||
    die "-R rotates an in-cluster Redis password; with -u the password is part of the URL"
[[ -z $ingress_host ]] || check "$ingress_host" \
    '^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$' \
    "invalid Ingress host '$ingress_host': a lower-case DNS name such as ei.example.com"
[[ -z $ingress_class ]] || check "$ingress_class" '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$' \
    "invalid ingress class '$ingress_class': a lower-case DNS name such as nginx"
[[ -z $tls_secret ]] || check "$tls_secret" '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$' \
    "invalid TLS secret name '$tls_secret': a lower-case DNS name such as ei-tls"
[[ -z $ingress_namespace ]] || check "$ingress_namespace" '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$' \
    "invalid ingress controller namespace '$ingress_namespace': up to 63 of a-z 0-9 -"
check "$websocket_url" '^(/[^[:space:]"\\]*|wss?://[^[:space:]"\\/]+(/[^[:space:]"\\]*)?)$' \
    "invalid websocket URL '$websocket_url': a path such as /ws or a ws:// or wss:// URL"
# -S: IPv4 or IPv6 networks (the API server checks the numbers), as the entries of a YAML list
# (the template has the first one's "- ").
sink_blocks=""
if [[ -n $sink_networks ]]; then
    IFS=, read -ra networks <<<"$sink_networks"
    for network in "${networks[@]}"; do
        check "$network" '^([0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*/[0-9]{1,3})$' \
            "invalid network '$network' in -S: CIDR networks such as 10.20.0.0/16,2001:db8::/32"
        sink_blocks+=${sink_blocks:+$'\n        - '}"ipBlock: {cidr: \"$network\"}"
    done
fi
[[ -z $node_ports || -n $websocket_url_given ]] ||
    die "-N needs -w ws://NODE_ADDRESS:30081/ws: browsers reach the websocket server directly"
((BASH_VERSINFO[0] > 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] >= 4))) ||
    die "bash 4.4 or newer is needed (this is $BASH_VERSION)"

# Refuse to replace a directory this script did not write.
if [[ -e $out ]]; then
    [[ -d $out ]] || die "output '$out' exists and is not a directory"
    first_line=""
    [[ -f $out/kustomization.yaml ]] && IFS= read -r first_line <"$out/kustomization.yaml" || true
    if [[ -n $(ls -A "$out") && $first_line != "$RENDERED_MARK"* ]]; then
        die "output directory '$out' is not empty and holds no earlier render; choose another -o"
    fi
fi

# ----------------------------------------------------------------------------- Redis

redis_users "${rotate[@]}"

if [[ -n $url_file ]]; then
    redis_url=$(read_secret "$url_file")
    url_re='^(rediss?)(\+cluster)?://(([^:@/]*)(:([^@/]*))?@)?([^:@/?]+|\[[0-9A-Fa-f:.]+\])(:([0-9]{1,5}))?(/([0-9]{1,2}))?(\?[^#]*)?$'
    [[ $redis_url =~ $url_re && $redis_url != *[[:space:]\"\\]* ]] ||
        die "the URL in '$url_file' is not redis[s]://[[USER]:PASSWORD@]HOST[:PORT][/DB] (password not shown)"
    redis_username=$(url_decode "${BASH_REMATCH[4]}")
    redis_password=$(url_decode "${BASH_REMATCH[6]}")
    redis_port=${BASH_REMATCH[9]:-6379}
    redis_address=${BASH_REMATCH[7]}:$redis_port
    redis_db=${BASH_REMATCH[11]:-0}
    redis_tls=false
    [[ ${BASH_REMATCH[1]} == rediss ]] && redis_tls=true
    # KEDA's "redis" scaler reads one server; a cluster needs its "redis-cluster" scaler.
    [[ -z ${BASH_REMATCH[2]} || -z $keda ]] ||
        die "-a keda does not go with a Redis Cluster URL: choose -a ratio or -a cpu"
    in_cluster_redis=""
    redis_external_users "$redis_url" "$redis_username" "$redis_password"
else
    redis_in_cluster_users "$out/secret.yaml" "$password_file" "${rotate[@]}"
    redis_address=redis.$namespace.svc:6379 redis_db=0 redis_tls=false redis_port=6379
    in_cluster_redis=yes
fi
session_secret=$(session_secret "$out/secret.yaml")
webhook_secret=$(kept_secret "$out/secret.yaml" webhook-secret)
# The MQTT URL is a secret: refused without being shown; the service checks the rest.
if [[ -n $mqtt_file ]]; then
    mqtt_url=$(read_secret "$mqtt_file")
else
    mqtt_url=$(earlier_value "$out/secret.yaml" mqtt-url)
fi
[[ -z $mqtt_url || $mqtt_url =~ ^mqtts?://[^[:space:]\"\\]+$ ]] ||
    die "the MQTT URL is not mqtt[s]://[USER:PASSWORD@]HOST[:PORT] (the URL is not shown)"

# ----------------------------------------------------------------------------- hosts

# EI_ALLOWED_HOSTS of the gateway and the websocket server: the Ingress host (a wildcard
# *.example.com as .example.com: the domain and its subdomains), the node address of an
# absolute -w URL (browsers then use NodePorts), and the loopback names kubectl port-forward
# uses. Without -H the Ingress routes any host, so any host is allowed.
if [[ -n $ingress_host ]]; then
    allowed_hosts=${ingress_host#\*}
    if [[ $websocket_url =~ ^wss?://(\[[^]/]+\]|[^]:/[]+) ]]; then
        allowed_hosts+=,${BASH_REMATCH[1],,}
    fi
    allowed_hosts+=",localhost,127.0.0.1,[::1]"
else
    allowed_hosts="*"
fi

VARS=(
    [NAMESPACE]=$namespace [REGISTRY]=$registry [TAG]=$tag [MAX_REPLICAS]=$max_replicas
    [DEVICE]=$device [ACCELERATOR_RESOURCE]=$accelerator [DEVICE_GROUP]=$device_group
    [REDIS_ADDRESS]=$(yaml_escape "$redis_address") [REDIS_ACL]=$REDIS_ACL
    [SESSION_SECRET]=$session_secret [WEBHOOK_SECRET]=$webhook_secret [MQTT_URL]=$mqtt_url
    [SINK_NETWORKS]=$sink_networks [SINK_BLOCKS]=$sink_blocks
    [MAX_SOURCES]=$max_sources [POOL_SOURCES_TARGET]=$pool_sources_target
    [SOURCE_ALLOW]=$source_allow
    [REDIS_DB]=$redis_db [REDIS_PORT]=$redis_port [REDIS_TLS]=$redis_tls [IN_CLUSTER_REDIS]=$in_cluster_redis
    [REDIS_STORAGE]=$storage
    [MEDIA_SIZE]=$media_size [MEDIA_CLASS]=$media_class [MEDIA_ACCESS_MODE]=$media_access_mode
    [HPA]=$hpa [HPA_RATIO]=$hpa_ratio [KEDA]=$keda
    [NODE_PORTS]=$node_ports
    [WEBSOCKET_URL]=$websocket_url [INGRESS_HOST]=$ingress_host [INGRESS_CLASS]=$ingress_class
    [ALLOWED_HOSTS]=$allowed_hosts [TLS_SECRET]=$tls_secret
    [TLS_HOST]=${tls_secret:+$ingress_host} [INGRESS_NAMESPACE]=$ingress_namespace
)

# ----------------------------------------------------------------------------- render

mkdir -p "$(dirname "$out")"
staging=$(mktemp -d "$(dirname "$out")/.gen-k8s-yaml.XXXXXX")
trap 'rm -rf -- "$staging"' EXIT

render_template kustomization.yaml >"$staging/kustomization.yaml"
mapfile -t resources < <(sed -n 's/^  - \([^ #]*\.yaml\)$/\1/p' "$staging/kustomization.yaml")
for name in "${resources[@]}"; do
    mkdir -p "$(dirname "$staging/$name")"
    if [[ $name == secret.yaml || $name == redis.yaml ]]; then
        (umask 077 && render_template "$name" >"$staging/$name")
    else
        render_template "$name" >"$staging/$name"
    fi
done
[[ -z $monitoring ]] || render_monitoring "$staging" >>"$staging/kustomization.yaml"

rm -rf -- "$out"
mv -- "$staging" "$out"
trap - EXIT
count=$(grep -c '^  - ' "$out/kustomization.yaml")
echo "rendered $count manifest files into $out (autoscaler: $autoscaler, namespace: $namespace)"
echo "apply them with: kubectl apply --server-side -k $out"
