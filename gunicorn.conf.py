"""Gunicorn settings for Dormouse, from the environment (see README)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # started from any directory

from app.front_door_settings import listen_address

bind = listen_address(dict(os.environ))
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = 60
graceful_timeout = 20
# Never load the app in the master: the scheduler's thread would not survive fork.
preload_app = False
accesslog = "-"
# Gunicorn 27's control socket lives in one shared path per user; Dormouse does
# not use it, and two servers (or the Dash apps it starts) would clash over it.
control_socket_disable = True


def on_starting(server):
    # Local-backend app processes watch this pid and exit when it does, so no
    # app outlives the server even if it is killed.
    os.environ["DORMOUSE_SUPERVISOR_PID"] = str(os.getpid())


def post_worker_init(worker):
    from app import scheduler

    scheduler.start(worker.wsgi)
