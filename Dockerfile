# envdoctor 0.1.0, recipe torch215-cu130: torch 2.15.0 cu130 for drivers >= 580, Turing to Blackwell
# Regenerate with: envdoctor build --recipe torch215-cu130 --print-dockerfile
# Build context: the envdoctor source tree (pyproject.toml, README.md, envdoctor/, ...).
ARG BASE_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04
FROM ${BASE_IMAGE}

ARG DEBIAN_FRONTEND=noninteractive

# System packages follow the base image, which the recipe pins by tag.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && if ! python3.12 -c "import ensurepip" 2>/dev/null; then apt-get install -y --no-install-recommends python3.12 python3.12-venv; fi \
    && rm -rf /var/lib/apt/lists/*

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN python3.12 -m venv /opt/venv \
    && pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cu130 "torch==2.15.0"
RUN pip install --no-cache-dir "torch==2.15.0" "transformers==5.24.0" "accelerate==1.15.0" "numpy==2.4.6"

COPY pyproject.toml README.md /opt/envdoctor-src/
COPY envdoctor/ /opt/envdoctor-src/envdoctor/
COPY reference_model/ /opt/envdoctor-src/reference_model/
COPY recipes/ /opt/envdoctor-src/recipes/
RUN pip install --no-cache-dir /opt/envdoctor-src \
    && rm -rf /opt/envdoctor-src \
    && useradd --create-home --no-log-init --uid 10001 --shell /bin/bash trainer

LABEL io.envdoctor.recipe="torch215-cu130" \
      io.envdoctor.recipe-hash="eaf1d2fc5e51" \
      io.envdoctor.version="0.1.0" \
      io.envdoctor.torch="2.15.0+cu130"
USER 10001
WORKDIR /home/trainer
CMD ["envdoctor", "check"]
