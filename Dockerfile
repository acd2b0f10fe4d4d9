# One image for every Grassroots service; the SERVICE environment variable picks which one a
# container runs (see docker-compose.yml and docs/deploy.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONWARNINGS=ignore::DeprecationWarning \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONPATH=/app \
    GRASSROOTS_VAR=/app/var

WORKDIR /app

# A fixed uid, so that files in named volumes keep one owner across rebuilds.
RUN groupadd --system --gid 10001 grassroots \
    && useradd --system --uid 10001 --gid grassroots --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin grassroots

# The project and its pinned dependencies (nameko, eventlet, psycopg2-binary, ...) and the
# `grassroots` console script. PYTHONPATH=/app makes the code below the one that runs.
COPY pyproject.toml README.md ./
COPY shared/ shared/
COPY services/ services/
RUN pip install --no-cache-dir . \
    && pip check

COPY policy.yml ./
COPY docker/ docker/
RUN chmod 0755 docker/run-service.sh \
    && mkdir -p var && chown grassroots:grassroots var

USER grassroots

# The gateway's HTTP port (GATEWAY_ADDRESS=0.0.0.0:8000 in docker-compose.yml).
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "docker/healthcheck.py"]

CMD ["docker/run-service.sh"]
