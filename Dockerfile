# syntax=docker/dockerfile:1
# TableForge server image: the server install only (no load-test extra), run as an unprivileged user,
# healthy when /ready answers 200. Built and run by compose.yaml (docs/deploy.md); alone:
#   docker build -t tableforge .
#   docker run -p 8000:8000 -v tableforge-data:/var/lib/tableforge tableforge      # embedded mode
# The Python base is the one the test suite runs on (3.11, Debian bookworm).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: install the package and its dependencies into a virtualenv -------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Every dependency has a wheel for linux/amd64 and arm64 on CPython 3.11: no compiler needed.
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN python -m venv /opt/tableforge \
    && /opt/tableforge/bin/pip install . \
    && /opt/tableforge/bin/pip uninstall -y pip setuptools wheel

# --- runtime ------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
# pg_dump/psql/pg_restore for `tableforge backup` and `restore` on PostgreSQL (bookworm's client is 15:
# the server must be 15 or older, see compose.yaml); openssl for the compose stack's self-signed
# certificate at first start.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client openssl \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 tableforge \
    && useradd --system --uid 10001 --gid tableforge --home-dir /var/lib/tableforge --no-create-home \
       --shell /usr/sbin/nologin tableforge \
    && install -d -o tableforge -g tableforge -m 0750 /var/lib/tableforge /var/backups/tableforge
COPY --from=build /opt/tableforge /opt/tableforge
ENV PATH=/opt/tableforge/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TABLEFORGE_DATA_DIR=/var/lib/tableforge
USER tableforge:tableforge
WORKDIR /var/lib/tableforge
EXPOSE 8000
# /ready: 200 when the instance can serve (also "degraded": Redis away), 503 when it cannot reach its
# database. The port is the CMD's: change both together.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4).status != 200)"]
# SIGTERM: sockets are closed with 1012 (clients reconnect to another instance), pending writes finish.
STOPSIGNAL SIGTERM
ENTRYPOINT ["tableforge"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
