"""Shared pieces of the access-control matrix (tests/test_access_*.py).

The matrix: viewers (anonymous, another user, the owner, an admin) x every
route, for a public and a private app. A private app is 404 - not 403, its
existence is not revealed - to anyone but its owner and admins, on its page
and on every viz endpoint, and answers exactly what a missing app answers.
The route tables (``APP_CHECKS`` in test_access_app_routes.py, ``SITE_CHECKS``
in test_access_site_routes.py, ``CSRF_CASES`` in test_access_csrf.py) are
checked against ``app.url_map``: a new route (or a new method on one) without
a row fails ``test_the_matrix_covers_every_route``.

The backend is the scripted FakeBackend, so no process starts. The site
(tests/sites.py) opens a short app context only for the test's own database
work, so each request runs in its own, as in a real server. The Host header
and ``?next=`` are in tests/test_hosts_and_redirects.py.
"""

from __future__ import annotations

from sqlalchemy import update

from app.extensions import db
from app.models import Deployment
from tests.factories import CSRFClient
from tests.sites import HX, JSON, Site

VIEWERS = ("anonymous", "other", "owner", "admin")
# "unready": public, but its first environment is not built yet (app/managing.py:
# published): for its owner and admins only, like a private app.
APPS = {"public": "wave", "private": "secret", "unready": "brewing"}
EXPIRED = "session has expired"  # the CSRF refusal's message
NOTHING_HERE = {"error": "There is nothing here.", "status": 404}


def visible(viewer: str, visibility: str) -> bool:
    return visibility == "public" or viewer in ("owner", "admin")


# Who opens which app in the matrices. The unready app's owner and admins see
# it but cannot start it (no ready environment): tests/test_env_publish_gate.py
# covers what they see; here, that everyone else gets the missing app's 404.
CASES = [(v, a) for a in APPS for v in VIEWERS if not (a == "unready" and visible(v, a))]


def assert_hidden(client: CSRFClient, method: str, path: str, title: str, **kwargs) -> None:
    """404, and the very answer an app that does not exist gets."""
    call = client.post if method == "POST" else client.get
    response = call(f"/alice/{title}{path}", headers=JSON, **kwargs)
    missing = call(f"/alice/no-such-app{path}", headers=JSON, **kwargs)
    assert response.status_code == 404, (path, response.status_code)  # never 403
    assert response.get_json() == missing.get_json() == NOTHING_HERE, path
    # and as an HTMX partial, word for word
    response = call(f"/alice/{title}{path}", headers=HX, **kwargs)
    missing = call(f"/alice/no-such-app{path}", headers=HX, **kwargs)
    assert response.status_code == missing.status_code == 404, path
    assert response.get_data() == missing.get_data(), path


def app_row(site: Site, title: str) -> dict[str, object]:
    with site.ctx():
        row = site.viz_app(title)
        return {"description": row.description, "is_public": row.is_public, "deleted_at": row.deleted_at}


NEW_APP = {
    "title": "fresh-plot",
    "framework": "dash",
    "source": "dash-wave/app.py:server",
    "cpu": "250m",
    "memory": "256Mi",
    "is_public": "y",
}


def opened_page(site: Site, title: str) -> str:
    """A live deployment of ``title`` with one page open (a load no goodbye
    answers yet); its public name."""
    public_name = site.ensure_deployment(title)
    with site.ctx():
        db.session.execute(
            update(Deployment)
            .where(Deployment.public_name == public_name)
            .values(page_loads=Deployment.goodbyes + 1)
        )
        db.session.commit()
    return public_name
