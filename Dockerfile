# syntax=docker/dockerfile:1
# promdemo: the order service (ENTRYPOINT) and, in the same image, the operator
# (`promdemo operator`, via the [operator] extra), so one image serves both:
#   app:      docker run -p 8080:8080 promdemo:0.1.0
#   operator: command: ["promdemo", "operator"] in the operator's Deployment
#
# Runs as a numeric non-root user (runAsNonRoot can verify it) and writes
# nothing to disk, so it works with readOnlyRootFilesystem: no .pyc at run time
# (compiled at install instead), request bodies held in memory by waitress.

# --- build: wheels for the project and every dependency ---------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Only what the distribution is built from (see .dockerignore).
COPY pyproject.toml README.md ./
COPY app ./app
COPY operator ./operator
RUN pip wheel --wheel-dir /wheels '.[operator]'

# --- runtime ------------------------------------------------------------------
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Installed from the wheels only: the runtime stage never reaches an index, and
# no compiler or source tree is left in the image. pip compiles the .pyc files
# here, as root, so nothing needs to be written when the code runs.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels 'promdemo[operator]' \
    && groupadd --system --gid 10001 promdemo \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin promdemo
USER 10001:10001
WORKDIR /
EXPOSE 8080
ENTRYPOINT ["promdemo-app"]
CMD ["--host", "0.0.0.0", "--port", "8080"]
