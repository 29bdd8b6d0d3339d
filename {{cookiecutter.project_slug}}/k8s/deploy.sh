#!/usr/bin/env bash
# Deploy an image to an overlay and wait for the rollout; a rollout that fails is undone.
#   k8s/deploy.sh staging|production IMAGE           (kubectl's current context, or
#                                                      KUBECONFIG_DATA: a kubeconfig's text)
#   RENDER_ONLY=1 k8s/deploy.sh staging IMAGE        (print the manifests, touch nothing)
#   ROLLOUT=canary CHALLENGER_SHARE=0.2 k8s/deploy.sh production IMAGE
#                      (serve the image's challenger bundle beside the champion: off, shadow,
#                       canary or ab; SHADOW_SHARE for shadow; unset keeps the overlay's
#                       settings, "off" in the base)
set -euo pipefail
usage="usage: [ROLLOUT=off|shadow|canary|ab] [CHALLENGER_SHARE=0..1] [SHADOW_SHARE=0..1] k8s/deploy.sh staging|production IMAGE"
overlay=${1:?$usage}
image=${2:?$usage}
rollout=${ROLLOUT:-}
case "$rollout" in
    "" | off | shadow | canary | ab) ;;
    *) echo "error: ROLLOUT '$rollout' is not a rollout mode; fix: off, shadow, canary or ab" >&2; exit 2 ;;
esac
for name in CHALLENGER_SHARE SHADOW_SHARE; do
    share=${!name:-}
    if [ -n "$share" ] && ! awk -v s="$share" 'BEGIN { exit !(s ~ /^([0-9]*[.])?[0-9]+$/ && s + 0 <= 1) }'; then
        echo "error: $name '$share' is not a share; fix: a number from 0 to 1, e.g. 0.1" >&2
        exit 2
    fi
done
service={{ cookiecutter.project_slug }}
namespace="$service-$overlay"
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -d "$here/overlays/$overlay" ]; then
    echo "error: no overlay '$overlay'; fix: use one of: $(ls "$here/overlays" | tr '\n' ' ')" >&2
    exit 2
fi
# kustomize's image transformer swaps the base's local image name for the pushed one: by
# digest (name@sha256:...), by tag (a registry's port is not a tag), or :latest.
last_part=${image##*/}
if [[ "$image" == *@* ]]; then
    image_name=${image%%@*} image_ref="digest: \"${image#*@}\""
elif [[ "$last_part" == *:* ]]; then
    image_name=${image%:*} image_ref="newTag: \"${image##*:}\""
else
    image_name=$image image_ref="newTag: latest"
fi
work="$(mktemp -d "$here/.deploy-XXXXXX")"
trap 'rm -rf "$work"' EXIT
cat > "$work/kustomization.yaml" <<KUSTOMIZATION
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../overlays/$overlay
images:
  - name: $service
    newName: "$image_name"
    $image_ref
KUSTOMIZATION
# The rollout settings, merged into the container's env by name (the rest of it is kept).
settings=""
[ -z "$rollout" ] || settings+=$'\n'"                  - {name: {{ cookiecutter.package_name | upper }}_SERVE__ROLLOUT, value: \"$rollout\"}"
[ -z "${CHALLENGER_SHARE:-}" ] || settings+=$'\n'"                  - {name: {{ cookiecutter.package_name | upper }}_SERVE__CHALLENGER_SHARE, value: \"$CHALLENGER_SHARE\"}"
[ -z "${SHADOW_SHARE:-}" ] || settings+=$'\n'"                  - {name: {{ cookiecutter.package_name | upper }}_SERVE__SHADOW_SHARE, value: \"$SHADOW_SHARE\"}"
if [ -n "$settings" ]; then
    cat >> "$work/kustomization.yaml" <<PATCH
patches:
  - patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: $service
      spec:
        template:
          spec:
            containers:
              - name: api
                env:$settings
PATCH
fi
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
