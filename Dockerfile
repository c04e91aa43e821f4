# syntax=docker/dockerfile:1
# MAE Lab: one image that runs both the web app (`mae serve`) and the training worker
# (`mae worker`); docker-compose.yml starts one container of each from it.
#
#   docker build -t mae-lab .                     CPU torch (default, ~1 GB smaller)
#   docker build -t mae-lab:cuda \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124 .
#                                                 CUDA torch; the wheels bring their own CUDA
#                                                 libraries, the host needs the NVIDIA driver
#                                                 and container toolkit
# BASE_IMAGE may be any image with Python >= 3.11 and pip on PATH.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Every install takes the versions the test suite passed on (constraints.txt).
# torch from the chosen index first: its layer is the big one and is reused when the code changes
COPY constraints.txt ./
RUN pip install -c constraints.txt --index-url "${TORCH_INDEX_URL}" torch torchvision

COPY pyproject.toml README.md ./
COPY mae_core ./mae_core
COPY mae_service ./mae_service
COPY mae_tools ./mae_tools
COPY mae_cli ./mae_cli
COPY app ./app
COPY templates ./templates
COPY static ./static
COPY checkpoints ./checkpoints
# a regular install: pip builds the wheel (templates, static files, paper results and the
# embedded default checkpoint inside the packages) and installs it; torch is already there
# (the postgres extra: psycopg, for the job store of `--profile cluster` and MAE_JOBS_URL)
RUN pip install -c constraints.txt ".[app,postgres]"

# A non-root user owns the data folder. Named volumes mounted on these paths start as copies of
# them, owner included, so the user can write to fresh volumes.
RUN useradd --create-home --uid 10001 --user-group mae \
 && mkdir -p /srv/mae/jobs /srv/mae/runs /srv/mae/checkpoints /data/images \
 && chown -R mae:mae /srv/mae
USER mae

# /srv/mae: job store, run folders, trained checkpoints (shared by web and worker)
# /data/images: one sub-folder of images per dataset (mounted read-only)
# (checkpoints: MAE_DATA_DIR/checkpoints, beside the embedded default inside the package)
ENV MAE_HOST=0.0.0.0 \
    MAE_PORT=8000 \
    MAE_DATA_DIR=/srv/mae \
    MAE_DATA_ROOTS=/data/images
WORKDIR /srv/mae

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/health' % os.environ.get('MAE_PORT', '8000'), timeout=4)"]

ENTRYPOINT ["mae"]
CMD ["serve"]
