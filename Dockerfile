# One image for every role: `mnistq migrate`, `mnistq serve`, `mnistq worker`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    KERAS_HOME=/data/keras

WORKDIR /app
COPY pyproject.toml README.md ./
COPY api ./api
COPY worker ./worker
COPY shared ./shared
COPY migrations ./migrations
RUN pip install '.[worker]' \
    && useradd --create-home --uid 10001 mnistq \
    && mkdir -p /data/keras && chown -R mnistq /data

USER mnistq
EXPOSE 8000
CMD ["mnistq", "serve", "--host", "0.0.0.0", "--port", "8000"]
