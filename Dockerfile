# syntax=docker/dockerfile:1
# hazmon service image. Build:  docker build -t hazmon:local .
# Run (needs a broker and InfluxDB; docker-compose.yml wires everything up):
#   docker run --rm -p 8000:8000 -e HAZMON_MQTT_URL=mqtt://BROKER:1883 \
#       -e HAZMON_INFLUX_URL=http://INFLUX:8086 hazmon:local
# The simulated fleet uses the same image:  hazmon simulate --registry /app/sensors/examples ...

# ---- build stage: wheels for the project and its dependencies ----------------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src

# Dependencies first, so this layer is rebuilt only when pyproject.toml changes, not on every
# source edit. (README* may not exist: a wildcard that matches nothing is allowed.)
COPY pyproject.toml README* ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && pip wheel --wheel-dir /wheels -r requirements.txt

# The packages listed in pyproject.toml [tool.setuptools.packages.find] include
# (tests/unit/test_docker_compose.py checks that every one is copied here).
COPY hazmon ./hazmon
COPY ingest ./ingest
COPY alerts ./alerts
COPY sensors ./sensors
COPY api ./api
COPY simulators ./simulators
RUN pip wheel --no-deps --wheel-dir /wheels .

# ---- runtime stage ----------------------------------------------------------------------------
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HAZMON_REGISTRY=/app/sensors/examples \
    HAZMON_DATA_DIR=/var/lib/hazmon \
    HAZMON_HTTP_HOST=0.0.0.0 \
    HAZMON_HTTP_PORT=8000 \
    NUMBA_CACHE_DIR=/var/lib/hazmon/numba-cache

# numba (the engine's compiled kernels, alerts/engine/jit.py) caches its machine code in the data
# volume, since site-packages is read-only to the service: only the first start compiles.
# Non-root user; its data dir is created and owned here, so a fresh named volume mounted at
# /var/lib/hazmon inherits the ownership.
RUN groupadd --system --gid 10001 hazmon \
    && useradd --system --uid 10001 --gid hazmon --home-dir /var/lib/hazmon --no-create-home \
        --shell /usr/sbin/nologin hazmon \
    && mkdir -p /var/lib/hazmon \
    && chown hazmon:hazmon /var/lib/hazmon

# Install from the wheels only (no index, no compiler); the wheels are bind-mounted, not copied,
# so they add nothing to the image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels hazmon

WORKDIR /app
# The example registry (the demo fleet), read by `hazmon run` and `hazmon simulate`.
COPY sensors/examples ./sensors/examples

USER hazmon
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HAZMON_HTTP_PORT', '8000') + '/livez', timeout=4)" || exit 1

CMD ["hazmon", "run"]
