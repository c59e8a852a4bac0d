"""Reading a large set of rows a page at a time, by id (keyset pagination).

Each page is the same query resumed after the last id of the page before:
no cursor stays open across the commits a caller makes between pages, and
no page costs more than its own rows (an OFFSET would re-read the ones
before). Rows are read through Core (no ORM objects); the statement's first
column must be ``Deployment.id``.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Select

from .extensions import db
from .models import Deployment


def pages(statement: Select, page: int) -> Iterator[list]:
    """The rows of ``statement`` (its first column the deployment's id), in
    id order, ``page`` at a time."""
    after = 0
    while True:
        rows = (
            db.session.connection()
            .execute(statement.where(Deployment.id > after).order_by(Deployment.id).limit(page))
            .all()
        )
        if not rows:
            return
        yield rows
        if len(rows) < page:
            return
        after = rows[-1][0]
