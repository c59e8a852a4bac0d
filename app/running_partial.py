"""The viz page's status partial for a running app, rendered once per worker
and shape, the entry token put in per answer.

The partial of a running app (the iframe, app/views/viz.py
``status_response``) differs from answer to answer only in its entry token:
everything else comes from the app's owner, title and framework, the
deployment's status payload and the iframe's URL. So each worker renders the
template once per such shape with a placeholder where the token goes, keeps
the text on both sides, and answers later requests by joining the two around
a fresh token: the same characters ``render_template`` gives (the token is
base64url and dots, which neither the query string nor HTML escaping
changes), without Jinja, two ``url_for`` calls and Flask's template context
per answer (measured: bench/hot_paths.py, docs/performance.md "Hot paths").

The token itself is still made per answer (one-time, per viewer and
deployment: app/tokens.py); only the text around it is remembered. The
template must read nothing but what the key holds (``app``'s owner, title
and framework, ``s``, ``frame_url``): a partial that came to depend on the
request or the viewer would need that in the key (tests/test_running_partial.py
compares the remembered answer with a full render).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Hashable
from typing import Any

from flask import Flask, render_template

TEMPLATE = "partials/viz_status.html"
EXTENSION = "dormouse.running_partials"
SHAPES = 512  # remembered per worker; past that the memo starts again
#: Stands for the token while rendering: random per process, so no app title
#: or URL can contain it by chance (and the split checks it appears once).
PLACEHOLDER = "tok" + secrets.token_hex(16)


class RunningPartials:
    """Per app (``app.extensions``): shape -> the text before and after the token."""

    def __init__(self) -> None:
        self._parts: dict[Hashable, tuple[str, str] | None] = {}
        self._lock = threading.Lock()

    def parts(self, key: Hashable | None) -> tuple[str, str] | None:
        """The text before and after the token for shape ``key``, if remembered."""
        found = self._parts.get(key) if key is not None else None
        return found if isinstance(found, tuple) else None

    def render(self, key: Hashable, token: str, render: Callable[[str], str]) -> str:
        """The partial for shape ``key`` with ``token``; ``render(token)``
        renders it in full (used once per shape, or each time when the token
        cannot be placed, e.g. it does not appear exactly once)."""
        parts = self._parts.get(key, False)
        if parts is False:
            text = render(PLACEHOLDER)
            pieces = text.split(PLACEHOLDER)
            parts = (pieces[0], pieces[1]) if len(pieces) == 2 else None
            with self._lock:
                if len(self._parts) >= SHAPES:
                    self._parts.clear()
                self._parts[key] = parts
        if parts is None:
            return render(token)
        return parts[0] + token + parts[1]


def for_app(app: Flask) -> RunningPartials:
    found = app.extensions.get(EXTENSION)
    if found is None:
        found = app.extensions.setdefault(EXTENSION, RunningPartials())
    return found


def shape(app: Any, payload: dict[str, object], url: str) -> Hashable | None:
    """What the running partial depends on, hashable; None if some part is
    not (nothing is remembered then)."""
    key = (app.owner.username, app.title, app.framework, url, tuple(payload.items()))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def running(
    flask_app: Flask,
    app: Any,
    payload: dict[str, object],
    url: str,
    token: str,
    frame_url: Callable[[str], str],
) -> str:
    """The running partial of ``app`` for ``payload`` with the iframe at
    ``frame_url(token)``."""

    def full(token_text: str) -> str:
        return render_template(TEMPLATE, app=app, s=payload, frame_url=frame_url(token_text))

    key = shape(app, payload, url)
    if key is None:
        return full(token)
    return for_app(flask_app).render(key, token, full)
