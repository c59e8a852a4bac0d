"""How often a starting deployment is looked at: the schedule as a pure
function of its age, the backend reads it allows (a counting backend on
SQLite and PostgreSQL, the clock passed in) and the poll delay each status
partial gives the page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app import lifecycle, start_schedule
from app.extensions import db
from app.models import Deployment, utcnow
from tests.factories import make_app, make_user

HX = {"HX-Request": "true"}
TRIGGER = re.compile(r'hx-trigger="every ([0-9.]+)s"')


# --- the schedule -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (-1.0, 0.1),
        (0.0, 0.1),
        (0.5, 0.1),
        (1.0, 0.1),
        (2.5, 0.25),
        (5.0, 0.5),
        (9.0, 0.9),
        (10.0, 1.0),
        (600, 1.0),
    ],
)
def test_the_wait_is_a_tenth_of_the_age_between_first_and_last(age, expected):
    assert start_schedule.backoff(age, first=0.1, last=1.0) == pytest.approx(expected)


def test_the_read_interval_starts_at_a_tenth_of_a_second_and_backs_off_to_one():
    assert lifecycle.read_interval(0.0) == pytest.approx(0.1)
    assert lifecycle.read_interval(3.0) == pytest.approx(0.3)
    assert lifecycle.read_interval(30.0) == pytest.approx(lifecycle.STATUS_READ_INTERVAL) == 1.0
    # worst case, one starting deployment polled by many pages: at most 10 reads a
    # second while it is young, one a second from 10 s on
    assert 1 / lifecycle.read_interval(0.0) == pytest.approx(10)


def test_the_page_polls_fast_while_young_and_at_the_configured_pace_later():
    assert start_schedule.poll_delay(0.3, 1.0) == 0.1
    assert start_schedule.poll_delay(4.0, 1.0) == 0.4
    assert start_schedule.poll_delay(60.0, 1.0) == 1.0
    assert start_schedule.poll_delay(60.0, 3.0) == 3.0  # STATUS_POLL_INTERVAL is the slowest
    assert start_schedule.poll_delay(0.0, 0.05) == 0.05  # never slower than configured


def test_polls_within_counts_the_schedule():
    assert start_schedule.polls_within(1.0, 1.0) == 10  # the first second: every 0.1 s
    assert start_schedule.polls_within(10.0, 1.0, start_age=100.0) == 10  # an old start: every 1 s
    # a start's first minute: ~10 + 10 ln 10 + 50
    assert 80 <= start_schedule.polls_within(60.0, 1.0) <= 90


# --- the backend reads (both databases) ---------------------------------------------------


@pytest.fixture
def wave(any_app):
    return make_app(make_user("alice"), "wave")


def test_a_young_start_is_read_again_after_a_tenth_of_a_second(any_app, any_fake_backend, wave):
    now = utcnow()  # the clock is passed in: what counts is the schedule, not the loop's speed
    dep = lifecycle.ensure_deployment(wave, now=now)
    lifecycle.refresh(dep, now=now)
    assert any_fake_backend.calls["status"] == 1
    for _ in range(5):  # many polls within 0.1 s: no more reads
        lifecycle.refresh(dep, now=now + timedelta(seconds=0.05))
    assert any_fake_backend.calls["status"] == 1
    lifecycle.refresh(dep, now=now + timedelta(seconds=0.12))  # not a whole second later
    assert any_fake_backend.calls["status"] == 2
    any_fake_backend.set(dep.backend_ref, "running")
    seen = now + timedelta(seconds=0.25)
    lifecycle.refresh(dep, now=seen)
    assert dep.status == "running" and dep.ready_at == seen
    assert any_fake_backend.calls["status"] == 3


def test_an_old_start_is_read_once_a_second(any_app, any_fake_backend, wave):
    now = utcnow()
    dep = lifecycle.ensure_deployment(wave, now=now - timedelta(seconds=60))
    lifecycle.refresh(dep, now=now)
    reads = any_fake_backend.calls["status"]
    for tenths in range(1, 10):  # polls every 0.1 s for 0.9 s: no read
        lifecycle.refresh(dep, now=now + timedelta(seconds=tenths / 10))
    assert any_fake_backend.calls["status"] == reads
    lifecycle.refresh(dep, now=now + timedelta(seconds=1.05))
    assert any_fake_backend.calls["status"] == reads + 1


def test_reads_are_claimed_across_workers(any_app, any_fake_backend, wave):
    """Another worker's claim (the conditional UPDATE of ``status_checked_at``)
    counts: this worker read 0.55 s ago, but another claimed the read 0.05 s
    ago, so no second read goes to the backend within the interval."""
    now = utcnow()
    dep = lifecycle.ensure_deployment(wave, now=now)
    lifecycle.refresh(dep, now=now)
    assert any_fake_backend.calls["status"] == 1
    other = now + timedelta(seconds=0.5)  # another worker's read of the row
    db.session.execute(update(Deployment).where(Deployment.id == dep.id).values(status_checked_at=other))
    db.session.commit()
    lifecycle.refresh(dep, now=now + timedelta(seconds=0.55))
    assert any_fake_backend.calls["status"] == 1
    lifecycle.refresh(dep, now=now + timedelta(seconds=0.61))
    assert any_fake_backend.calls["status"] == 2


# --- the page ------------------------------------------------------------------------------


def poll_of(html: str) -> float:
    found = TRIGGER.search(html)
    assert found, html
    return float(found.group(1))


def test_the_partial_tells_the_page_its_next_poll(client, alice, fake_backend):
    make_app(alice, "wave")
    started = client.post("/alice/wave/viz/start", headers=HX).get_data(as_text=True)
    assert poll_of(started) == 0.1  # young: fast
    dep = db.session.scalar(select(Deployment))
    for age, delay in ((5, 0.5), (40, 1.0)):
        db.session.execute(
            update(Deployment)
            .where(Deployment.id == dep.id)
            .values(created_at=utcnow() - timedelta(seconds=age))
        )
        db.session.commit()
        html = client.get(f"/alice/wave/viz/status?deployment={dep.public_name}", headers=HX).get_data(
            as_text=True
        )
        assert poll_of(html) == pytest.approx(delay, abs=0.02)
        # still the progress panel: the phase and the elapsed seconds
        assert "Waiting for the app to answer" in html
        assert f'data-elapsed="{age}"' in html
