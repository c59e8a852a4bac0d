"""The baselines: a Flask app with no checks at all, served by gunicorn with
Dormouse's own settings (bench/gunicorn_bare.conf.py), so the gap between it
and Dormouse is what Dormouse adds.

- ``GET /_auth/viz``: answers as the gate does when it lets a request pass
  (200, empty body), for bench/forward_auth.py;
- ``GET /<owner>/<title>/viz/status`` and ``POST /<owner>/<title>/viz/ping``:
  a tiny JSON, at the viz page's paths, for bench/hot_paths.py.
"""

from flask import Flask, Response, jsonify

app = Flask(__name__)


@app.get("/_auth/viz")
def check() -> Response:
    return Response(status=200)


@app.get("/<owner>/<title>/viz/status")
def status(owner: str, title: str) -> Response:
    return jsonify(status="running")


@app.post("/<owner>/<title>/viz/ping")
def ping(owner: str, title: str) -> Response:
    return jsonify(status="running")
