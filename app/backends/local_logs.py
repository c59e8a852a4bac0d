"""Reading a local deployment's output: the tail of ``run_dir/<deployment_name>.log``.

The app's stdout and stderr go to that file (:mod:`app.backends.local`), and so
do the watchdog's own notes (``dormouse watchdog: ...``), which are left out:
they are Dormouse's, not the app's. The file outlives the process, so a stopped
deployment's output stays readable until the file is removed.
"""

from __future__ import annotations

import os
from pathlib import Path

WATCHDOG_PREFIX = "dormouse watchdog:"


def tail(path: Path, max_bytes: int) -> str:
    """The app's lines among the last ``max_bytes`` of ``path``, as text
    (UTF-8, undecodable bytes replaced); "" if there is no such file.

    A line cut by the window's start is dropped, so the text starts on a whole
    line (unless the window holds no line break at all). Never follows a
    symlink: the file is Dormouse's own, made by ``open(..., "wb")``, and
    anything else in its place is not read."""
    if max_bytes <= 0:
        return ""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return ""
    with open(fd, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        start = max(0, size - max_bytes)
        f.seek(start)
        data = f.read(max_bytes)
    cut = data.find(b"\n") if start > 0 else -1
    data = data[cut + 1 :]  # from the first whole line (all of it if the window is one long line)
    text = data.decode("utf-8", "replace")
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith(WATCHDOG_PREFIX))
