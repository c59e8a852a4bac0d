"""The processes a test session starts, seen through /proc: the apps a test
started on a local backend (:class:`Started`, stopped at teardown), the process
groups launched servers and local backends run in (stop one, read the ones a
run dir recorded, tell a live group from a reused pid), and, for
tests/conftest.py's check at the session's end, the processes the session
left running (:func:`leftover_processes`) and a way to kill them.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from app.backends.local_groups import group_alive
from app.backends.local_watchdog import proc_stat
from tests.waiting import wait_for

if TYPE_CHECKING:
    from app.backends.base import AppSpec
    from app.backends.local import LocalBackend

# A process group the tests started: its id, its leader's start time (clock
# ticks, /proc/<pid>/stat) and, for an app, a word its processes' command lines
# carry (the port), to know its members once the leader is gone.
Group = tuple[int, int, str]

# Every gunicorn a LiveServer (tests/serving.py) launched in this session.
LAUNCHED_GROUPS: list[Group] = []


# --- apps a test started -----------------------------------------------------


class Started:
    """Every ref any backend of the test made, so teardown stops them all."""

    def __init__(self) -> None:
        self.refs: list[tuple[LocalBackend, str]] = []

    def create(self, backend: LocalBackend, app_spec: AppSpec) -> str:
        ref = backend.create(app_spec)
        self.refs.append((backend, ref))
        return ref

    def stop_all(self) -> None:
        for backend, ref in self.refs:
            try:
                backend.stop(ref)
            except Exception:
                try:
                    os.killpg(json.loads(ref)["pid"], signal.SIGKILL)
                except ProcessLookupError:
                    pass


# --- process groups ----------------------------------------------------------


def stop_group(pgid: int, grace: float) -> None:
    """SIGTERM process group ``pgid``, wait up to ``grace`` s for it to empty,
    then SIGKILL it and wait again; raise AssertionError if it survives that."""
    for sig, timeout in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        try:
            wait_for(lambda: not group_alive(pgid), timeout, f"process group {pgid} to exit")
            return
        except AssertionError:
            if sig == signal.SIGKILL:
                raise


def recorded_groups(run_dir: Path) -> list[Group]:
    """The app process groups recorded in a local backend's ``run_dir`` (its
    ``<name>.json`` refs)."""
    found = []
    for record in sorted(run_dir.glob("*.json")) if run_dir.is_dir() else []:
        try:
            ref = json.loads(record.read_text(encoding="utf-8"))
            found.append((int(ref["pid"]), int(ref["start"]), str(int(ref["port"]))))
        except (OSError, ValueError, TypeError, KeyError):
            continue
    return found


def group_is(pgid: int, start: int) -> bool:
    """Is process group ``pgid`` still the one whose leader started at
    ``start`` (and alive)? A leader with another start time means the pid was
    reused: while the old group had members, it could not have been."""
    leader = proc_stat(pgid)
    if leader is not None and leader[2] != start:
        return False
    return group_alive(pgid)


# --- what a test session left running ----------------------------------------


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _processes() -> dict[int, tuple[str, int, int, int]]:
    """{pid: (state, ppid, pgrp, start time)} of every process, from /proc."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        data = _read(f"/proc/{name}/stat").decode("ascii", "replace")
        if not data:
            continue
        fields = data[data.rfind(")") + 2 :].split()
        table[int(name)] = (fields[0], int(fields[1]), int(fields[2]), int(fields[19]))
    return table


def describe(pid: int) -> str:
    cmdline = _read(f"/proc/{pid}/cmdline").replace(b"\0", b" ").decode(errors="replace").strip()
    return f"pid {pid}: {cmdline[:300] or '?'}"


SESSION_ENV = "DORMOUSE_TEST_SESSION"  # set by tests/conftest.py; inherited by what the tests start


