"""The local backend's Traefik routes: one file-provider file per deployment
in the front door's routes directory, written before the app starts, removed
when it stops, and checked live on Traefik before the app counts as running.

The documents themselves are pure functions in :mod:`app.traefik_config`.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Container
from pathlib import Path

from app import traefik_config
from app.backends.base import AppSpec
from app.slugs import object_name

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
SHARED_PREFIX = "_"  # the front door's own files (``_dormouse.yml``) are never pruned


class LocalRoutes:
    """``<deployment_name>.yml`` files in ``routes_dir`` (None: no front door,
    nothing is written) for apps on ``viz_host``; ``traefik_url`` is Traefik's
    loopback ``internal`` entry point ("" : nothing to wait for)."""

    def __init__(self, routes_dir: Path | None, *, viz_host: str, traefik_url: str = "") -> None:
        self.dir = Path(routes_dir) if routes_dir else None
        self.viz_host = viz_host
        self.traefik_url = traefik_url

    def write(self, spec: AppSpec, app_url: str) -> None:
        """The route to ``app_url``, written atomically (Traefik watches the
        directory and reads a new file at once, at most 100 ms after its last reload:
        ``traefik_config.PROVIDERS_THROTTLE``)."""
        if self.dir is None:
            return
        public = spec.public_name
        doc = traefik_config.deployment_routes(
            object_name(spec.owner, spec.title, public) if public else spec.deployment_name,
            viz_host=self.viz_host,
            prefix=spec.prefix,
            app_url=app_url,
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{spec.deployment_name}.tmp"
        tmp.write_text(traefik_config.dump(doc), encoding="utf-8")
        tmp.replace(self.dir / f"{spec.deployment_name}.yml")

    def remove(self, name: str) -> None:
        if self.dir is not None:
            (self.dir / f"{name}.yml").unlink(missing_ok=True)

    def prune(self, keep: Container[str], *, written_before: float) -> None:
        """Remove the route files of every deployment not in ``keep`` that
        were last written before ``written_before`` (a ``time.time()``): a
        deployment's route is written a moment before its record, so a route
        younger than the listing that made ``keep`` may belong to a
        deployment being created right now, not to a crash."""
        if self.dir is None:
            return
        for route in self.dir.glob("*.yml"):
            if route.stem in keep or route.name.startswith(SHARED_PREFIX):
                continue
            try:
                if route.stat().st_mtime < written_before:
                    route.unlink(missing_ok=True)
            except FileNotFoundError:
                pass  # removed meanwhile by its stop

    def is_live(self, path: str) -> bool:
        """Whether Traefik serves the route to ``path`` yet: asked on its
        loopback entry point without a token, a live route answers the gate's
        401; no route yet, Traefik's own 404."""
        if not self.traefik_url:
            return True
        request = urllib.request.Request(self.traefik_url + path, headers={"Host": self.viz_host})
        try:
            with _DIRECT.open(request, timeout=1.0) as response:
                return response.status != 404
        except urllib.error.HTTPError as exc:
            return exc.code != 404
        except (OSError, ValueError):
            return False
