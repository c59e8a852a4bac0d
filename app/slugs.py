"""Every naming rule, in one place (like kubespawner's ``slugs.py``).

Names end up in URLs, file names, process command lines, Kubernetes object
names and Traefik rules, so each kind has one narrow grammar here and every
other module asks this one:

* slugs - usernames and app titles: lowercase ASCII letters, digits and
  hyphens, 1-40 characters, starting and ending with a letter or digit (a
  valid DNS-1123 label on its own);
* public names - a deployment's name plus a random suffix, ``default-x7k2p9``,
  fresh for every run;
* URL prefixes - ``/<owner>/<title>/<public_name>/``;
* deployment names - ``<owner>-<title>-<public_name>``, what backends know a
  deployment by; Kubernetes object names are the same, shortened with a hash
  to a 63-character DNS-1123 label when longer;
* DNS labels and host names (settings, Kubernetes, Traefik rules) and the
  looser hosts a visitor may reach the local backend by.
"""

from __future__ import annotations

import hashlib
import re
import secrets

# Every pattern ends in \Z, not $ ("$" also matches before a final newline),
# and none can backtrack exponentially (some see request headers).

SLUG_MAX = 40
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?\Z")
SLUG_RULE = "use 1-40 lowercase letters, digits or hyphens, starting and ending with a letter or digit"

# First path segments the site itself uses; an owner named like one would
# shadow or be shadowed by a route.
RESERVED_OWNERS = frozenset(
    {
        "admin",
        "api",
        "account",
        "apps",
        "healthz",
        "metrics",
        "login",
        "logout",
        "publish",
        "static",
        "users",
        "deployments",
        "dashboard",
        "settings",
    }
)
# Second path segments under /<owner>/ that the site may use.
RESERVED_TITLES = frozenset({"settings", "apps", "viz"})

_SUFFIX_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no l/1/o/0 look-alikes

# A DNS-1123 label: Kubernetes namespaces and object names, middleware names.
DNS_LABEL_MAX = 63
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
# A lowercase DNS host name (VIZ_HOST): it goes into Traefik rules and Bokeh origins.
HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}\Z)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*\Z"
)
# A host as a visitor may have typed it (any case, a trailing dot, or a
# bracketed IPv6 literal): only ever put back into a URL we hand out.
_LABEL_ANY_CASE = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
URL_HOST_RE = re.compile(
    rf"^(?=.{{1,254}}\Z){_LABEL_ANY_CASE}(?:\.{_LABEL_ANY_CASE})*\.?\Z|^\[[0-9A-Fa-f:.]+\]\Z"
)
# /<owner>/<title>/<public_name>/: three lowercase segments, nothing that could
# end a Traefik rule, a command-line option or a URL path early.
PREFIX_RE = re.compile(r"^/[a-z0-9-]+/[a-z0-9-]+/[a-z0-9-]+/\Z")
# A "." or ".." path segment, plain or percent-encoded, or an encoded slash or
# backslash: a request path holding one is not trusted to name a deployment.
_DOT_SEGMENT_RE = re.compile(r"(?:^|/)(?:\.|%2e){1,2}(?:/|\Z)|%2f|%5c|\\", re.IGNORECASE)
# One path segment an app answers under after its prefix (a Bokeh app's name).
APP_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
# A deployment name as the local backend's file names in its run directory.
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


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


def is_dns_label(value: str) -> bool:
    return bool(DNS_LABEL_RE.match(value))


def is_hostname(value: str) -> bool:
    return bool(HOSTNAME_RE.match(value))


def is_url_host(value: str) -> bool:
    return bool(URL_HOST_RE.match(value))


def is_prefix(value: str) -> bool:
    return bool(PREFIX_RE.match(value))


def is_app_segment(value: str) -> bool:
    return bool(APP_SEGMENT_RE.match(value))


def is_file_name(value: str) -> bool:
    return bool(FILE_NAME_RE.match(value))


def random_suffix(length: int = 6) -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(length))


def public_name(name: str) -> str:
    """A fresh public name for a run of deployment ``name``: ``default-x7k2p9``."""
    return f"{name}-{random_suffix()}"


def url_prefix(owner: str, title: str, public: str) -> str:
    """The URL path a deployment serves under: ``/alice/sliders/default-x7k2p9/``."""
    return f"/{owner}/{title}/{public}/"


def prefix_of(path: str) -> tuple[str, str] | None:
    """``(prefix, public_name)`` of the deployment a request path lies under
    (``/alice/sliders/default-x7k2p9/_dash-layout`` -> ``/alice/sliders/default-x7k2p9/``,
    ``default-x7k2p9``), or None when the path names no deployment."""
    if _DOT_SEGMENT_RE.search(path):
        return None  # "." or "..", plain or percent-encoded: a proxy may resolve them elsewhere
    parts = path.split("/", 4)
    if len(parts) < 5 or parts[0]:
        return None
    prefix = "/".join(parts[:4]) + "/"
    return (prefix, parts[3]) if is_prefix(prefix) else None


def deployment_name(owner: str, title: str, public: str) -> str:
    """The name backends know a deployment by: ``alice-sliders-default-x7k2p9``."""
    return f"{owner}-{title}-{public}"


def object_name(owner: str, title: str, public: str) -> str:
    """The deployment name as a Kubernetes object name (a DNS-1123 label).

    Past 63 characters the head (``owner-title``) is cut and a short stable
    hash of the whole name added; the public name (unique in the database)
    always stays whole, so two deployments never share a name."""
    full = deployment_name(owner, title, public)
    if len(full) <= DNS_LABEL_MAX:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    room = DNS_LABEL_MAX - len(public) - len(digest) - 2
    head = f"{owner}-{title}"[:room].rstrip("-")
    return f"{head}-{digest}-{public}"
