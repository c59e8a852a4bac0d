"""What one worker remembers of the deployments its viewers' pages watch, so
the viz page's hot paths (the ping of a focused page, the status poll) of a
running app cost no backend call and, most of the time, no query at all.

Two things, both per worker process, thread-safe, bounded (least recently
used entries go first), and driven by a clock the caller passes in:

- **What it last read** of an app and one of its deployments (:class:`Seen`,
  plain frozen data from one joined query, see :mod:`app.watching`): used
  for at most :data:`MAX_AGE` (one second), then read again. So a stop, a
  new visibility (unpublished, private, deleted) or anything else another
  worker wrote is seen within a second; the visibility decision itself is
  made for each request, from the entry and the current user.
- **The latest ping it knows to be stored** for a deployment: a ping is
  written only when the stored one may be older than ACTIVITY_RESOLUTION
  (:func:`needs_write`). The stored ping only moves forward, so knowing it
  was at least ``t`` (this worker wrote or read ``t``) and ``t`` is newer
  than ``now - resolution`` means a write would change nothing the idle
  policy needs: the stored ping still lags the true last ping by at most
  ACTIVITY_RESOLUTION, the bound :func:`app.lifecycle.record_ping` keeps.

Nothing here reads the clock, the database or the backend.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from .models import LIVE_STATUSES

MAX_AGE = timedelta(seconds=1)  # a read is used this long at most
MAX_ENTRIES = 4096  # of each kind, per worker
EXTENSION = "dormouse.status_memo"


@dataclass(frozen=True)
class OwnerSeen:
    username: str


@dataclass(frozen=True)
class AppSeen:
    """What the hot paths need of an app: who may see it, and what the
    status partial names (``owner.username``, ``title``, ``framework``)."""

    id: int
    owner_id: int
    owner: OwnerSeen
    title: str
    framework: str
    published: bool  # public, and not waiting for its first environment (managing.is_published)


@dataclass(frozen=True)
class DeploymentSeen:
    """A deployment's row as read, with what the status answer reads of a
    :class:`app.models.Deployment` (the same attribute names), and the
    iframe's URL the backend made of its reference."""

    id: int
    app_id: int
    app: AppSeen
    public_name: str
    status: str
    status_reason: str
    stop_reason: str | None
    phase: str
    backend_ref: str | None
    created_at: datetime
    ready_at: datetime | None
    latest_load_at: datetime | None
    latest_ping_at: datetime | None
    stopped_at: datetime | None
    keep_awake_until: datetime | None
    url: str | None = None

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES


@dataclass(frozen=True)
class Seen:
    deployment: DeploymentSeen
    read_at: datetime

    @property
    def app(self) -> AppSeen:
        return self.deployment.app


Key = tuple[str, str, str]  # owner's username, app title, deployment's public name


def needs_write(known: datetime | None, *, now: datetime, resolution: float) -> bool:
    """Whether a ping at ``now`` must be written, when the stored ping is
    known to be at least ``known`` (None: nothing known): only if it may be
    older than ``resolution`` seconds, as record_ping's condition says."""
    return known is None or known <= now - timedelta(seconds=resolution)


class StatusMemo:
    """The per-worker memo (one per Flask app: ``app.extensions[EXTENSION]``)."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_age: timedelta = MAX_AGE) -> None:
        self.max_entries = max_entries
        self.max_age = max_age
        self._lock = threading.Lock()
        self._seen: OrderedDict[Key, Seen] = OrderedDict()
        self._pings: OrderedDict[int, datetime] = OrderedDict()  # deployment id -> stored ping >= this
        self._urls: OrderedDict[str, str] = OrderedDict()  # backend reference -> the iframe's URL

    # --- what was read ---------------------------------------------------------

    def seen(self, key: Key, *, now: datetime) -> Seen | None:
        """The entry for ``key`` if it was read less than ``max_age`` before
        ``now`` (and not after it: a clock that went back reads again)."""
        with self._lock:
            entry = self._seen.get(key)
            if entry is None:
                return None
            if not entry.read_at <= now < entry.read_at + self.max_age:
                return None
            self._seen.move_to_end(key)
            return entry

    def remember(self, key: Key, entry: Seen) -> None:
        with self._lock:
            self._seen[key] = entry
            self._seen.move_to_end(key)
            while len(self._seen) > self.max_entries:
                self._seen.popitem(last=False)
        if entry.deployment.latest_ping_at is not None:
            self.note_ping(entry.deployment.id, entry.deployment.latest_ping_at)

    def forget(self, key: Key) -> None:
        with self._lock:
            self._seen.pop(key, None)

    def forget_reads(self) -> None:
        """Read everything again: this worker wrote to a row a read depends on."""
        with self._lock:
            self._seen.clear()

    def url(self, backend_ref: str) -> str | None:
        """The URL made of this backend reference before, if any (a
        reference never changes meaning)."""
        with self._lock:
            return self._urls.get(backend_ref)

    def note_url(self, backend_ref: str, url: str) -> None:
        with self._lock:
            self._urls[backend_ref] = url
            while len(self._urls) > self.max_entries:
                self._urls.popitem(last=False)

    # --- pings -----------------------------------------------------------------

    def known_ping(self, deployment_id: int) -> datetime | None:
        with self._lock:
            return self._pings.get(deployment_id)

    def note_ping(self, deployment_id: int, at: datetime) -> None:
        """The stored ping of this deployment is at least ``at`` (it only moves forward)."""
        with self._lock:
            known = self._pings.get(deployment_id)
            if known is None or at > known:
                self._pings[deployment_id] = at
            self._pings.move_to_end(deployment_id)
            while len(self._pings) > self.max_entries:
                self._pings.popitem(last=False)

    def pinged(self, key: Key, entry: Seen, at: datetime) -> Seen:
        """This worker wrote the ping ``at``: note it, and let the entry say it."""
        self.note_ping(entry.deployment.id, at)
        updated = replace(entry, deployment=replace(entry.deployment, latest_ping_at=at))
        with self._lock:
            if self._seen.get(key) is entry:
                self._seen[key] = updated
        return updated
