#!/bin/sh
# Waits until every container of the compose stack is healthy (v1 has no `up --wait`).
#   usage: docker/compose-wait.sh <compose command...>   (WAIT_SECONDS, default 300)
set -eu
deadline=$(($(date +%s) + ${WAIT_SECONDS:-300}))
for container in $("$@" ps -q); do
    while :; do
        state=$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$container")
        name=$(docker inspect --format '{{.Name}}' "$container")
        case "$state" in
            healthy) break ;;
            unhealthy | exited | dead)
                echo "error: ${name#/} is $state; fix: read its log (docker logs ${name#/})" >&2
                exit 1
                ;;
        esac
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "error: ${name#/} not healthy after ${WAIT_SECONDS:-300} s (state: $state)" >&2
            exit 1
        fi
        sleep 2
    done
done
echo "stack healthy: API http://127.0.0.1:${API_PORT:-8000}/docs, MLflow http://127.0.0.1:${MLFLOW_PORT:-5000}"
