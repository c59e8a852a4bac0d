#!/bin/sh
# Container entry point: migrate, optionally load the demos, then serve.
set -eu
flask --app wsgi db upgrade
if [ "${LOAD_DEMOS:-1}" = "1" ]; then
  flask --app wsgi demo load
fi
exec gunicorn --config gunicorn.conf.py wsgi:app
