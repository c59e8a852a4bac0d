"""Rate limits (Flask-Limiter): every limit Dormouse sets, in this one module,
applied by endpoint in :func:`init_app` so the views stay as they are.

Each limit is a sliding window (Flask-Limiter's ``moving-window`` strategy): a
request counts for exactly one window length after it was made, and a refused
request is not counted. So a flood of wrong passwords locks a user name only
while it goes on, and for at most one window once it stops; nobody is locked
out for good. A refused request is answered 429 with ``Retry-After`` (see
:mod:`app.errors`).

What is never limited: the gate (``/_auth/viz``, which Traefik asks about every
request to an app), pings and JSON status polls of a running app, and every
page that only reads.

Who a client is: its address, ``request.remote_addr``. Behind the front door
every request comes from Traefik, so Traefik's ``X-Forwarded-For`` names the
client, and :class:`app.clients.ForwardedFor` reads it, but only from a peer that can be
Traefik: loopback (the local front door), or on Kubernetes a peer inside the
cluster (a non-public address). IPv6 clients count per /64, the block one
subscriber gets.

Counts live in ``RATE_LIMIT_STORAGE``: ``memory://`` counts in each gunicorn
worker on its own, so a limit holds per worker and per replica; Redis counts
once for every worker and replica. If Redis cannot be reached, each worker
counts in memory until it can again.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from flask import Flask, current_app, g, request
from flask_limiter import Limiter, RouteLimit
from flask_login import current_user
from limits import RateLimitItem, parse_many
from werkzeug.exceptions import TooManyRequests

from . import managing
from .clients import ForwardedFor, client_key
from .moving_window import MovingWindows

# --- the limits ------------------------------------------------------------------
# Limit strings are Flask-Limiter's ("N/period", several joined by ";").

#: Password guessing against one account, from any number of addresses (a name
#: is counted however many clients try it). Five tries a minute leave room for
#: typos; twenty an hour cap a slow, patient guesser.
LOGIN_PER_NAME = "5/minute;20/hour"
#: One address trying many names (credential stuffing); higher than per name,
#: since several people may share an address (an office, a school).
LOGIN_PER_CLIENT = "20/minute"
#: One visitor waking apps (a script once started all eleven in the gallery in
#: under a second); a person opens a few apps a minute. Only starts that make
#: a deployment count: one that joins a live deployment is a join.
START_PER_CLIENT = "10/minute"
#: One app's start, from everyone: many addresses cannot turn a start into a
#: write storm of deployments started and stopped.
START_PER_APP = "60/minute"
#: Joining an app that is running already (its page opened once more, by one
#: person or by a class behind one address): nothing is made but the page
#: load it counts, so many may, and no more than a person could reload.
JOIN_PER_CLIENT = "300/minute"
#: Joins of one app, from everyone: each counts a page load (a write), so
#: many addresses together cannot turn joins into a write storm either.
JOIN_PER_APP = "600/minute"
#: Publishing writes apps; a person correcting a form stays well inside.
PUBLISH_PER_USER = "10/minute;30/hour"
#: Making API tokens (the tokens page): a person makes a few; a script
#: minting them in a loop is stopped.
TOKENS_PER_USER = "5/minute;20/day"
#: Entry tokens (the iframe's, in the running app's HTML status partial; the
#: ping's HTML answer carries one too): a page gets one each time it opens the
#: app, so per client as many as the joins a class behind one address makes.
#: Only answers that carry a token count: a starting app's partials, JSON
#: answers and polls carry none and are not limited.
ENTRY_TOKENS_PER_CLIENT = "300/minute"

#: Goodbyes (a page's beacon as it closes, ``viz.goodbye``): a person closes
#: a few tabs a minute; a script cannot count many pages closed that are not.
GOODBYE_PER_CLIENT = "30/minute"

#: Sliding windows (see the module's docstring).
STRATEGY = "moving-window"
#: HTMX requests whose 429 partial asks again by itself once the wait is over.
RETRY_ENDPOINTS = frozenset({"viz.start", "viz.status"})

EXTENSION = "dormouse.limiter"
ENTRY_TOKENS = "dormouse.entry_token_limit"
JOINS = "dormouse_start_joins"  # flask.g: this start request's start_joins()

logger = logging.getLogger(__name__)


# --- what a count is kept by (the client: app/clients.py) ----------------------------


def login_name_key() -> str:
    """The user name a login form names, stripped as the login strips it and
    lower-cased (user names are lower-case slugs, so ``Alice`` is no other
    account): spellings of one name share its count. Cut to a bounded length,
    as a count is kept per name."""
    return "name:" + request.form.get("username", "").strip().lower()[:100]


def app_key() -> str:
    args = request.view_args or {}
    return f"app:{args.get('owner', '')}/{args.get('title', '')}"


def start_joins() -> bool:
    """Whether this start request (``/<owner>/<title>/viz/start`` or the
    API's) would only join a live deployment its user may see; asked once per
    request. A deployment that stops between this answer and the view is
    started again uncounted: a rare race, bounded by the join limit."""
    if JOINS not in g:
        args = request.view_args or {}
        setattr(g, JOINS, managing.start_joins(args.get("owner", ""), args.get("title", ""), current_user))
    return bool(getattr(g, JOINS))


def start_creates() -> bool:
    return not start_joins()


def publisher_key() -> str:
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return client_key()


# --- wiring --------------------------------------------------------------------------


def init_app(app: Flask) -> None:
    """Read client addresses through :class:`ForwardedFor`, make this app's
    limiter from ``RATE_LIMITS`` and ``RATE_LIMIT_STORAGE`` and wrap the
    limited views in ``app.view_functions``.

    The limiter is the app's own (``app.extensions["dormouse.limiter"]``), not
    a module-level one: it holds its storage, and every app made in one process
    (the tests make many) counts apart."""
    settings = app.config["DORMOUSE"]
    app.wsgi_app = ForwardedFor(app.wsgi_app, settings.backend)  # type: ignore[method-assign]
    app.config.setdefault("RATELIMIT_ENABLED", settings.rate_limits_enabled)
    app.config.setdefault("RATELIMIT_STORAGE_URI", settings.rate_limit_storage)
    app.config.setdefault("RATELIMIT_STRATEGY", STRATEGY)
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "dormouse")  # a shared Redis may hold others' keys
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)  # Redis down: count in memory
    limiter = Limiter(key_func=client_key)
    limiter.init_app(app)
    app.extensions[EXTENSION] = limiter
    if not limiter.enabled:
        return
    _drop_global_hooks(app, limiter)

    post = ["POST"]
    _apply(
        app,
        "auth.login",
        limiter.limit(LOGIN_PER_NAME, key_func=login_name_key, methods=post),
        limiter.limit(LOGIN_PER_CLIENT, methods=post),
    )
    # the viz page's start and the API's count together: a script gains nothing by using both;
    # a start that joins a live deployment counts as a join instead (start_joins)
    starts = (
        limiter.shared_limit(START_PER_APP, scope="start-app", key_func=app_key, exempt_when=start_joins),
        limiter.shared_limit(START_PER_CLIENT, scope="start-client", exempt_when=start_joins),
        limiter.shared_limit(JOIN_PER_APP, scope="join-app", key_func=app_key, exempt_when=start_creates),
        limiter.shared_limit(JOIN_PER_CLIENT, scope="join-client", exempt_when=start_creates),
    )
    _apply(app, "viz.start", *starts)
    _apply(app, "publish.publish_app", limiter.limit(PUBLISH_PER_USER, key_func=publisher_key, methods=post))
    _apply(app, "owner.edit_app", limiter.limit(PUBLISH_PER_USER, key_func=publisher_key, methods=post))
    # a restart starts a deployment: the start limits; a password check: the login limit, per user
    restarts = limiter.limit(START_PER_APP, key_func=app_key), limiter.limit(START_PER_CLIENT)
    _apply(app, "owner.restart", *restarts)
    _apply(app, "auth.account", limiter.limit(LOGIN_PER_NAME, key_func=publisher_key, methods=post))
    # the API (app/api/): its token's user is the current user once the
    # blueprint's before_request has checked the token, before these run
    _apply(app, "api.start", *starts)
    _apply(app, "api.publish_app", limiter.limit(PUBLISH_PER_USER, key_func=publisher_key))
    _apply(app, "api.edit_app", limiter.limit(PUBLISH_PER_USER, key_func=publisher_key))
    _apply(app, "tokens.page", limiter.limit(TOKENS_PER_USER, key_func=publisher_key, methods=post))
    in_memory = settings.rate_limit_storage.startswith("memory://")
    app.extensions[ENTRY_TOKENS] = EntryTokenLimit(
        limiter, ENTRY_TOKENS_PER_CLIENT, scope="entry-tokens", in_memory=in_memory
    )
    _apply(app, "viz.goodbye", limiter.limit(GOODBYE_PER_CLIENT))


def _apply(app: Flask, endpoint: str, *limits: RouteLimit) -> None:
    view = app.view_functions[endpoint]
    for limit in limits:
        view = limit(view)
    app.view_functions[endpoint] = view


class EntryTokenLimit:
    """The entry-token limit (``ENTRY_TOKENS_PER_CLIENT``), one count per
    client shared by the status and ping partials that carry a token, counted
    where the token is made (:func:`count_entry_token`; before Flask,
    app/hot_wsgi.py), not by Flask-Limiter's decorator, whose per-request
    search for the limits that apply cost the partial ~160 us, a third of its
    time (measured in-process, bench/hot_paths.py). The same moving window:
    with ``memory://`` storage (each worker counts on its own either way) in
    :class:`MovingWindows`, which forgets old hits without the limits
    library's background walk over every key (~10 ms every ~20 ms with
    thousands of clients); with Redis, straight against Flask-Limiter's
    strategy and storage, with the same keys (``RATELIMIT_KEY_PREFIX``, the
    client, the scope) and the same fallback to counting in memory while Redis
    cannot be reached. A refusal is a 429 with the seconds until the window
    lets one through again (app/errors.py)."""

    def __init__(self, limiter: Limiter, limits: str, *, scope: str, in_memory: bool) -> None:
        self.limiter = limiter
        self.items = sorted(parse_many(limits))
        self.scope = scope
        self.windows = MovingWindows([(i.amount, i.get_expiry()) for i in self.items]) if in_memory else None
        self.clock = time.monotonic

    def check(self) -> None:
        if not self.limiter.enabled:
            return
        if self.windows is not None:
            wait = self.windows.hit(client_key(), now=self.clock())
            if wait is not None:
                logger.info("ratelimit %s (%s) exceeded at %s", self.items, client_key(), self.scope)
                raise TooManyRequests(retry_after=max(1, math.ceil(wait)))
            return
        args = [current_app.config["RATELIMIT_KEY_PREFIX"], client_key(), self.scope]
        try:
            refused = self._refused(args)
        except Exception:  # the storage (Redis) failed: as Flask-Limiter does, count in memory
            if not self.limiter._in_memory_fallback_enabled or self.limiter._storage_dead:
                raise
            logger.warning("Rate limit storage unreachable - falling back to in-memory storage")
            self.limiter._storage_dead = True
            refused = self._refused(args)
        if refused is not None:
            logger.info("ratelimit %s (%s) exceeded at %s", refused, args[1], self.scope)
            raise TooManyRequests(retry_after=self._wait(refused, args))

    def _refused(self, args: list[str]) -> RateLimitItem | None:
        strategy = self.limiter.limiter
        for item in self.items:
            if not strategy.hit(item, *args):
                return item
        return None

    def _wait(self, item: RateLimitItem, args: list[str]) -> int:
        try:
            return max(
                1, math.ceil(self.limiter.limiter.get_window_stats(item, *args).reset_time - time.time())
            )
        except Exception:  # the storage failed just now: the whole window is an upper bound
            return item.get_expiry()


def count_entry_token(app: Flask) -> None:
    """Count an entry token about to be handed to this request's client
    (:class:`EntryTokenLimit`); past the limit, 429 (``TooManyRequests``)."""
    limit: EntryTokenLimit | None = app.extensions.get(ENTRY_TOKENS)
    if limit is not None:
        limit.check()


def _drop_global_hooks(app: Flask, limiter: Limiter) -> None:
    """Every limit here decorates a view, whose wrapper checks it. Flask-Limiter's
    app-wide hooks serve what Dormouse does not use (default and application
    limits, ``X-RateLimit`` headers, conditional deductions), yet would run on
    every request, the gate's included, and cost it some 60 us, about as much
    as the whole check (measured in-process). Take them out."""

    def ours(hook: Callable[..., Any]) -> bool:
        owner = hook.args[0] if isinstance(hook, partial) and hook.args else getattr(hook, "__self__", None)
        return owner is limiter

    for hooks in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs):
        if None in hooks:
            hooks[None][:] = [hook for hook in hooks[None] if not ours(hook)]


def retry_after(exc: Exception) -> int:
    """Whole seconds until the limit that refused this request lets one
    through again (at least 1)."""
    limiter: Limiter | None = current_app.extensions.get(EXTENSION)
    breached = limiter.current_limit if limiter is not None and limiter.enabled else None
    if breached is not None:
        try:
            return max(1, math.ceil(breached.window[0] - time.time()))
        except Exception:  # the storage failed just now: the whole window is an upper bound
            return breached.limit.get_expiry()
    value = getattr(exc, "retry_after", None)  # abort(429, retry_after=...)
    if isinstance(value, datetime):
        return max(1, math.ceil(value.timestamp() - time.time()))
    if isinstance(value, int):
        return max(1, value)
    return 60
