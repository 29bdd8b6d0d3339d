#!/usr/bin/env bash
# The container smoke test CI runs on every image: start it, wait for /ready, send it real rows
# through /predict (the project's own `simulate`), check it runs as a non-root user, stop it
# gracefully. Usage: docker/smoke-test.sh IMAGE
set -euo pipefail
image=${1:?usage: docker/smoke-test.sh IMAGE}
container="$(docker run --detach --publish 127.0.0.1::8000 "$image")"
trap 'docker rm --force "$container" >/dev/null 2>&1 || true' EXIT
port="$(docker port "$container" 8000/tcp | head -n 1 | sed 's/.*://')"
url="http://127.0.0.1:$port"
for _ in $(seq 120); do
    if python3 -c "import urllib.request as r; r.urlopen('$url/ready', timeout=1)" 2>/dev/null; then
        break
    fi
    if [ "$(docker inspect --format '{{.State.Running}}' "$container")" != true ]; then
        docker logs "$container" >&2
        echo "error: the container exited before it was ready" >&2
        exit 1
    fi
    sleep 0.5
done
python3 -c "import urllib.request as r; print('ready:', r.urlopen('$url/ready', timeout=2).read().decode())"
user="$(docker exec "$container" id -u)"
if [ "$user" = 0 ]; then
    echo "error: the container runs as root" >&2
    exit 1
fi
echo "runs as uid $user"
make --no-print-directory simulate KIND=clean URL="$url"
docker stop --time 20 "$container" >/dev/null
code="$(docker inspect --format '{{.State.ExitCode}}' "$container")"
if [ "$code" != 0 ]; then
    docker logs "$container" >&2
    echo "error: the container exited $code on SIGTERM (expected a graceful 0)" >&2
    exit 1
fi
echo "smoke test passed: $image"
