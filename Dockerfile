# Dormouse as one container: the Flask front end, the scheduler and (with the
# local backend) the app processes it starts. SQLite lives on the /data volume.
#
#   docker build -t dormouse .
#   docker run -p 8000:8000 -p 8100-8199:8100-8199 -v dormouse-data:/data \
#       -e SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))') \
#       -e JWT_KEYS=k1:$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))') dormouse
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 dormouse \
 && useradd --system --uid 10001 --gid dormouse --home-dir /home/dormouse --create-home dormouse

WORKDIR /srv/dormouse
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY --chown=root:root app ./app
COPY --chown=root:root migrations ./migrations
COPY --chown=root:root templates ./templates
COPY --chown=root:root static ./static
COPY --chown=root:root examples ./examples
COPY --chown=root:root scripts/docker-entrypoint.sh ./scripts/docker-entrypoint.sh
COPY --chown=root:root wsgi.py gunicorn.conf.py ./

RUN mkdir /data && chown dormouse:dormouse /data
VOLUME ["/data"]

# Listen on all interfaces inside the container; app processes get ports
# 8100-8199, which the browser reaches directly (publish them too).
ENV DORMOUSE_ENV=production \
    INSTANCE_PATH=/data \
    DATABASE_URL=sqlite:////data/dormouse.db \
    HOST=0.0.0.0 \
    PORT=8000 \
    LOCAL_BIND_HOST=0.0.0.0 \
    LOCAL_PORT_MIN=8100 \
    LOCAL_PORT_MAX=8199 \
    SESSION_COOKIE_SECURE=0
# Behind an HTTPS reverse proxy, run with -e SESSION_COOKIE_SECURE=1.

USER dormouse
EXPOSE 8000 8100-8199
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"
ENTRYPOINT ["./scripts/docker-entrypoint.sh"]
