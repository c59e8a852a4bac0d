"""Named database leases: at most one holder at a time across workers and
replicas, each for a bounded time.

A lease is one row (``scheduler_leases``). Taking it is a conditional UPDATE
(free, expired, or already ours) or, the first time, an INSERT that the
primary key lets only one process win, so two workers creating it at once
never both hold it.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError

from .extensions import db
from .models import SchedulerLease, utcnow

log = logging.getLogger(__name__)

# This process's name as a holder: host, pid and a random tag (pids repeat
# across containers).
HOLDER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire(name: str, holder: str, ttl: float, now: datetime | None = None) -> bool:
    """Take the named lease if it is free, expired, or already ours."""
    now = now or utcnow()
    expires = now + timedelta(seconds=ttl)
    result = db.session.execute(
        update(SchedulerLease)
        .where(
            SchedulerLease.name == name, or_(SchedulerLease.expires_at < now, SchedulerLease.holder == holder)
        )
        .values(holder=holder, expires_at=expires)
    )
    if result.rowcount == 1:
        db.session.commit()
        return True
    db.session.rollback()
    if db.session.get(SchedulerLease, name) is not None:
        return False
    db.session.add(SchedulerLease(name=name, holder=holder, expires_at=expires))
    try:
        db.session.commit()
        return True
    except IntegrityError:  # another process created it first
        db.session.rollback()
        return False


def release(name: str, holder: str) -> None:
    """Let the lease go now, if ``holder`` has it."""
    db.session.execute(
        update(SchedulerLease)
        .where(SchedulerLease.name == name, SchedulerLease.holder == holder)
        .values(expires_at=utcnow())
    )
    db.session.commit()


@contextmanager
def held(name: str, ttl: float, holder: str = HOLDER) -> Iterator[bool]:
    """``with held(name, ttl) as ok:`` - ``ok`` says whether this process has
    the lease for the block; it is released on the way out."""
    ok = acquire(name, holder, ttl)
    try:
        yield ok
    finally:
        if ok:
            try:
                release(name, holder)
            except Exception:  # it expires by itself
                db.session.rollback()
                log.exception("could not release lease %s", name)
