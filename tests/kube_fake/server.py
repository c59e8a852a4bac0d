"""A fake Kubernetes API server over real HTTP on 127.0.0.1, for the real ``kubernetes``
client through a kubeconfig, with fault injection a real apiserver can't do.

It behaves like kube-apiserver 1.20 with a controller manager for what Dormouse uses
(namespaces, deployments with their replicasets and pods, pods' logs (logs.py), services,
secrets, configmaps, events, and Traefik IngressRoutes/Middlewares under traefik.io and
traefik.containo.us);
the semantics live in store.py and the other modules of this package. Use::

    fake = FakeKubeAPI().start()
    api = fake.api_client()      # or new_client_from_config(config_file=fake.write_kubeconfig(p))
    fake.inject(method="POST", path_re=r"/deployments$", status=503, times=2)
    ...
    fake.stop()

Build clients with ``configuration.retries = False`` (``api_client()`` does): left unset,
urllib3 retries GET/PUT/DELETE three times on resets and timeouts and sleeps out
``Retry-After`` on their 413/429/503 answers, so those faults never reach the caller.

Where it knowingly differs from the real thing: controllers and the garbage collector run
synchronously inside the request that triggers them (``gc_delay`` defers collection and
namespace cleanup); pods are never scheduled, so they delete at once, and nothing but the
caller changes their status; there is no watch, dryRun, pagination (``limit`` is ignored),
server-side apply or admission webhooks; unknown fields of built-in kinds are kept (the real
server drops them); error messages are close to, not byte-for-byte, the real ones.
"""

from __future__ import annotations

import json
import secrets
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self
from urllib.parse import parse_qsl, urlsplit

from .faults import Fault
from .logs import pod_log
from .resources import CRD_FILE, RESOURCES, ApiError, R, Res
from .store import Store


