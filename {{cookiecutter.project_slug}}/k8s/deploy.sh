#!/usr/bin/env bash
# Deploy an image to an overlay and wait for the rollout; a rollout that fails is undone.
#   k8s/deploy.sh staging|production IMAGE           (kubectl's current context, or
#                                                      KUBECONFIG_DATA: a kubeconfig's text)
#   RENDER_ONLY=1 k8s/deploy.sh staging IMAGE        (print the manifests, touch nothing)
set -euo pipefail
usage="usage: k8s/deploy.sh staging|production IMAGE"
overlay=${1:?$usage}
image=${2:?$usage}
service={{ cookiecutter.project_slug }}
namespace="$service-$overlay"
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -d "$here/overlays/$overlay" ]; then
    echo "error: no overlay '$overlay'; fix: use one of: $(ls "$here/overlays" | tr '\n' ' ')" >&2
    exit 2
fi
# kustomize's image transformer swaps the base's local image name for the pushed one.
work="$(mktemp -d "$here/.deploy-XXXXXX")"
trap 'rm -rf "$work"' EXIT
cat > "$work/kustomization.yaml" <<KUSTOMIZATION
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../overlays/$overlay
images:
  - name: $service
    newName: ${image%:*}
    newTag: ${image##*:}
KUSTOMIZATION
if [ "${RENDER_ONLY:-}" = 1 ]; then
    kubectl kustomize "$work"
    exit 0
fi
if [ -n "${KUBECONFIG_DATA:-}" ]; then
    export KUBECONFIG="$work/kubeconfig"
    printf '%s\n' "$KUBECONFIG_DATA" > "$KUBECONFIG"
fi
kubectl apply -k "$work"
if ! kubectl --namespace "$namespace" rollout status "deployment/$service" --timeout=5m; then
    echo "error: the rollout of $image did not become ready; undoing it" >&2
    kubectl --namespace "$namespace" rollout undo "deployment/$service"
    exit 1
fi
