"""How often a starting deployment is looked at, as pure functions of its age.

A start is watched closely while it is young and less and less as it goes
on: the wait before the next look is a tenth of the deployment's age, at
least ``first`` and at most ``last``. So whoever waits learns that the app
is ready within about 10 % of what they have waited already (an app that
answers after 0.4 s is seen within 0.1 s; one that takes 30 s, within 1 s),
while a long start costs no more looks than before: from ``10 × last``
seconds on, one per ``last``.

Two schedules use it: the backend reads of :func:`app.lifecycle.refresh`
(from 0.1 s to ``STATUS_READ_INTERVAL``, claimed once per interval across
all workers and replicas) and the viz page's status poll (from 0.1 s to
``STATUS_POLL_INTERVAL``; the status partial carries the next delay).
"""

from __future__ import annotations

from datetime import datetime

SHARE = 0.1  # the wait before the next look, as a share of the age
FIRST_POLL = 0.1  # seconds: the page's fastest poll, while the deployment is young


def backoff(age: float, *, first: float, last: float) -> float:
    """Seconds before the next look at a deployment ``age`` seconds old."""
    return min(last, max(first, SHARE * max(0.0, age)))


def age_of(created_at: datetime, now: datetime) -> float:
    return (now - created_at).total_seconds()


def poll_delay(age: float, slowest: float) -> float:
    """Seconds before the viz page polls a deployment ``age`` seconds old
    again (``slowest``: STATUS_POLL_INTERVAL), rounded for the partial."""
    return round(backoff(age, first=min(FIRST_POLL, slowest), last=slowest), 2)


def polls_within(seconds: float, slowest: float, start_age: float = 0.0) -> int:
    """How many polls one page makes in ``seconds`` watching a start from
    ``start_age`` (the rate limit on status partials counts them)."""
    age, polls = start_age, 0
    end = start_age + seconds + 1e-9  # a sum of tenths is inexact
    while (age := age + poll_delay(age, slowest)) <= end:
        polls += 1
    return polls
