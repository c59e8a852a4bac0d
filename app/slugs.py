"""The one slug grammar for usernames and app titles.

Slugs end up in URLs, process names, Kubernetes object names and Traefik rules,
so the grammar is deliberately narrow: lowercase ASCII letters, digits and
hyphens, 1-40 characters, starting and ending with a letter or digit (a valid
DNS-1123 label on its own).
"""

from __future__ import annotations

import re
import secrets

SLUG_MAX = 40
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
SLUG_RULE = (
    "use 1-40 lowercase letters, digits or hyphens, starting and ending with a letter or digit"
)

# First path segments the site itself uses; an owner named like one would
# shadow or be shadowed by a route.
RESERVED_OWNERS = frozenset(
    {"admin", "api", "account", "apps", "healthz", "login", "logout", "publish",
     "static", "users", "deployments", "dashboard", "settings"}
)
# Second path segments under /<owner>/ that the site may use.
RESERVED_TITLES = frozenset({"settings", "apps", "viz"})

_SUFFIX_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no l/1/o/0 look-alikes


def is_slug(value: str) -> bool:
    return bool(SLUG_RE.match(value))


def slug_error(value: str, what: str) -> str | None:
    """Why ``value`` is not a valid slug for ``what`` ('username' or 'title'),
    or None when it is."""
    if not value:
        return f"A {what} is required."
    if len(value) > SLUG_MAX:
        return f"A {what} can be at most {SLUG_MAX} characters."
    if not is_slug(value):
        return f"That {what} is not allowed: {SLUG_RULE}."
    if what == "username" and value in RESERVED_OWNERS:
        return f"The {what} {value!r} is reserved; choose another."
    if what == "title" and value in RESERVED_TITLES:
        return f"The {what} {value!r} is reserved; choose another."
    return None


def random_suffix(length: int = 6) -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(length))
