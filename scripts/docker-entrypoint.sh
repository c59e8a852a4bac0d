#!/bin/sh
# Container entry point: drop privileges, migrate, optionally load the demos, then serve.
#
# Started as root (the image's default), it only prepares the instance folder
# and starts itself again as `dormouse` with exactly three capabilities left,
# ambient so they survive exec: SETUID and SETGID, with which the local backend
# starts each app as `dormouse-app` (through setpriv, which clears every
# capability and sets no_new_privs), and KILL, with which Dormouse and the
# app's watchdog can stop that app's processes. The instance folder (secret
# key, JWT keys, SQLite database, app logs) belongs to `dormouse`, mode 0711
# (entered, not listed), its files and folders 0600/0700, so app processes
# cannot read them. Only its envs/ folder (the apps' Python environments and
# uv's cache, ENVS_DIR and ENV_CACHE_DIR) belongs to `dormouse-app`, which
# builds them (app/backends/env_builder.py) and runs the apps from them.
#
# Started as any other user (Kubernetes runs it as 10001), nothing is switched:
# apps, if the local backend runs any, run as that same user.
set -eu

instance="${INSTANCE_PATH:-/data}"

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$instance"
  chown dormouse:dormouse "$instance"
  chmod 0711 "$instance"
  envs="${ENVS_DIR:-$instance/envs}"
  if [ "${LOCAL_RUN_AS-dormouse-app}" = dormouse-app ]; then
    mkdir -p "$envs"
    chown dormouse-app:dormouse-app "$envs"
    chmod 0755 "$envs"
  fi
  export HOME=/home/dormouse USER=dormouse LOGNAME=dormouse
  export LOCAL_RUN_AS="${LOCAL_RUN_AS-dormouse-app}"
  exec setpriv --reuid=dormouse --regid=dormouse --init-groups \
    --inh-caps=-all,+setuid,+setgid,+kill --ambient-caps=-all,+setuid,+setgid,+kill \
    --bounding-set=-all,+setuid,+setgid,+kill -- "$0" "$@"
fi

if [ -n "${LOCAL_RUN_AS:-}" ] && ! grep -q '^CapEff:.*[1-9a-f]' /proc/self/status; then
  echo "docker-entrypoint: started as uid $(id -u), not root: apps run as this same user" >&2
  unset LOCAL_RUN_AS
fi

umask 077
flask --app wsgi db upgrade
if [ "${LOAD_DEMOS:-1}" = "1" ]; then
  flask --app wsgi demo load
fi
if [ "${BACKEND:-local}" = "local" ]; then
  exec python -m app.front_door  # Traefik on PORT in front of Dormouse and the apps
fi
exec gunicorn --config gunicorn.conf.py wsgi:app  # on a cluster, the cluster's Traefik is the front door
