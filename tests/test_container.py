"""The container image, built from the Dockerfile and run with podman
(scripts/container-test.sh): a demo opens in Chromium through the container's
one port, and app processes cannot reach Dormouse's secrets.

There is no Docker engine and no image registry here, so the script builds on
a look-alike of ``python:3.11-slim`` made from Debian's packages (cached in
/var/cache/dormouse/container-base): what is tested is everything the
Dockerfile does on top of its base, not the official base image. Podman and
the tools come from scripts/test-system-deps.sh (`make test` runs it); without
podman these tests fail, they are not skipped.

The container shares the host's network (podman has no other here), so the
host sees its listening sockets in /proc/net and its processes in /proc.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, sync_playwright

from tests.browsers import ARGS, CHROMIUM
from tests.serving import free_port
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(900)

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "container-test.sh"
IMAGE = "localhost/dormouse:test"
DORMOUSE_HOST = "dormouse.localhost"  # Chromium resolves *.localhost to loopback itself
VIZ_HOST = "viz.dormouse.localhost"  # the image's default apps host
USERNAME, PASSWORD = "tester", secrets.token_urlsafe(12)
SECRET_FILES = ("secret_key", "jwt_keys", "dormouse.db")


def podman(*args: str, timeout: float = 60, **kw: object) -> subprocess.CompletedProcess[str]:
    """podman with the flags this machine needs (never raises on exit status)."""
    return subprocess.run(
        [str(SCRIPT), "podman", *args], capture_output=True, text=True, timeout=timeout, **kw
    )  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """The test image, built from this working tree; removed at the end if
    this module made it (the cached base and package layer stay)."""
    if os.geteuid() != 0 or shutil.which("podman") is None or shutil.which("debootstrap") is None:
        pytest.fail(
            "the container tests need podman, runc and debootstrap, run as root: `make test` installs "
            "them (scripts/test-system-deps.sh; Debian: apt-get install podman runc debootstrap)"
        )
    existed = podman("image", "exists", IMAGE).returncode == 0
    built = subprocess.run([str(SCRIPT), "build"], capture_output=True, text=True, timeout=1200)
    if built.returncode != 0:
        pytest.fail(f"building the image failed:\n{(built.stdout + built.stderr)[-4000:]}")
    try:
        yield IMAGE
    finally:
        if not existed:
            subprocess.run([str(SCRIPT), "clean"], capture_output=True, timeout=120)


@dataclass
class Container:
    name: str
    port: int

    @property
    def base(self) -> str:
        return f"http://{DORMOUSE_HOST}:{self.port}"

    def pid(self) -> int:
        """The container's main process (the front door), as the host sees it."""
        out = podman("inspect", "--format", "{{.State.Pid}}", self.name).stdout.strip()
        return int(out) if out.isdigit() else 0

    def exec(self, *argv: str, user: str = "dormouse", **kw: object) -> subprocess.CompletedProcess[str]:
        return podman("exec", "-i", "--user", user, self.name, *argv, **kw)

    def uid(self, user: str) -> int:
        return int(self.exec("id", "-u", user).stdout)

    def check_running(self) -> None:
        if podman("inspect", "--format", "{{.State.Running}}", self.name).stdout.strip() != "true":
            pytest.fail(f"the container stopped; its log:\n{podman('logs', self.name).stdout[-4000:]}")


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[Container]:
    """The image running on a free port, healthy, with one user; stopped and
    removed afterwards whatever happened. Its secrets are made here."""
    c = Container(f"dormouse-test-{os.getpid()}-{secrets.token_hex(3)}", free_port())
    env = {
        **os.environ,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "JWT_KEYS": f"k1:{secrets.token_urlsafe(48)}",
        "TRUSTED_HOSTS": DORMOUSE_HOST,
    }
    try:
        ports = ["-e", "LOCAL_PORT_MIN=28100", "-e", "LOCAL_PORT_MAX=28199"]  # the host's loopback is shared
        # the demos' environments are built at start from the package index this machine reaches,
        # whose certificates (a TLS-inspecting proxy's too) are the host's, as in the image's build
        ports += ["-v", "/etc/ssl/certs:/etc/ssl/certs:ro"]
        started = subprocess.run(
            [str(SCRIPT), "run", c.name, str(c.port), *ports],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert started.returncode == 0, started.stderr
        wait_for(
            lambda: (
                requests.get(
                    f"http://127.0.0.1:{c.port}/healthz",
                    headers={"Host": f"{DORMOUSE_HOST}:{c.port}"},
                    timeout=5,
                ).json()["status"]
                == "ok"
            ),
            120,
            "the container's /healthz",
            abort=c.check_running,
        )
        made = c.exec(
            "flask", "--app", "wsgi", "users", "create", USERNAME, "--password-stdin", input=PASSWORD
        )
        assert made.returncode == 0, made.stdout + made.stderr
        yield c
    finally:
        subprocess.run([str(SCRIPT), "stop", c.name], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def demo(container: Container) -> Iterator[Page]:
    """Chromium, logged in, showing the Dash demo (started by its viz page)."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_context(viewport={"width": 1200, "height": 800}).new_page()
            page.goto(f"{container.base}/login")
            page.fill("input[name=username]", USERNAME)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            # Secure (__Host-) cookies over plain http: Chromium counts *.localhost as secure
            page.wait_for_selector(f"span.who:has-text('{USERNAME}')", timeout=30_000)
            page.goto(f"{container.base}/demo/dash-wave/viz/")
            page.wait_for_selector("iframe.viz-frame", timeout=120_000)
            page.frame_locator("iframe.viz-frame").locator("#wave .main-svg").first.wait_for(timeout=60_000)
            yield page
        finally:
            browser.close()


def test_a_demo_opens_in_chromium_through_the_one_port(container, demo):
    src = demo.get_attribute("iframe.viz-frame", "src") or ""
    assert src.startswith(f"http://{VIZ_HOST}:{container.port}/demo/dash-wave/"), src
    # a real Dash callback inside the iframe, through Traefik too
    app = demo.frame_locator("iframe.viz-frame")
    app.locator("#wave .main-svg").first.wait_for(timeout=30_000)


# --- isolation, seen from the host -------------------------------------------


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def app_processes(container: Container) -> list[int]:
    """The demo's processes: everything under the watchdogs, not the watchdogs."""
    found = []
    for pid in descendants(container.pid()):
        if "local_watchdog.py" in cmdline(pid):
            found.extend(descendants(pid))
    return found


def test_apps_run_as_their_own_user_with_no_capabilities_and_no_secrets(container, demo):
    app_uid, dormouse_uid = container.uid("dormouse-app"), container.uid("dormouse")
    assert app_uid != dormouse_uid
    front_door = status(container.pid())
    assert front_door["Uid"].split() == [str(dormouse_uid)] * 4
    apps = wait_for(lambda: app_processes(container), 30, "the demo's processes")
    assert any("gunicorn" in cmdline(pid) for pid in apps)
    # the app runs with its own environment's Python, built by the apps' user on /data
    assert any("/data/envs/" in cmdline(pid) for pid in apps), [cmdline(pid) for pid in apps]
    owner = container.exec("stat", "-c", "%U %a", "/data/envs").stdout.split()
    assert owner == ["dormouse-app", "755"], owner
    sizes = container.exec("du", "-sm", "/data/envs", user="dormouse-app").stdout
    print("disk of /data/envs (MB):", sizes)
    for pid in apps:
        st = status(pid)
        assert st["Uid"].split() == [str(app_uid)] * 4, cmdline(pid)
        assert st["Groups"] == "", cmdline(pid)
        assert {st[k] for k in ("CapInh", "CapPrm", "CapEff", "CapAmb")} == {"0000000000000000"}
        assert st["NoNewPrivs"] == "1"
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert b"SECRET_KEY=" not in environ and b"JWT_KEYS=" not in environ


def test_the_app_user_cannot_read_dormouses_files_or_environment(container, demo):
    # /data is 0711 (the apps' user passes through it to /data/envs): nothing in it but envs/ may
    # be read by the apps' user; SECRET_KEY and JWT_KEYS come from the environment here, so no
    # file holds them, but the database does
    names = container.exec("ls", "-A", "/data").stdout.split()
    assert "dormouse.db" in names and "envs" in names, names
    for name in names:
        readable = container.exec("test", "-r", f"/data/{name}", user="dormouse-app").returncode == 0
        assert readable is (name == "envs"), name
    for name in SECRET_FILES:
        denied = container.exec("cat", f"/data/{name}", user="dormouse-app")
        assert denied.returncode != 0, (name, denied)
    denied = container.exec("cat", "/data/dormouse.db", user="dormouse-app")
    assert "Permission denied" in denied.stderr, denied
    assert "Permission denied" in container.exec("ls", "/data", user="dormouse-app").stderr
    assert "Permission denied" in container.exec("cat", "/proc/1/environ", user="dormouse-app").stderr
    # Dormouse itself can: the denials are about who asks
    assert container.exec("test", "-r", "/data/dormouse.db").returncode == 0


def _listening(path: str) -> dict[int, tuple[str, int]]:
    """``{socket inode: (address, port)}`` of the listening TCP sockets in /proc/net/tcp or tcp6."""
    found = {}
    for line in Path(path).read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] != "0A":  # LISTEN
            continue
        addr_hex, port_hex = fields[1].split(":")
        raw = bytes.fromhex(addr_hex)
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # host-order words
        found[int(fields[9])] = (raw.hex(), int(port_hex, 16))
    return found


def _loopback(addr_hex: str) -> bool:
    raw = bytes.fromhex(addr_hex)
    if len(raw) == 4:
        return raw[0] == 127
    return raw == bytes(15) + b"\1" or (raw[:12] == bytes(10) + b"\xff\xff" and raw[12] == 127)


def test_only_the_one_port_listens_beyond_loopback(container, demo):
    sockets = {**_listening("/proc/net/tcp"), **_listening("/proc/net/tcp6")}
    mine: set[tuple[str, int]] = set()
    for pid in [container.pid(), *descendants(container.pid())]:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        mine |= {
            sockets[int(link[8:-1])]
            for link in links
            if link.startswith("socket:[") and int(link[8:-1]) in sockets
        }
    assert len(mine) >= 3  # Traefik, gunicorn and the app at least
    assert {port for addr, port in mine if not _loopback(addr)} == {container.port}, mine


def test_dormouse_keeps_only_the_capabilities_to_start_and_stop_apps(container, demo):
    watchdogs = [pid for pid in descendants(container.pid()) if "local_watchdog.py" in cmdline(pid)]
    assert watchdogs
    for pid in [container.pid(), *watchdogs]:
        st = status(pid)  # CAP_KILL, CAP_SETGID, CAP_SETUID: bits 5, 6 and 7
        assert st["CapEff"] == st["CapAmb"] == st["CapBnd"] == "00000000000000e0", cmdline(pid)


def test_an_app_of_the_other_user_is_stopped(container, demo):
    page = demo.context.new_page()  # logged in too
    try:
        page.goto(f"{container.base}/demo/bokeh-sliders/viz/")
        page.wait_for_selector("iframe.viz-frame", timeout=120_000)
        page.frame_locator("iframe.viz-frame").locator("canvas").first.wait_for(timeout=60_000)
    finally:
        page.close()
    bokeh = wait_for(
        lambda: [pid for pid in app_processes(container) if "bokeh" in cmdline(pid)], 30, "bokeh's processes"
    )
    stopped = container.exec("flask", "--app", "wsgi", "deployments", "stop", "demo/bokeh-sliders")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in bokeh), 30, "bokeh's processes to end")
