# ECR Portal image: one image for web, worker, beat and the one-shot migrate job.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ECRPORTAL_DATA_DIR=/data \
    ECRPORTAL_STATIC_ROOT=/app/static \
    ECRPORTAL_BIND=0.0.0.0:8000

WORKDIR /app
RUN useradd --system --uid 10001 --home-dir /app ecrportal \
    && mkdir /data && chown ecrportal /data

COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock

COPY manage.py ./
COPY ecrportal ecrportal
COPY tasks_app tasks_app
COPY templates templates
# Static files are part of the image; whitenoise serves them.
RUN SECRET_KEY=collectstatic-only ECRPORTAL_DATA_DIR=/tmp/build \
    python manage.py collectstatic --noinput --verbosity 0 && rm -rf /tmp/build

USER ecrportal
EXPOSE 8000
CMD ["gunicorn", "--config", "python:ecrportal.gunicorn_conf", "ecrportal.wsgi"]
