# promdemo: the order service (ENTRYPOINT) and, in the same image, the operator
# (`promdemo operator`, via the [operator] extra), so one image serves both:
#   app:      docker run -p 8080:8080 ghcr.io/promdemo/promdemo:0.1.0
#   operator: command: ["promdemo", "operator"] in the operator's Deployment
#
# Every dependency is installed at the version pinned in constraints.txt (what CI
# tested; `make constraints` refreshes it), so a rebuild next month runs the same
# code. Plain Dockerfile syntax: it builds with BuildKit or the legacy builder.
#
# Runs as a numeric non-root user (runAsNonRoot can verify it) and writes
# nothing to disk, so it works with readOnlyRootFilesystem: no .pyc at run time
# (compiled at install instead), request bodies held in memory by the app,
# gunicorn's worker heartbeat file in /dev/shm (memory).

# --- build: a virtual environment with the project and its pinned dependencies
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Only what the distribution is built from (see .dockerignore).
COPY pyproject.toml README.md constraints.txt ./
COPY app ./app
COPY operator ./operator
# pip compiles the .pyc files here, so nothing needs to be written when the code runs.
RUN python -m venv /opt/promdemo \
    && /opt/promdemo/bin/pip install --no-cache-dir --constraint constraints.txt '.[operator]'

# --- runtime: the environment alone, no compiler, no source tree -------------
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/promdemo/bin:$PATH
RUN groupadd --system --gid 10001 promdemo \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin promdemo
COPY --from=build /opt/promdemo /opt/promdemo
USER 10001:10001
WORKDIR /
# 8080: the service; 8081: /healthz and /readyz alone, for the kubelet.
EXPOSE 8080 8081
ENTRYPOINT ["promdemo-app"]
CMD ["--host", "0.0.0.0", "--port", "8080", "--probe-port", "8081"]
