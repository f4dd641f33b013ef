# One image: Java 17 + ffmpeg + the pinned Python stack, the shipped model archived into the
# store, TorchServe on loopback and the gateway on :8000. It runs the same scripts CI tests:
# scripts/setup.sh (install), scripts/archive.py (build + load-test the .mar), scripts/serve.py.
FROM python:3.11-slim-bookworm

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app

# Dependencies first, so code changes do not reinstall torch. SETUP_PROFILE=serve skips the
# dataset's TTS engines and speech packages.
COPY pyproject.toml ./
COPY scripts/setup.sh scripts/setup.sh
RUN SETUP_PROFILE=serve bash scripts/setup.sh \
    && rm -rf /var/lib/apt/lists/* /root/.cache/pip

COPY config.properties ./
COPY model model
COPY handler handler
COPY gateway gateway
COPY scripts scripts
COPY artifacts/default artifacts/default
RUN .venv/bin/python -m scripts.archive --checkpoint artifacts/default --store model-store

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/ || exit 1
# DETECTOR_ADMIN_TOKEN enables version changes through the gateway; see README "Settings".
CMD [".venv/bin/python", "-m", "scripts.serve", "run", "--host", "0.0.0.0", "--run-dir", "/app/runs/serve"]
