"""A scriptable in-memory backend for view and lifecycle tests.

It implements the same protocol as the real backends and records every call,
so tests can script a deployment's states and count backend reads. The
end-to-end tests use the real local backend instead.
"""

from __future__ import annotations

import threading
from collections import Counter

from app.backends.base import AppSpec, BackendError, BackendStatus


class FakeBackend:
    name = "local"  # rows are made under the configured backend's name

    def __init__(self) -> None:
        self.specs: dict[str, AppSpec] = {}
        self.states: dict[str, BackendStatus] = {}
        self.stopped: list[str] = []
        self.calls: Counter[str] = Counter()
        self.fail_create: str | None = None
        self.extra: dict[str, str] = {}  # name -> ref the backend runs but no row knows
        self.outputs: dict[str, str] = {}  # ref -> its scripted output, for logs()
        self._lock = threading.Lock()

    # protocol ---------------------------------------------------------------
    def create(self, spec: AppSpec) -> str:
        with self._lock:
            self.calls["create"] += 1
            if self.fail_create:
                raise BackendError(self.fail_create)
            ref = f"fake:{spec.deployment_name}"
            self.specs[ref] = spec
            self.states[ref] = BackendStatus("starting", phase="Waiting for the app to answer")
            return ref

    def status(self, ref: str) -> BackendStatus:
        with self._lock:
            self.calls["status"] += 1
            return self.states.get(ref, BackendStatus("gone"))

    def stop(self, ref: str) -> None:
        with self._lock:
            self.calls["stop"] += 1
            self.stopped.append(ref)
            self.states.pop(ref, None)
            self.extra = {k: v for k, v in self.extra.items() if v != ref}

    def list(self) -> dict[str, str]:
        with self._lock:
            self.calls["list"] += 1
            live = {spec.deployment_name: ref for ref, spec in self.specs.items() if ref in self.states}
            live.update(self.extra)
            return live

    def logs(self, ref: str, max_bytes: int) -> str:
        """The scripted output's last ``max_bytes`` (UTF-8); kept after a stop, like a log file."""
        with self._lock:
            self.calls["logs"] += 1
            data = self.outputs.get(ref, "").encode()
            return data[max(0, len(data) - max_bytes) :].decode("utf-8", "replace")

    def url(self, ref: str) -> str:
        return f"http://viz.dormouse.localhost:9999{self.specs[ref].prefix}"

    # scripting --------------------------------------------------------------
    def set(self, ref: str, state: str, reason: str = "", phase: str = "") -> None:
        with self._lock:
            self.states[ref] = BackendStatus(state, reason=reason, phase=phase)  # type: ignore[arg-type]

    def only_ref(self) -> str:
        (ref,) = self.specs
        return ref
