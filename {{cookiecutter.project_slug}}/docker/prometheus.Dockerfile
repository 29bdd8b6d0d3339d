# The Prometheus of docker-compose.yml's observability profile: Debian's, from the same base as the
# service, with the project's rules and compose scrape config mounted at /etc/prometheus-project.
# A file of its own: the legacy builder builds every stage before the one asked for, so a stage
# in ../Dockerfile would slow every `make image` by this install.
ARG BASE_IMAGE=python:{{ cookiecutter.python_version }}-slim-bookworm
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus \
        >/dev/null \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o prometheus -g prometheus /prometheus
USER prometheus
EXPOSE 9090
CMD ["prometheus", "--config.file=/etc/prometheus-project/compose.yml", \
     "--storage.tsdb.path=/prometheus", "--web.listen-address=0.0.0.0:9090"]
