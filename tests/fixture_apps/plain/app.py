"""A WSGI app with nothing to import (so it starts in well under a second),
published by the load and fault tests as a ``dash`` app (gunicorn runs
``app.py:server``). ``START_DELAY`` (seconds, the app's own environment) makes
it sleep before it serves, for a test that needs a start to be in progress."""

import os
import time

time.sleep(float(os.environ.get("START_DELAY", "0")))


def server(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"plain fixture app\n"]