def route(path: str) -> tuple[Res, str | None, str | None, str | None] | None:
    """URL path -> (resource, namespace, name, subresource), or None if no such resource."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    ns = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        ns, rest = rest[1], rest[2:]
    res = RESOURCES.get((group, version, rest[0])) if rest else None
    if res is None or len(rest) > 3 or (ns and not res.namespaced):
        return None
    return res, ns, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    timeout = 60
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args) -> None:
        pass

    def do_GET(self):
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def _handle(self) -> None:
        fake = self.server.fake
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        method = self.command
        fake._record(method, url.path, query)
        fault = fake._take_fault(method, url.path)
        if fault and fault.delay and (fault.status or fault.reset):
            time.sleep(fault.delay)
        if fault and fault.reset:
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()
            self.connection.close()  # linger 0: the peer gets an RST, no response
            return
        try:
            if fault and fault.status:
                raise fault.error(route(url.path))
            if self.headers.get("Authorization") != f"Bearer {fake.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            try:
                code, body = self._dispatch(method, url.path, query, raw)
            except ApiError:
                raise
            except Exception as e:  # a bug in the fake: say so, as a real apiserver would
                fake.errors.append(e)
                raise ApiError(500, "InternalError", f"Internal error occurred: {e!r}", {}) from e
            headers: dict = {}
        except ApiError as e:
            code, body, headers = e.code, e.body(), e.headers
            if fault and fault.body is not None and fault.status:
                body = fault.body
        if fault and fault.delay and not fault.status:
            time.sleep(fault.delay)  # handled already: only the answer is late
        self._send(code, body, headers)

    def _send(self, code: int, body, headers: dict) -> None:
        if isinstance(body, bytes):  # a pod's log
            data, ctype = body, "text/plain"
        elif isinstance(body, str):
            data, ctype = body.encode(), "text/plain; charset=utf-8"
        else:
            data, ctype = json.dumps(body).encode(), "application/json"
        try:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Cache-Control", "no-cache, private")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except OSError:  # the client gave up (timeout) and closed its end
            self.close_connection = True

    def _dispatch(self, method: str, path: str, query: dict, raw: bytes) -> tuple[int, object]:
        fake = self.server.fake
        store = fake.store
        if path in ("/healthz", "/readyz", "/livez"):
            return 200, "ok"
        if path == "/version":
            return 200, {
                "major": "1",
                "minor": "20",
                "gitVersion": "v1.20.15-fake",
                "platform": "linux/amd64",
            }
        target = route(path)
        if target is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        res, ns, name, sub = target
        if res.plural == "pods" and name and sub == "log":
            if method not in ("GET", "HEAD"):
                message = "the server does not allow this method on the requested resource"
                raise ApiError(405, "MethodNotAllowed", message, {})
            return 200, fake.read_log(ns, name, query)
        if sub not in (None, "status", "scale") or (sub and not (res.status_sub or sub == "scale")):
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        for unsupported in ("watch", "dryRun", "continue"):  # fail loudly, never diverge quietly
            if query.get(unsupported) not in (None, "", "false", "0"):
                raise ApiError(400, "BadRequest", f"{unsupported} is not supported by the fake apiserver")
        if method in ("GET", "HEAD"):
            if name is None:
                return 200, store.list(res, ns, query)
            return 200, store.update(res, ns, name, None, "scale") if sub == "scale" else store.get(
                res, ns, name
            )
        body = None
        if method in ("POST", "PUT") or (method == "DELETE" and raw):
            body = self._json(raw)
        if method == "POST" and name is None:
            manager = (self.headers.get("User-Agent") or "unknown").split("/")[0]
            return 201, store.create(res, ns, body, manager=manager)
        if method == "PUT" and name:
            return 200, store.update(res, ns, name, body, sub)
        if method == "PATCH" and name:
            return 200, store.update(
                res, ns, name, None, sub, patch=(self.headers.get("Content-Type", ""), raw)
            )
        if method == "DELETE" and name and not sub:
            opts: dict = {"propagationPolicy": query.get("propagationPolicy")}
            if "orphanDependents" in query:
                opts["orphanDependents"] = query["orphanDependents"] == "true"
            return store.delete(res, ns, name, {**opts, **(body or {})})
        raise ApiError(
            405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {}
        )

    @staticmethod
    def _json(raw: bytes):
        try:
            return json.loads(raw or b"null")
        except ValueError as e:
            raise ApiError(400, "BadRequest", f"the object provided is unrecognized: {e}") from None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, fake: FakeKubeAPI):
        self.fake = fake
        self.connections: set[socket.socket] = set()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request, client_address):
        self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        self.connections.discard(request)
        super().shutdown_request(request)


class FakeKubeAPI:
    """The fake apiserver. ``requests`` holds every (method, path, query) received."""

    def __init__(self, token: str | None = None, gc_delay: float = 0.0, crd_file: Path | None = CRD_FILE):
        self.token = token or secrets.token_hex(16)
        self.store = Store(gc_delay=gc_delay, crd_file=crd_file)
        self.requests: list[tuple[str, str, dict]] = []
        self.errors: list[Exception] = []  # the fake's own failures (answered as 500s)
        self.logs: dict[str, bytes] = {}  # pod uid -> its container's output (write_log)
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeKubeAPI:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-kube-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        for conn in list(self._server.connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for timer in self.store.timers:
            timer.cancel()
        self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_kubeconfig(self, path, namespace: str = "default") -> Path:
        path = Path(path)
        path.write_text(
            json.dumps(
                {  # JSON is YAML
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "fake",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "fake", "user": {"token": self.token}}],
                    "contexts": [
                        {
                            "name": "fake",
                            "context": {"cluster": "fake", "user": "fake", "namespace": namespace},
                        }
                    ],
                },
                indent=2,
            )
        )
        return path

    def api_client(self, retries=False, **settings):
        """A real ``kubernetes.client.ApiClient`` for this server. ``retries=False`` turns
        urllib3's retries off so every fault reaches the caller as it happened."""
        from kubernetes import client

        configuration = client.Configuration(
            host=self.url, api_key={"BearerToken": self.token}, api_key_prefix={"BearerToken": "Bearer"}
        )
        configuration.retries = retries
        configuration.proxy = None
        for k, v in settings.items():
            setattr(configuration, k, v)
        return client.ApiClient(configuration)

    # -- test helpers ----------------------------------------------------------------------
    def add_namespace(self, name: str) -> dict:
        return self.store.add_namespace(name)

    def objects(self, plural: str, namespace: str | None = None) -> list[dict]:
        """What is stored, bypassing HTTP: ``fake.objects("pods", "ns")``."""
        return self.store.objects(plural, namespace)

    def write_log(self, namespace: str, pod: str, text: str | bytes) -> None:
        """Play the container runtime: append ``text`` to the pod's log (its one
        container's). The log is the pod's: a pod made anew has none."""
        data = text.encode() if isinstance(text, str) else text
        with self.store.lock:
            uid = self.store.get(R["pods"], namespace, pod)["metadata"]["uid"]
            self.logs[uid] = self.logs.get(uid, b"") + data

    def read_log(self, namespace: str, pod: str, query: dict) -> bytes:
        with self.store.lock:
            obj = self.store.get(R["pods"], namespace, pod)
            return pod_log(obj, self.logs.get(obj["metadata"]["uid"], b""), query)

    def _record(self, method: str, path: str, query: dict) -> None:
        with self._lock:
            self.requests.append((method, path, query))

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def count(self, method: str | None = None, path_contains: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for m, p, _ in self.requests
                if method in (None, m) and (path_contains is None or path_contains in p)
            )

    # -- faults ----------------------------------------------------------------------------
    def inject(
        self,
        method: str | None = None,
        path_re: str = "",
        status: int | None = None,
        times: int | None = 1,
        retry_after: int | None = None,
        delay: float = 0.0,
        reset: bool = False,
        reason: str | None = None,
        message: str | None = None,
        body: str | None = None,
    ) -> Fault:
        """The next ``times`` requests (None: all, until clear_faults) whose method matches
        and whose URL path matches ``path_re`` (re.search) get:

        * ``status``: that HTTP status and a Status body (``reason``/``message`` override its
          fields, ``body`` replaces it with text/plain), with ``Retry-After`` if
          ``retry_after`` is given; the request is not carried out;
        * ``reset``: the connection closed with an RST and no response; not carried out;
        * ``delay`` alone: carried out, but answered ``delay`` seconds late; with ``status``
          or ``reset``, the wait comes before that fault.
        """
        if not (status or reset or delay):
            raise ValueError("a fault needs status, reset or delay")
        fault = Fault(method, path_re, times, status, retry_after, delay, reset, reason, message, body)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.hits += 1
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None
