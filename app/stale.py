"""The idle policy as SQL, and the sweep's set-based stop of idle deployments.

:func:`stale_condition` is the SQL twin of :func:`app.idle.decide`: for a
live row it is true exactly when ``decide`` says stop (proved row by row by
tests/test_stale.py on both databases). ``decide`` stops a running row when
``now`` is past every moment that keeps it (the load clock from the latest of
load, ready and creation, plus ``load_timeout``; the latest ping plus
``ping_timeout`` and the coalescing slack; ``keep_awake_until``), or, once
all its pages have said goodbye, past the latest goodbye plus
``goodbye_grace`` and its keep-awake; ``now > t + d`` is ``t < now - d``
in exact microsecond arithmetic, so each keeper becomes one indexed-column
comparison against a cutoff computed once in Python.

:func:`stop_idle` reads the running rows that are stale, in pages by id
(keyset: memory is bounded by the page, whatever the table's size), confirms
each with ``idle.decide`` itself, and stops each page with **one** conditional
``UPDATE … WHERE id IN (page) AND <still stale> RETURNING id``. Re-checking the
predicate in the UPDATE is the race guard of ``lifecycle.stop(if_unchanged=True)``
for a whole page at once: a load, ping or keep-awake that lands between the
decision and the stop makes the row no longer stale, so the UPDATE leaves it.
Each row the UPDATE returns gets exactly one backend stop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, or_, select, update

from . import idle, keyset, metrics
from .backends.base import Backend
from .extensions import db
from .models import Deployment, User, VizApp

log = logging.getLogger(__name__)

PAGE = 1000  # rows per page read and per conditional UPDATE


@dataclass(frozen=True)
class AppRef:
    """What a report line says of an app, without loading the ORM row."""

    owner: str
    title: str

    @property
    def slug_path(self) -> str:
        return f"{self.owner}/{self.title}"


@dataclass(frozen=True)
class DeploymentRef:
    """A deployment the sweep stopped, as its report keeps it (no ORM object,
    so a long report is never expired and reloaded at each commit)."""

    id: int
    public_name: str
    backend_ref: str | None
    app: AppRef


def _before(column: ColumnElement, cutoff: datetime) -> ColumnElement[bool]:
    return column < cutoff


def _unset_or_before(column: ColumnElement, cutoff: datetime) -> ColumnElement[bool]:
    return or_(column.is_(None), column < cutoff)


def _not_after(column: ColumnElement, moment: ColumnElement) -> ColumnElement[bool]:
    return or_(column.is_(None), column <= moment)


def all_pages_closed() -> ColumnElement[bool]:
    """SQL twin of :func:`app.idle.all_pages_closed`."""
    bye = Deployment.latest_goodbye_at
    return and_(
        bye.is_not(None),
        Deployment.page_loads - Deployment.goodbyes <= 0,
        _not_after(Deployment.latest_load_at, bye),
        _not_after(Deployment.latest_ping_at, bye),
    )


def running_stale(now: datetime, limits: idle.IdleLimits) -> ColumnElement[bool]:
    """A running row that ``idle.decide`` stops as idle at ``now``: past the
    load's and the ping's keep (the ping's with the coalescing slack), or
    past the goodbye's when all its pages have closed; and not kept awake."""
    load_cutoff = now - timedelta(seconds=limits.load_timeout)
    ping_cutoff = now - timedelta(seconds=limits.ping_timeout + limits.activity_resolution)
    timed_out = and_(
        # the load clock: the latest of load, ready and creation
        _unset_or_before(Deployment.latest_load_at, load_cutoff),
        _unset_or_before(Deployment.ready_at, load_cutoff),
        _before(Deployment.created_at, load_cutoff),
        # never pinged: no ping keeps it
        _unset_or_before(Deployment.latest_ping_at, ping_cutoff),
    )
    if limits.goodbye_grace is not None:
        bye_cutoff = now - timedelta(seconds=limits.goodbye_grace)
        # the goodbye first: NULL on most rows, so the rest is rarely read
        closed = and_(_before(Deployment.latest_goodbye_at, bye_cutoff), all_pages_closed())
        timed_out = or_(timed_out, closed)
    return and_(timed_out, _unset_or_before(Deployment.keep_awake_until, now))


def starting_stale(now: datetime, limits: idle.IdleLimits) -> ColumnElement[bool]:
    """A starting row past ``start_timeout`` (keep-awake does not matter)."""
    return _before(Deployment.created_at, now - timedelta(seconds=limits.start_timeout))


def stale_condition(now: datetime, limits: idle.IdleLimits) -> ColumnElement[bool]:
    """A live row (starting or running) that ``idle.decide(now=now,
    limits=limits)`` stops."""
    return or_(
        and_(Deployment.status == "starting", starting_stale(now, limits)),
        and_(Deployment.status == "running", running_stale(now, limits)),
    )


# What decide reads, plus what a report line and a backend stop need.
_COLUMNS = (
    Deployment.id,
    Deployment.status,
    Deployment.created_at,
    Deployment.ready_at,
    Deployment.latest_load_at,
    Deployment.latest_ping_at,
    Deployment.keep_awake_until,
    Deployment.page_loads,
    Deployment.goodbyes,
    Deployment.latest_goodbye_at,
    Deployment.public_name,
    Deployment.backend_ref,
    User.username,
    VizApp.title,
)


def stale_running_pages(now: datetime, limits: idle.IdleLimits, page: int | None = None) -> Iterator[list]:
    """The running rows that are stale at ``now``, ``page`` at a time in id
    order: the same indexed query, resumed after the last id of each page
    (no cursor stays open across the commits in between). Read through Core:
    no ORM objects."""
    page = page or PAGE
    yield from keyset.pages(
        select(*_COLUMNS)
        .join(VizApp, VizApp.id == Deployment.app_id)
        .join(User, User.id == VizApp.owner_id)
        .where(Deployment.status == "running", running_stale(now, limits)),
        page,
    )


@dataclass
class IdleStops:
    stopped: list[tuple[DeploymentRef, str]]
    errors: int = 0
    gave_up: bool = False  # the lease was lost: another worker sweeps now


def stop_idle(
    now: datetime,
    limits: idle.IdleLimits,
    be: Backend,
    *,
    keep_going: Callable[[], bool] = lambda: True,
    page: int | None = None,
) -> IdleStops:
    """Stop every running deployment that is idle at ``now``, a page at a
    time; ``keep_going()`` is asked before each page (the sweep renews its
    lease there, and stops if it lost it)."""
    out = IdleStops(stopped=[])
    for rows in stale_running_pages(now, limits, page):
        if not keep_going():
            out.gave_up = True
            return out
        chosen: dict[int, tuple[DeploymentRef, str]] = {}
        for row in rows:
            try:
                verdict = idle.decide(now=now, deployment=row, limits=limits)
            except Exception:
                out.errors += 1
                log.exception("sweep: deciding on deployment id %s failed; going on", row.id)
                continue
            if not verdict.stop:  # cannot happen while the predicate is decide's twin
                log.error("sweep: deployment id %s selected as idle but decide keeps it", row.id)
                continue
            ref = DeploymentRef(row.id, row.public_name, row.backend_ref, AppRef(row.username, row.title))
            chosen[row.id] = (ref, verdict.detail)
        if not chosen:
            continue
        try:
            done = db.session.scalars(
                update(Deployment)
                .where(Deployment.id.in_(chosen), Deployment.status == "running", running_stale(now, limits))
                .values(
                    status="stopped",
                    stopped_at=now,
                    stop_reason="idle",
                    status_reason=case({i: detail for i, (_, detail) in chosen.items()}, value=Deployment.id),
                    phase="",
                )
                .returning(Deployment.id)
                .execution_options(synchronize_session=False)
            ).all()
            db.session.commit()
        except Exception:
            out.errors += 1
            db.session.rollback()
            log.exception("sweep: stopping a page of %d idle deployments failed; going on", len(chosen))
            continue
        for dep_id in sorted(done):
            ref, detail = chosen[dep_id]
            log.info("deployment %s: stopped (idle) %s", ref.public_name, detail)
            metrics.record_stop("idle")
            out.stopped.append((ref, detail))
            if ref.backend_ref:
                try:
                    be.stop(ref.backend_ref)
                except Exception:  # reconcile stops leftovers on a later sweep
                    log.exception("deployment %s: backend stop failed; reconcile will retry", ref.public_name)
    return out
