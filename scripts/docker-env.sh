#!/usr/bin/env bash
# Makes a Docker engine and a local Python base image available on a machine that reaches
# Debian's apt but no container registry (this template's CI). Idempotent; prints the image
# name on stdout. With a reachable Docker Hub you do not need this: the generated Dockerfile
# defaults to the official python slim image.
#   usage: scripts/docker-env.sh [image-name]   (default local/python:3.11-bookworm)
set -euo pipefail
image="${1:-local/python:3.11-bookworm}"
root="${DOCKER_ENV_ROOT:-/var/tmp/template-docker}"
log() { echo "docker-env: $*" >&2; }

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    log "installing docker.io and debootstrap from apt"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        docker.io debootstrap >&2
fi

if ! docker info >/dev/null 2>&1; then
    mkdir -p "$root"
    log "starting dockerd (data root $root/data, log $root/dockerd.log)"
    nohup dockerd --data-root "$root/data" --storage-driver overlay2 \
        --pidfile "$root/dockerd.pid" >"$root/dockerd.log" 2>&1 &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { log "dockerd did not start; see $root/dockerd.log"; exit 1; }
fi

if ! docker image inspect "$image" >/dev/null 2>&1; then
    rootfs="$(mktemp -d "$root/rootfs.XXXX")"
    log "bootstrapping Debian bookworm (minbase + python3, venv, CA certificates) into $rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$rootfs" http://deb.debian.org/debian >"$root/debootstrap.log" 2>&1 \
        || { log "debootstrap failed; see $root/debootstrap.log"; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["python3"]' - "$image" >&2
    rm -rf "$rootfs"
fi
echo "$image"
