"""Watchdog that runs one app command for the local backend.

Run it by file path, never as ``app.backends.local_watchdog`` (it must not import
the Dormouse package, and uses only the standard library)::

    python -I /abs/path/local_watchdog.py --watch-pid N --exit-file F \
        [--grace SECONDS] -- cmd arg...

It makes itself the leader of a new process group (the local backend also
starts it with ``start_new_session=True``) and starts ``cmd`` as its child in
that group, so the backend can stop everything with one ``killpg``. Then:

* if the watched pid (the Dormouse server) disappears or is reused, it stops
  the whole group - TERM, up to ``--grace`` seconds, then KILL - so apps never
  outlive Dormouse, even when Dormouse is killed with SIGKILL;
* if the app exits by itself, it writes ``{"pid": <own pid>, "code": N}`` to
  the exit file (``N`` is negative for "killed by signal -N"), stops whatever
  is left in the group and exits;
* on SIGTERM/SIGINT/SIGHUP it forwards the signal to the app, waits up to
  ``--grace`` seconds, KILLs what is left, and exits without an exit file.

On Linux it also becomes a child subreaper, so processes orphaned inside the
group (a gunicorn worker whose master was killed, say) are reaped here rather
than left as zombies that would keep the process group alive.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import sys
import time
from types import FrameType

POLL = 0.25  # seconds between checks of the app and the watched pid
KILL_WAIT = 5.0  # seconds to wait for the group to go after SIGKILL
WATCH_EVERY = 2  # check the watched pid every WATCH_EVERY polls
PR_SET_CHILD_SUBREAPER = 36

_signalled: int | None = None


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _signalled
    _signalled = signum


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """``(state, pgrp, starttime)`` from /proc/<pid>/stat, or None if absent."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    fields = data[data.rfind(")") + 2 :].split()
    # fields[0] is field 3 (state); pgrp is field 5, starttime field 22.
    return fields[0], int(fields[2]), int(fields[19])


def pid_alive(pid: int, start: int | None) -> bool:
    """True if ``pid`` exists, is not a zombie and (if given) started at ``start``."""
    st = proc_stat(pid)
    if st is None:
        try:  # no procfs: fall back to kill(0)
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not os.path.isdir("/proc/self")
    return st[0] not in ("Z", "X") and (start is None or st[2] == start)


def group_members(pgid: int) -> list[int]:
    """Pids of the live (non-zombie) processes in ``pgid`` other than this one."""
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        st = proc_stat(int(name))
        if st is not None and st[1] == pgid and st[0] not in ("Z", "X"):
            found.append(int(name))
    return found


def reap(child: int) -> int | None:
    """Reap every exited child; return ``child``'s exit code if it was reaped."""
    code = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return code
        if pid == 0:
            return code
        if pid == child:
            code = os.waitstatus_to_exitcode(status)


def send(pid: int, sig: int) -> None:
    """Signal ``pid`` if it is still there. An app run as another user
    (``LOCAL_RUN_AS``) can be signalled only with CAP_KILL; without it, say so
    rather than die and leave the app behind."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        sys.stderr.write(f"dormouse watchdog: not permitted to signal pid {pid} (needs CAP_KILL)\n")
        sys.stderr.flush()


def stop_group(child: int, child_code: int | None, grace: float) -> int | None:
    """TERM the rest of the group, wait up to ``grace`` s, then KILL; reap all."""
    pgid = os.getpgrp()
    for pid in group_members(pgid):
        send(pid, signal.SIGTERM)
    killed = False
    deadline = time.monotonic() + grace
    while True:
        got = reap(child)
        child_code = got if got is not None else child_code
        left = group_members(pgid)
        if not left:
            break
        if time.monotonic() >= deadline:
            if killed:  # still there KILL_WAIT s after SIGKILL: nothing more to do
                break
            for pid in left:
                send(pid, signal.SIGKILL)
            killed = True
            deadline = time.monotonic() + KILL_WAIT
        time.sleep(0.05)
    got = reap(child)
    return got if got is not None else child_code


def write_exit_file(path: str, code: int) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"pid": os.getpid(), "code": code}, f)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--watch-pid", type=int, required=True)
    parser.add_argument("--exit-file", required=True)
    parser.add_argument("--grace", type=float, default=5.0)
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("no command given after --")

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    if os.getpgrp() != os.getpid():
        try:
            os.setsid()
        except PermissionError:
            pass
    try:
        # the running program's symbols, libc's among them: ctypes.util's
        # find_library would cost the app's start some 15 ms of imports
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass

    watched = proc_stat(args.watch_pid)
    watched_start = watched[2] if watched else None
    try:
        child = os.posix_spawnp(cmd[0], cmd, os.environ)
    except OSError as exc:
        sys.stderr.write(f"dormouse watchdog: cannot start {cmd[0]!r}: {exc}\n")
        write_exit_file(args.exit_file, 127)
        return 127

    polls = 0
    while True:
        code = reap(child)
        if code is not None:
            if _signalled is None:
                sys.stderr.write(f"dormouse watchdog: app exited with code {code}\n")
                sys.stderr.flush()
                write_exit_file(args.exit_file, code)
            stop_group(child, code, args.grace)
            return 0
        if _signalled is not None:
            send(child, _signalled)
            stop_group(child, None, args.grace)
            return 0
        if polls % WATCH_EVERY == 0 and not pid_alive(args.watch_pid, watched_start):
            sys.stderr.write(f"dormouse watchdog: watched pid {args.watch_pid} is gone; stopping\n")
            sys.stderr.flush()
            stop_group(child, None, args.grace)
            return 0
        polls += 1
        time.sleep(POLL)


if __name__ == "__main__":
    sys.exit(main())
