"""A small site for the access tests: three users (alice owns a public and a
private app, bob is another user, root an admin), the scripted backend, and a
short app context for each of the test's own database reads and writes."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import patch
from urllib.parse import parse_qs, urlsplit

from flask import Flask
from sqlalchemy import select

from app import app_envs, lifecycle
from app.extensions import db
from app.models import Deployment, Environment, VizApp, utcnow
from tests.factories import CSRFClient, build_app, login, make_app, make_settings, make_user
from tests.fakes import FakeBackend

HX = {"HX-Request": "true"}
JSON = {"Accept": "application/json"}
USERNAMES = {"other": "bob", "owner": "alice", "admin": "root"}
PASSWORD = "correct-horse"
WHO = re.compile(r'<span class="who">([^<\s]+)')


@dataclass
class Site:
    app: Flask
    backend: FakeBackend

    def client(self, viewer: str = "anonymous") -> CSRFClient:
        client: CSRFClient = self.app.test_client()  # type: ignore[assignment]
        if viewer != "anonymous":
            response = login(client, USERNAMES[viewer], PASSWORD)
            assert response.status_code == 302, response.get_data(as_text=True)
            assert who(client) == USERNAMES[viewer]
        return client

    @contextmanager
    def ctx(self) -> Iterator[None]:
        """A short app context for the test's own database reads and writes."""
        with self.app.app_context():
            try:
                yield
            finally:
                db.session.remove()

    def viz_app(self, title: str) -> VizApp:
        return db.session.scalar(select(VizApp).where(VizApp.title == title))

    def deployments(self, title: str) -> list[Deployment]:
        with self.ctx():
            rows = db.session.scalars(
                select(Deployment).join(VizApp).where(VizApp.title == title).order_by(Deployment.id)
            ).all()
            for row in rows:
                db.session.expunge(row)
            return list(rows)

    def ensure_deployment(self, title: str) -> str:
        """A live deployment of ``title`` (made here, not through a view); its public name."""
        with self.ctx():
            app = self.viz_app(title)
            if app.env_key is None and app.pending_env_key:
                # The unready app cannot start (no ready environment); the matrix
                # still gives it a deployment, to check others cannot reach that.
                with patch.object(app_envs, "python_for", return_value=sys.executable):
                    return lifecycle.ensure_deployment(app).public_name
            return lifecycle.ensure_deployment(app).public_name

    def app_titles(self) -> set[str]:
        with self.ctx():
            return set(db.session.scalars(select(VizApp.title)))


@contextmanager
def make_site(tmp_path: Path) -> Iterator[Site]:
    app = build_app(make_settings(tmp_path))
    app.test_client_class = CSRFClient
    backend = FakeBackend()
    app.extensions["dormouse.backend"] = backend
    try:
        with app.app_context():
            alice = make_user("alice", PASSWORD)
            make_user("bob", PASSWORD)
            make_user("root", PASSWORD, admin=True)
            make_app(alice, "wave", description="A public wave.")
            make_app(alice, "secret", description="A private plot.", is_public=False)
            brewing = make_app(alice, "brewing", description="Its first environment is being built.")
            db.session.add(
                Environment(
                    key="b" * 64, status="building", framework="dash", python="test",
                    lock_text="dash==4.0.0\n", created_at=utcnow(),
                )
            )  # fmt: skip
            db.session.flush()
            brewing.env_key, brewing.pending_env_key = None, "b" * 64  # public, but not published yet
            db.session.commit()
            db.session.remove()
        yield Site(app, backend)
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def who(client: CSRFClient) -> str | None:
    """The user the site shows as logged in for this client, or None."""
    match = WHO.search(client.get("/").get_data(as_text=True))
    return match.group(1) if match else None


def session_user(client: CSRFClient) -> str | None:
    with client.session_transaction() as session:
        return session.get("_user_id")


def to_login(response, next_path: str) -> None:
    assert response.status_code == 302, response.status_code
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login" and parse_qs(location.query)["next"] == [next_path]
