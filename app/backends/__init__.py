"""Deployment backends. ``make_backend`` picks one from the settings."""

from __future__ import annotations

from ..config import Settings
from .base import AppSpec, Backend, BackendError, BackendStatus

__all__ = ["AppSpec", "Backend", "BackendError", "BackendStatus", "make_backend"]


def make_backend(settings: Settings) -> Backend:
    if settings.backend == "local":
        from .local import LocalBackend

        return LocalBackend(
            apps_dir=settings.apps_dir,
            run_dir=settings.instance_path / "deployments",
            bind_host=settings.local_bind_host,
            viz_origin=settings.viz_origin,
            routes_dir=settings.instance_path / "traefik" / "routes",
            traefik_url=settings.traefik_internal_url,
            port_min=settings.local_port_min,
            port_max=settings.local_port_max,
            run_as=settings.local_run_as,
        )
    if settings.backend == "kubernetes":
        from .kube import KubeBackend

        return KubeBackend(settings.kube)
    raise ValueError(f"unknown backend {settings.backend!r}")
