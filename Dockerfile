# The portal image: web (gunicorn), worker and beat all run from it (see compose.yaml).
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config default-libmysqlclient-dev \
    mariadb-client \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# Static files live in the image (WhiteNoise serves them), not in the data volume over /data.
ENV DJANGO_STATIC_ROOT=/app/static
RUN DJANGO_SECRET_KEY=build-only DATABASE_URL=sqlite:////tmp/build.sqlite3 FARM_DATA_DIR=/tmp/build \
    python manage.py collectstatic --no-input
# A numeric user, so Kubernetes' runAsNonRoot can verify it (the chart runs as 10001 too).
RUN useradd --system --uid 10001 --home /app portal && mkdir -p /data && chown portal /data
USER 10001
ENV FARM_DATA_DIR=/data
EXPOSE 8000
CMD ["gunicorn", "portal.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
