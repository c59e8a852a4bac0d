"""Build, check and remove app environments with uv: the part that runs as
the apps' user (``LOCAL_RUN_AS``), by file path, with Dormouse's interpreter
and only the standard library (like :mod:`local_watchdog`)::

    python -I env_builder.py compile --uv UV --python PY [--index URL]  < requirements.in
    python -I env_builder.py build --uv UV --python PY --envs-dir DIR --key KEY
                                   [--index URL] [--max-bytes N] [--bytecode]  < lock
    python -I env_builder.py remove --envs-dir DIR --key KEY
    python -I env_builder.py sweep-tmp --envs-dir DIR [--key KEY] [--older-than S]

Each prints one JSON line. The parent (:mod:`app.env_builds`) gives it a
clean environment (``UV_CACHE_DIR``, ``UV_NO_CONFIG``, certificates, proxies;
never ``VIRTUAL_ENV`` or the operator's ``UV_*``), holds the per-key lock,
the time limit (it kills this process group) and the database.

uv runs with ``--no-config`` and ``--only-binary :all:`` (nothing is built
from source: no package's code runs at install time), an explicit
``--python``, and in a private temporary directory as its working directory
(no ``uv.toml`` or ``.venv`` around it is picked up). A build goes into
``DIR/.tmp-KEY-*``, is measured (every inode once), marked complete and
renamed to ``DIR/KEY``: an environment appears whole or not at all.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time

MARKER = ".dormouse-env"
LOCK_FILE = ".dormouse-lock.txt"


def _uv(uv: str, args: list[str], cwd: str, index: str) -> subprocess.CompletedProcess[str]:
    flags = ["--no-config", "--color", "never", "--no-progress", "-q"]
    if index and args[:2] != ["venv"]:
        flags += ["--default-index", index]
    return subprocess.run(
        [uv, *args, *flags], cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )


def _failed(proc: subprocess.CompletedProcess[str], step: str) -> dict[str, object]:
    return {"ok": False, "step": step, "code": proc.returncode, "stderr": proc.stderr[-16000:]}


def disk_bytes(root: str) -> int:
    """Bytes the tree takes on disk, each inode counted once (``du -s``):
    files hard-linked from uv's cache are counted, so this bounds what an
    app brings."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
    return total


def compile_lock(opts: argparse.Namespace, requirements_in: str) -> dict[str, object]:
    work = tempfile.mkdtemp(prefix="dormouse-resolve-")
    try:
        with open(os.path.join(work, "requirements.in"), "w", encoding="utf-8") as fh:
            fh.write(requirements_in)
        proc = _uv(
            opts.uv,
            ["pip", "compile", "requirements.in", "--python", opts.python, "--only-binary", ":all:",
             "--no-header", "--no-annotate", "-o", "lock.txt"],
            work, opts.index,
        )  # fmt: skip
        if proc.returncode != 0:
            return _failed(proc, "resolve")
        with open(os.path.join(work, "lock.txt"), encoding="utf-8") as fh:
            return {"ok": True, "lock": fh.read()}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _complete(path: str) -> bool:
    return os.path.isfile(os.path.join(path, MARKER))


def build(opts: argparse.Namespace, lock: str) -> dict[str, object]:
    final = os.path.join(opts.envs_dir, opts.key)
    if _complete(final):
        return {"ok": True, "reused": True, "size": disk_bytes(final)}
    os.makedirs(opts.envs_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{opts.key}-", dir=opts.envs_dir)
    try:
        started = time.monotonic()
        proc = _uv(
            opts.uv, ["venv", "--relocatable", "--allow-existing", "--python", opts.python, tmp], tmp, ""
        )
        if proc.returncode != 0:
            return _failed(proc, "venv")
        with open(os.path.join(tmp, LOCK_FILE), "w", encoding="utf-8") as fh:
            fh.write(lock)
        sync = ["pip", "sync", "--python", os.path.join(tmp, "bin", "python"), "--only-binary", ":all:"]
        if opts.bytecode:
            sync.append("--compile-bytecode")
        proc = _uv(opts.uv, [*sync, LOCK_FILE], tmp, opts.index)
        if proc.returncode != 0:
            return _failed(proc, "install")
        size = disk_bytes(tmp)
        if opts.max_bytes and size > opts.max_bytes:
            return {"ok": False, "step": "size", "size": size}
        with open(os.path.join(tmp, MARKER), "w", encoding="utf-8") as fh:
            json.dump({"key": opts.key, "size": size}, fh)
        os.chmod(tmp, 0o755)  # mkdtemp made it 0700: Dormouse (another user) reads it too
        if os.path.lexists(final) and not _complete(final):
            shutil.rmtree(final)  # what a crash in an older layout left
        try:
            os.rename(tmp, final)
        except OSError:
            if not _complete(final):
                raise
            return {"ok": True, "reused": True, "size": disk_bytes(final)}  # another builder won
        tmp = ""
        return {"ok": True, "reused": False, "size": size, "seconds": time.monotonic() - started}
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def remove(opts: argparse.Namespace) -> dict[str, object]:
    final = os.path.join(opts.envs_dir, opts.key)
    if not os.path.lexists(final):
        return {"ok": True, "removed": False}
    trash = tempfile.mkdtemp(prefix=f".tmp-{opts.key}-", dir=opts.envs_dir)
    os.rename(final, os.path.join(trash, "env"))  # gone from its name at once
    shutil.rmtree(trash, ignore_errors=True)
    return {"ok": True, "removed": True}


def sweep_tmp(opts: argparse.Namespace) -> dict[str, object]:
    prefix = f".tmp-{opts.key}-" if opts.key else ".tmp-"
    removed = []
    cutoff = time.time() - opts.older_than
    try:
        entries = list(os.scandir(opts.envs_dir))
    except FileNotFoundError:
        entries = []
    for entry in entries:
        if entry.name.startswith(prefix) and entry.stat(follow_symlinks=False).st_mtime <= cutoff:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.name)
    return {"ok": True, "removed": removed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="env_builder")
    parser.add_argument("command", choices=["compile", "build", "remove", "sweep-tmp"])
    parser.add_argument("--uv", default="")
    parser.add_argument("--python", default="")
    parser.add_argument("--index", default="")
    parser.add_argument("--envs-dir", default="")
    parser.add_argument("--key", default="")
    parser.add_argument("--max-bytes", type=int, default=0)
    parser.add_argument("--bytecode", action="store_true")
    parser.add_argument("--older-than", type=float, default=0.0)
    opts = parser.parse_args(argv)
    os.umask(0o022)  # the apps read the environments; nobody else writes them
    if opts.key and (len(opts.key) != 64 or not all(c in "0123456789abcdef" for c in opts.key)):
        parser.error("bad key")
    if opts.command == "compile":
        result = compile_lock(opts, sys.stdin.read())
    elif opts.command == "build":
        result = build(opts, sys.stdin.read())
    elif opts.command == "remove":
        result = remove(opts)
    else:
        result = sweep_tmp(opts)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
