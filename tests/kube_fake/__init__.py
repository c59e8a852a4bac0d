"""The fake Kubernetes API server (see server.py), as a package: the HTTP layer in
server.py, the object store and its rules in the other modules, and the pytest fixtures
in fixtures.py (tests/conftest.py loads them as a plugin)."""

from .server import FakeKubeAPI, Fault

__all__ = ["FakeKubeAPI", "Fault"]
