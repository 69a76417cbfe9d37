# The Anxin server image: every process of a deployment runs from it (API workers,
# bridges, scheduler, police link); deploy/compose.yaml wires them to PostgreSQL, Redis
# and Mosquitto. docs/cluster.md explains the processes.
#
#   docker build -t anxin .
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never

# ffmpeg: camera readers and snapshots (docs/video.md); nothing else comes from apt.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir uv==0.13.8

WORKDIR /app
# Dependencies first (cached while only the code changes), exactly as uv.lock pins them.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
RUN uv sync --frozen --no-dev

RUN useradd --system --create-home --home-dir /var/lib/anxin anxin
USER anxin
ENV PATH=/app/.venv/bin:$PATH \
    ANXIN_DATA_DIR=/var/lib/anxin \
    ANXIN_ENV=production
EXPOSE 8000
# One process per container under an orchestrator (compose.yaml); `anxin cluster` runs
# them all under supervisord in one container instead.
CMD ["anxin", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "3"]
