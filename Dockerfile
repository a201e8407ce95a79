# One image for every DreamForge service; docker-compose.yml picks the command.
# Build from the repository root: docker build -t dreamforge .

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies first, so editing code does not reinstall them.
COPY requirements-runtime.lock ./
RUN /opt/venv/bin/pip install -r requirements-runtime.lock
COPY pyproject.toml README.md ./
COPY protos ./protos
COPY services ./services
RUN /opt/venv/bin/pip install --no-deps . \
    && /opt/venv/bin/python -c "import dreamforge.v1.storage_pb2, services.common"

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 dreamforge \
    && mkdir -p /data /app \
    && chown dreamforge /data
COPY --from=build /opt/venv /opt/venv
COPY web /app/web
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data \
    WEB_DIR=/app/web
USER dreamforge
VOLUME ["/data"]
EXPOSE 8000 50051 50052
CMD ["dreamforge-gateway"]
