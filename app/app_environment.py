"""Which environment variables a publisher may give an app.

An app's environment is publisher input, and some variable names change how
a program starts rather than what the app reads: the interpreter's search
path and start-up hooks (``PYTHONPATH``, ``PYTHONWARNINGS``, ``PYTHONSTARTUP``),
the dynamic loader (``LD_PRELOAD``), shells (``BASH_ENV``, ``ENV``), helpers a
library may launch (``BROWSER``), the servers that run the app
(``GUNICORN_CMD_ARGS``, ``BOKEH_*``, ``DASH_*``) and Dormouse's own settings.
Any of them would let a publisher run code as whoever starts the app, so such
names are refused when an app is published and again when it is launched (for
apps saved before a rule existed). The rule is one function, used by both.
"""

from __future__ import annotations

import re

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}\Z")

# Compared upper-cased: several programs read lower-case spellings too.
RESERVED_PREFIXES = (
    "PYTHON",  # PYTHONPATH, PYTHONSTARTUP, PYTHONWARNINGS, PYTHONHOME, PYTHONINSPECT ...
    "LD_",  # LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT
    "DYLD_",
    "GLIBC_",  # GLIBC_TUNABLES
    "MALLOC_",
    "GUNICORN",  # GUNICORN_CMD_ARGS: extra server options, config files that run code
    "BOKEH_",  # bokeh serve's own settings (origins, secret keys, dev mode)
    "DASH_",  # the prefix variables Dormouse sets, Dash's debug and hot-reload switches
    "FLASK_",
    "WERKZEUG_",
    "DORMOUSE_",
    "KUBERNETES_",
    "UV_",
    "PIP_",
    "VIRTUAL_ENV",
    "CONDA",
    "PERL5",
    "PERLLIB",
    "RUBY",
    "NODE_",
    "JAVA_",
    "_JAVA_",
    "JDK_JAVA_",
    "OPENSSL_",
    "SSL_",
    "GIT_",
    "XDG_",
)
RESERVED_NAMES = frozenset(
    {
        # shells and what they read at start
        "BASH_ENV", "ENV", "SHELL", "SHELLOPTS", "BASHOPTS", "IFS", "PS4", "PROMPT_COMMAND", "CDPATH",
        # what a program finds and where it lives
        "PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TEMP", "TMP", "PWD", "OLDPWD",
        # helpers a library may launch
        "BROWSER", "EDITOR", "VISUAL", "PAGER", "TERMINAL",
        # the C library's loaders
        "LOCPATH", "GCONV_PATH", "HOSTALIASES", "RES_OPTIONS", "NLSPATH", "TZDIR",
        # TLS and network plumbing of the host
        "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSLKEYLOGFILE",
        "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
        # Dormouse's settings and what the backends set themselves
        "SECRET_KEY", "DATABASE_URL", "JWT_KEYS", "INSTANCE_PATH", "APPS_DIR", "BACKEND",
        "HOST", "PORT", "WEB_CONCURRENCY", "VIZ_HOST",
    }
)  # fmt: skip


def refusal(name: str) -> str | None:
    """Why ``name`` may not be set by a publisher, or None when it may."""
    if not NAME_RE.match(name):
        return f"{name!r} is not a valid variable name"
    upper = name.upper()
    if upper in RESERVED_NAMES or upper.startswith(RESERVED_PREFIXES):
        return f"{name} is reserved: it changes how the app's server or interpreter starts"
    return None


def refused(env: dict[str, str]) -> list[str]:
    """The names in ``env`` a publisher may not set, in order."""
    return [name for name in env if refusal(name) is not None]
