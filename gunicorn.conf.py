"""Gunicorn settings for Dormouse, from the environment (see README)."""

import glob
import os
import shutil
import sys
import tempfile

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
    _metrics_directory(server)


def _metrics_directory(server):
    """Prometheus multiprocess mode (app/metrics.py): every worker writes its
    counts to files in PROMETHEUS_MULTIPROC_DIR and a scrape adds them up. The
    variable must be set before any worker imports prometheus_client (the
    master never does before this: it does not load the app), and the
    directory must start empty: the one configured is emptied of its
    metric files, else a new private one is made (and removed in on_exit).
    Here, not at the top of this file, which runs again on a reload (SIGHUP)
    and is read by bench/gunicorn_bare.conf.py."""
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if configured:
        os.makedirs(configured, exist_ok=True)
        for path in glob.glob(os.path.join(configured, "*.db")):
            os.remove(path)
        return
    made = tempfile.mkdtemp(prefix="dormouse-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    server.dormouse_metrics_dir = made  # the arbiter outlives reloads of this file


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    made = getattr(server, "dormouse_metrics_dir", None)
    if made:
        shutil.rmtree(made, ignore_errors=True)


def post_worker_init(worker):
    from app import scheduler

    scheduler.start(worker.wsgi)
