#!/usr/bin/env bash
# Copy the prediction logs of every running pod of an environment into a folder, for `monitor`.
#   k8s/collect-logs.sh staging|production [DEST]     (DEST: logs/predictions)
# Uses kubectl's current context, or KUBECONFIG_DATA (a kubeconfig's text, as in the workflows).
set -euo pipefail
overlay=${1:?usage: k8s/collect-logs.sh staging|production [DEST]}
dest=${2:-logs/predictions}
service={{ cookiecutter.project_slug }}
namespace="$service-$overlay"
if [ -n "${KUBECONFIG_DATA:-}" ]; then
    KUBECONFIG="$(mktemp)"
    export KUBECONFIG
    trap 'rm -f "$KUBECONFIG"' EXIT
    printf '%s\n' "$KUBECONFIG_DATA" > "$KUBECONFIG"
fi
mkdir -p "$dest"
pods="$(kubectl --namespace "$namespace" get pods \
    --selector "app.kubernetes.io/name=$service,app.kubernetes.io/component=api" \
    --field-selector status.phase=Running --output name)"
if [ -z "$pods" ]; then
    echo "error: no running pod of $service in namespace $namespace" >&2
    exit 2
fi
for pod in $pods; do
    name="${pod#pod/}"
    # One file per pod and day, named as the service names its own (predictions-*.jsonl).
    for file in $(kubectl --namespace "$namespace" exec "$name" -- \
            sh -c 'ls logs/predictions/ 2>/dev/null | grep "^predictions-.*\.jsonl$" || true'); do
        kubectl --namespace "$namespace" exec "$name" -- cat "logs/predictions/$file" \
            > "$dest/${file%.jsonl}-$name.jsonl"
    done
done
echo "collected into $dest: $(ls "$dest" | wc -l) files"
