# syntax=docker/dockerfile:1
# The image the Vertex AI pipeline steps run in (training, backtests, monitoring): the salesloop
# library with its runtime and `training` dependency group, pinned by uv.lock. Pipeline components
# use it as their base image (kfp installs nothing at start: install_kfp_package=False).
# Build from the repository root: docker build -f docker/training.Dockerfile -t training .
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/opt/venv UV_PYTHON_DOWNLOADS=never
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-default-groups --group training --no-install-project
COPY salesloop ./salesloop
RUN uv sync --frozen --no-default-groups --group training --no-editable

FROM python:${PYTHON_VERSION}-slim
# LightGBM needs the OpenMP runtime.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --create-home --shell /usr/sbin/nologin pipeline
COPY --from=build /opt/venv /opt/venv
COPY environments /app/environments
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SALESLOOP_ENVIRONMENTS=/app/environments
WORKDIR /app
USER 10001
# Pipeline steps override the command; a bare run shows the CLI.
HEALTHCHECK NONE
CMD ["salesloop", "--help"]
