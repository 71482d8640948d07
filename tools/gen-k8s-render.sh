# shellcheck shell=bash
# Sourced by gen-k8s-yaml.sh: the template engine. Renders a template of kubernetes/ (line
# guards, placeholders, a document per type, sample stream or Redis user), and copies the
# monitoring manifests and turns the Grafana dashboards into ConfigMaps. It reads the caller's
# INFER_TYPES, SAMPLE_STREAMS, RENDERED_MARK, TEMPLATES and MONITORING, gen-k8s-redis.sh's
# COMPONENTS, USERS, URLS and PASSWORDS, and calls its die and yaml_escape.

declare -A VARS=()  # placeholder name -> value
CURRENT=""          # the template being rendered, for error messages
DOCUMENTS=0         # documents written to the current output file

# render_text TEXT: print TEXT with line guards applied and placeholders replaced.
render_text() {
    local line rest name guard set
    while IFS= read -r line; do
        if [[ $line =~ ^(.*[^[:space:]])[[:space:]]+#[[:space:]]+(if|unless)[[:space:]]+([A-Z_]+)[[:space:]]*$ ]]; then
            line=${BASH_REMATCH[1]} guard=${BASH_REMATCH[2]} name=${BASH_REMATCH[3]}
            [[ -v "VARS[$name]" ]] || die "$CURRENT: unknown guard name $name"
            set=no
            [[ -n ${VARS[$name]} ]] && set=yes
            [[ ($guard == if && $set == no) || ($guard == unless && $set == yes) ]] && continue
        fi
        # Names are checked on the template text, so a value may contain anything.
        rest=$line
        while [[ $rest =~ \$\{([^}]*)\}(.*)$ ]]; do
            name=${BASH_REMATCH[1]} rest=${BASH_REMATCH[2]}
            [[ -v "VARS[$name]" ]] || die "$CURRENT: unknown placeholder \${$name}"
        done
        for name in "${!VARS[@]}"; do
            line=${line//"\${$name}"/"${VARS[$name]}"}
        done
        printf '%s\n' "$line"
    done <<<"$1"
}

# render_document TEXT: print one template document, once per type or sample if it asks.
render_document() {
    local doc=$1 type entry id sample types
    # Skip the empty and comment-only documents (before a leading or after a trailing ---).
    grep -qv -e '^[[:space:]]*#' -e '^[[:space:]]*$' <<<"$doc" || return 0
    if [[ $doc == *"\${TYPE}"* ]]; then
        for type in "${INFER_TYPES[@]}"; do
            VARS[TYPE]=$type
            print_document "$doc"
        done
        unset 'VARS[TYPE]'
    elif [[ $doc == *"\${COMPONENT}"* ]]; then
        for entry in "${COMPONENTS[@]}"; do
            VARS[COMPONENT]=$entry VARS[COMPONENT_USER]=$(yaml_escape "${USERS[$entry]}")
            VARS[COMPONENT_URL]=$(yaml_escape "${URLS[$entry]}")
            VARS[COMPONENT_PASSWORD]=$(yaml_escape "${PASSWORDS[$entry]}")
            print_document "$doc"
        done
        unset 'VARS[COMPONENT]' 'VARS[COMPONENT_USER]' 'VARS[COMPONENT_URL]' \
            'VARS[COMPONENT_PASSWORD]'
    elif [[ $doc == *"\${STREAM_ID}"* ]]; then
        for entry in "${SAMPLE_STREAMS[@]}"; do
            read -r id sample types <<<"$entry"
            VARS[STREAM_ID]=$id VARS[SAMPLE]=$sample VARS[STREAM_TYPES]=$types
            print_document "$doc"
        done
        unset 'VARS[STREAM_ID]' 'VARS[SAMPLE]' 'VARS[STREAM_TYPES]'
    else
        print_document "$doc"
    fi
}

print_document() {
    ((DOCUMENTS++ == 0)) || echo ---
    render_text "${1%$'\n'}"
}

# render_template NAME: print kubernetes/NAME rendered, documents separated by ---. The
# comment lines that open the template are printed once, not with every copy of a document.
render_template() {
    local doc="" line opening=yes
    CURRENT=kubernetes/$1 DOCUMENTS=0
    [[ -f $TEMPLATES/$1 ]] || die "$CURRENT: no such template (listed in kustomization.yaml)"
    echo "$RENDERED_MARK from $CURRENT; edit the template, not this file."
    while IFS= read -r line || [[ -n $line ]]; do
        if [[ $opening == yes && $line == \#* ]]; then
            printf '%s\n' "$line"
            continue
        fi
        opening=no
        if [[ $line == --- ]]; then
            render_document "$doc"
            doc=""
        else
            doc+=$line$'\n'
        fi
    done <"$TEMPLATES/$1"
    render_document "$doc"
}

# dashboard_configmap FILE: a ConfigMap the Grafana sidecar loads the dashboard FILE from.
dashboard_configmap() {
    local file=$1 base name
    base=$(basename "$file" .json)
    name=$(tr -c 'a-z0-9\n' '-' <<<"${base,,}")
    cat <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: ei-dashboard-$name
  namespace: ${VARS[NAMESPACE]}
  labels:
    app.kubernetes.io/name: ei-dashboard-$name
    app.kubernetes.io/part-of: elastic-inference
    app.kubernetes.io/component: monitoring
    # The Grafana sidecar (kube-prometheus-stack) loads dashboards from ConfigMaps so labelled.
    grafana_dashboard: "1"
data:
  # Explicit indentation: a dashboard may start with blanks.
  $base.json: |2
EOF
    sed 's/^/    /' "$file"
}

# render_monitoring OUT: copy the Kubernetes manifests under kubernetes/monitoring into
# OUT/monitoring and turn its Grafana dashboards into ConfigMaps, printing a kustomization
# entry for each file written. Other YAML there (promtool tests) is not a manifest.
render_monitoring() {
    local out=$1 file rel dashboards=()
    [[ -d $MONITORING ]] || return 0
    while IFS= read -r -d '' file; do
        if ! grep -q '^apiVersion:' "$file" || ! grep -q '^kind:' "$file"; then
            continue
        fi
        rel=${file#"$MONITORING/"}
        mkdir -p "$(dirname "$out/monitoring/$rel")"
        {
            echo "$RENDERED_MARK from kubernetes/monitoring/$rel; edit that file, not this one."
            sed "s/\${NAMESPACE}/${VARS[NAMESPACE]}/g" "$file"
        } >"$out/monitoring/$rel"
        echo "  - monitoring/$rel"
    done < <(find "$MONITORING" -type f \( -name '*.yaml' -o -name '*.yml' \) -print0 | sort -z)
    if [[ -d $MONITORING/dashboards ]]; then
        while IFS= read -r -d '' file; do
            dashboards+=("$file")
        done < <(find "$MONITORING/dashboards" -maxdepth 1 -type f -name '*.json' -print0 | sort -z)
    fi
    ((${#dashboards[@]})) || return 0
    mkdir -p "$out/monitoring"
    {
        echo "$RENDERED_MARK from kubernetes/monitoring/dashboards/*.json."
        for file in "${dashboards[@]}"; do
            [[ $file == "${dashboards[0]}" ]] || echo ---
            dashboard_configmap "$file"
        done
    } >"$out/monitoring/dashboards.yaml"
    echo "  - monitoring/dashboards.yaml"
}
