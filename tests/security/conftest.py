"""Fixtures for the attack replays in tests/security/ (their helpers are in
tests/security/helpers.py; tests/conftest.py's fixtures apply here too, and
makes *.localhost resolve to loopback)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.security.helpers import Site, make_site


@pytest.fixture
def site(tmp_path) -> Iterator[Site]:
    """Dormouse in this process with the scripted backend: alice (owner of the
    public app ``wave``) and bob; rate limits off (these attacks are about
    what one request can do, not how many may come)."""
    with make_site(tmp_path) as made:
        yield made
