"""The baseline for the forwardAuth benchmark: a Flask app whose one endpoint
answers as the gate does when it lets a request pass (200, empty body), with no
check at all. Served by gunicorn with Dormouse's own settings
(bench/gunicorn_bare.conf.py), so the gap between the two is the check."""

from flask import Flask, Response

app = Flask(__name__)


@app.get("/_auth/viz")
def check() -> Response:
    return Response(status=200)
