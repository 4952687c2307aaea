# syntax=docker/dockerfile:1
# The model server behind the Vertex AI endpoint: `python -m salesloop.serving`, listening on
# $AIP_HTTP_PORT with Vertex's AIP_* routes. Runtime dependencies only, pinned by uv.lock; they
# include statsforecast, so a registered AutoETS or SeasonalNaive version is served like LightGBM.
# Build from the repository root: docker build -f docker/serving.Dockerfile -t serving .
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/opt/venv UV_PYTHON_DOWNLOADS=never
WORKDIR /src
# Dependencies first: this layer is reused until the lockfile changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-default-groups --no-install-project
COPY salesloop ./salesloop
RUN uv sync --frozen --no-default-groups --no-editable

FROM python:${PYTHON_VERSION}-slim
# LightGBM needs the OpenMP runtime.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin serving
COPY --from=build /opt/venv /opt/venv
COPY environments /app/environments
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SALESLOOP_ENVIRONMENTS=/app/environments \
    AIP_HTTP_PORT=8080 \
    AIP_HEALTH_ROUTE=/health \
    AIP_PREDICT_ROUTE=/predict
WORKDIR /app
USER 10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['AIP_HTTP_PORT'] + os.environ['AIP_HEALTH_ROUTE'], timeout=4)"]
CMD ["python", "-m", "salesloop.serving"]
