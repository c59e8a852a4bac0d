# Dormouse as one container: the front door (Traefik on PORT, the one port),
# the Flask front end behind it, the scheduler and (with the local backend) the
# app processes it starts. SQLite, the secret key and the JWT keys live on /data.
#
#   docker build -t dormouse .
#   docker run -p 8000:8000 -v dormouse-data:/data -e TRUSTED_HOSTS=dormouse.example.org \
#       -e VIZ_HOST=viz.example.org \
#       -e SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))') \
#       -e JWT_KEYS=k1:$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))') dormouse
#
# The container starts as root only to drop privileges (scripts/docker-entrypoint.sh):
# Dormouse runs as `dormouse`, which alone can read /data, and each app process
# as `dormouse-app`, with no capabilities. Started as a non-root user (as on
# Kubernetes), it runs as that user throughout and switches to no other.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# `dormouse` keeps uid 10001 (k8s/base runs the image as 10001).
RUN groupadd --system --gid 10001 dormouse \
 && useradd --system --uid 10001 --gid dormouse --home-dir /home/dormouse --create-home \
      --shell /usr/sbin/nologin dormouse \
 && groupadd --system --gid 10002 dormouse-app \
 && useradd --system --uid 10002 --gid dormouse-app --home-dir /home/dormouse-app --create-home \
      --shell /usr/sbin/nologin dormouse-app \
 && chmod 0700 /home/dormouse /home/dormouse-app

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

RUN mkdir /data && chown dormouse:dormouse /data && chmod 0700 /data
VOLUME ["/data"]

# One port: Traefik listens on PORT and routes Dormouse's hosts (TRUSTED_HOSTS)
# and the apps' host (VIZ_HOST); gunicorn and the apps listen on loopback only.
# Cookies are Secure by default: serve it over HTTPS (ACME_EMAIL, or a proxy
# in front). Browsers also accept them over plain http on *.localhost.
ENV DORMOUSE_ENV=production \
    INSTANCE_PATH=/data \
    DATABASE_URL=sqlite:////data/dormouse.db \
    HOST=0.0.0.0 \
    PORT=8000 \
    SESSION_COOKIE_SECURE=1

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD python -c "import os,urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4).status != 200)"
ENTRYPOINT ["./scripts/docker-entrypoint.sh"]