def session_marker() -> str:
    """A value of SESSION_ENV that names this process (and no earlier one of its pid)."""
    st = proc_stat(os.getpid())
    return f"{os.getpid()}:{st[2] if st else 0}"


def leftover_processes(paths: list[Path], groups: list[Group], marker: str | None = None) -> dict[int, str]:
    """The live processes this test session (this process) started and left:
    its descendants; processes whose environment has ``SESSION_ENV=marker``
    (inherited from the session, however they were orphaned since); processes
    whose command line, working directory or environment points into one of
    ``paths`` (the session's temporary directories); and the members of the
    process groups ``groups`` (launched servers, recorded apps): all of them
    while the leader is the same process, and once it is gone those whose
    command line has the group's word (pids are reused). Only processes
    started after this one are considered, so nothing older is ever blamed."""
    me = os.getpid()
    table = _processes()
    since = table[me][3]
    live = {
        pid: row for pid, row in table.items() if pid != me and row[0] not in ("Z", "X") and row[3] >= since
    }
    found: dict[int, str] = {}

    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    todo = list(children.get(me, []))
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        if pid in live:
            found[pid] = "a child of the test session"

    tag = os.fsencode(f"{SESSION_ENV}={marker}\0") if marker else None
    needles = [os.fsencode(p) for path in paths for p in {str(path), str(Path(path).resolve())}]
    for pid in live:
        if pid in found:
            continue
        cwd = b""
        try:
            cwd = os.fsencode(os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            pass
        environ = _read(f"/proc/{pid}/environ")
        if tag and (environ.startswith(tag) or b"\0" + tag in environ):
            found[pid] = "started with this session's environment"
            continue
        text = b"\0".join((_read(f"/proc/{pid}/cmdline"), cwd, environ)) + b"\0"
        for needle in needles:
            if needle + b"/" in text or needle + b"\0" in text:
                found[pid] = "points into the session's temporary directory"
                break

    for pgid, start, word in groups:
        leader = table.get(pgid)
        if (leader is not None and leader[3] != start) or (leader is None and not word):
            continue  # the pid was reused: another group now
        for pid, (_, _, pgrp, started) in live.items():
            if pgrp != pgid or started < start or pid in found:
                continue
            if leader is None and not _has_word(pid, word):
                continue
            found[pid] = f"in process group {pgid}, started by the tests"
    return {pid: f"{describe(pid)}  ({why})" for pid, why in sorted(found.items())}


def _has_word(pid: int, word: str) -> bool:
    """Is ``word`` an argument of ``pid``'s command line, alone or as ``host:word``?"""
    w = os.fsencode(word)
    return any(arg == w or arg.endswith(b":" + w) for arg in _read(f"/proc/{pid}/cmdline").split(b"\0"))


def session_groups(paths: list[Path]) -> list[Group]:
    """The process groups the session launched or recorded: LiveServers'
    gunicorns and the apps local backends recorded under ``paths``."""
    groups = list(LAUNCHED_GROUPS)
    for path in paths:
        for run_dir in {record.parent for record in Path(path).rglob("*.json")}:
            groups.extend(recorded_groups(run_dir))
    return groups


def kill_processes(pids: list[int], grace: float = 5.0) -> None:
    """SIGTERM ``pids``, wait up to ``grace`` s, SIGKILL what is left."""
    starts = {pid: st[2] for pid in pids if (st := proc_stat(pid)) is not None}

    def running() -> list[int]:
        return [
            pid
            for pid, start in starts.items()
            if (st := proc_stat(pid)) is not None and st[0] not in ("Z", "X") and st[2] == start
        ]

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in running():
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            wait_for(lambda: not running(), grace, "the leftover processes to exit")
            return
        except AssertionError:
            continue


def processes_mentioning(text: str) -> list[int]:
    """Live processes (not zombies), this one aside, whose command line contains ``text``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes()
        except OSError:
            continue
        st = proc_stat(int(entry.name))
        if text.encode() in cmdline and st is not None and st[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found
