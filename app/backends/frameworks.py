"""What every backend must know about serving Dash and Bokeh under a prefix.

Both backends (local processes and Kubernetes) run the frameworks the same
way; these are the shared rules, so they are written once.
"""

from __future__ import annotations

import posixpath

DEFAULT_DASH_CALLABLE = "server"


def dash_prefix_env(prefix: str) -> dict[str, str]:
    """Dash reads these itself: where its routes live and what the browser puts
    in front of its requests. Both are the deployment's prefix."""
    return {"DASH_ROUTES_PATHNAME_PREFIX": prefix, "DASH_REQUESTS_PATHNAME_PREFIX": prefix}


def bokeh_app(source: str) -> tuple[str, str]:
    """What ``bokeh serve`` is given for ``source``, and the app name it serves
    it under (the app answers at ``prefix + name``).

    ``dir/main.py`` is a directory-format app: serve ``dir``, named ``dir``.
    ``x.py`` (a ``main.py`` at the top level too) is a script named ``x``. A
    directory is named after itself."""
    path = posixpath.normpath(source)
    if path.endswith("/main.py"):
        directory = posixpath.dirname(path)
        return directory, posixpath.basename(directory)
    if path.endswith(".py"):
        return path, posixpath.basename(path)[:-3]
    return path, posixpath.basename(path)
