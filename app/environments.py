"""Per-app Python environments, the pure part: what a publisher's
``requirements.txt`` may say, what Dormouse asks uv to resolve for an app,
the key an environment is stored under, and whether a built environment
holds what Dormouse's launch needs. No I/O beyond reading metadata files;
the runner (uv, processes, the database) is :mod:`app.env_builds`.

The rules, and why:

* A requirements file may hold only ``name[extras] specifier ; marker``
  lines (PEP 508, no URL). uv would honour options in it (``--index-url``,
  ``-r``/``-c`` of any readable file, ``-e`` paths whose build backends run
  code), so Dormouse parses the file itself and writes the ``requirements.in``
  uv sees; the publisher's file never reaches uv.
* The framework's packages (``Framework.env_requires``: e.g. ``dash>=4,<5``
  and ``gunicorn>=27,<28``) are added to every input, with the range of
  versions Dormouse can drive: a pin outside it fails in the resolver.
* An app without a requirements file gets its framework's default
  environment: the versions in Dormouse's own environment (those the test
  suite runs).
* The key is the sha256 of the resolved ``name==version`` lines, the
  interpreter's identity and :data:`ENV_FORMAT`: apps whose requirements
  resolve alike share one environment, and an unchanged app never rebuilds.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import os
import platform
import re
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .backends.frameworks import Framework

ENV_FORMAT = 1  # bump when the layout or the build flags change: every key changes
MAX_FILE_BYTES = 64 * 1024
MAX_LINES = 200
ERROR_CAP = 4096  # characters of uv's message kept for people
REQUIREMENTS_FILE = "requirements.txt"
COMMENT_RE = re.compile(r"(?:^|\s)#.*$")
LOCK_LINE_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)$")


# --- what a publisher may write ----------------------------------------------


def parse_requirements(text: str) -> tuple[list[Requirement], list[str]]:
    """The requirements in ``text`` and a message for each refused line.

    Accepted: blank lines, ``#`` comments and PEP 508 requirements naming a
    package of the index (extras, version specifiers, environment markers).
    Refused: every option (``-r``, ``-c``, ``-e``, ``--index-url``, ...), line
    continuations, URLs and paths (``pkg @ https://...``, ``./pkg``), a name
    given twice, NUL bytes, and files over :data:`MAX_FILE_BYTES` or
    :data:`MAX_LINES` lines."""
    if len(text.encode("utf-8", "replace")) > MAX_FILE_BYTES:
        return [], [f"The requirements file is larger than {MAX_FILE_BYTES // 1024} KiB."]
    if "\0" in text:
        return [], ["The requirements file holds a NUL byte; is it a text file?"]
    lines = text.splitlines()
    if len(lines) > MAX_LINES:
        return [], [f"The requirements file has more than {MAX_LINES} lines."]
    found: list[Requirement] = []
    errors: list[str] = []
    seen: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        line = COMMENT_RE.sub("", raw).strip()
        if not line:
            continue
        if line.endswith("\\"):
            errors.append(f"Line {number}: line continuations (a trailing \\) are not allowed.")
            continue
        if line.startswith("-"):
            option = line.split()[0].split("=")[0]
            errors.append(
                f"Line {number}: options such as {option} are not allowed; list one package per line."
            )
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            errors.append(f"Line {number}: not a package requirement (write e.g. pandas>=2.2).")
            continue
        if req.url:
            errors.append(
                f"Line {number}: {req.name} comes from a URL or a path; name a package from the index."
            )
            continue
        name = canonicalize_name(req.name)
        if name in seen:
            errors.append(f"Line {number}: {req.name} is listed twice.")
            continue
        seen.add(name)
        found.append(req)
    return found, errors


def canonical_text(reqs: Iterable[Requirement]) -> str:
    """The accepted requirements as Dormouse stores them and hands them to uv:
    one ``str(Requirement)`` a line, in the publisher's order."""
    return "".join(f"{req}\n" for req in reqs)


# --- what is resolved for an app ---------------------------------------------


def requirement_names(fw: Framework) -> list[str]:
    """The canonical names of the framework's launch packages, the framework first."""
    return [canonicalize_name(Requirement(r).name) for r in fw.env_requires]


def default_pins(fw: Framework, version_of=md.version) -> list[str]:
    """``name==version`` for each of the framework's packages at the version in
    Dormouse's own environment (what the test suite runs), or its range when
    Dormouse does not have it installed."""
    pins = []
    for text in fw.env_requires:
        req = Requirement(text)
        try:
            version = version_of(req.name)
        except md.PackageNotFoundError:
            pins.append(text)
            continue
        if req.specifier.contains(Version(version), prereleases=True):
            pins.append(f"{canonicalize_name(req.name)}=={version}")
        else:
            pins.append(text)
    return pins


def build_input(fw: Framework, reqs: list[Requirement] | None) -> str:
    """The ``requirements.in`` uv resolves for an app of framework ``fw``:
    the default pins when the app has no requirements file (``None``), else
    the publisher's lines and the framework's packages with their ranges.

    Raises ValueError (a message for the publisher) when the file does not
    name the framework."""
    if reqs is None:
        return "".join(f"{pin}\n" for pin in default_pins(fw))
    names = {canonicalize_name(r.name) for r in reqs}
    framework_req = Requirement(fw.env_requires[0]) if fw.env_requires else None
    if framework_req and canonicalize_name(framework_req.name) not in names:
        raise ValueError(
            f"requirements.txt must list {framework_req.name}: Dormouse serves {fw.badge} apps with "
            f"{framework_req}. Add a line such as {framework_req}."
        )
    return canonical_text(reqs) + "".join(f"{r}\n" for r in fw.env_requires)


def input_hash(requirements_in: str, identity: str) -> str:
    """What a resolution depends on (besides the index's contents): the input
    and the interpreter. Apps with the same hash may share a resolution."""
    return hashlib.sha256(f"dormouse-input/{ENV_FORMAT}\0{identity}\0{requirements_in}".encode()).hexdigest()


# --- locks and keys ------------------------------------------------------------


def parse_lock(text: str) -> dict[str, str]:
    """``{canonical name: version}`` of uv's ``name==version`` output; ValueError
    on any other line (uv was asked for no header and no annotations)."""
    pins: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        m = LOCK_LINE_RE.match(line)
        if not m:
            raise ValueError(f"unexpected line in uv's lock: {line[:80]!r}")
        pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def lock_text(pins: dict[str, str]) -> str:
    """The normal form of a lock: sorted ``name==version`` lines."""
    return "".join(f"{name}=={pins[name]}\n" for name in sorted(pins))


def python_identity(executable: str | None = None) -> str:
    """Which interpreter environments are built for, as a short string:
    ``cpython-3.11.7-linux-x86_64-glibc2.36@/usr/local/bin/python3.11``."""
    base = executable or getattr(sys, "_base_executable", None) or sys.executable
    libc, libc_version = platform.libc_ver()
    return (
        f"{sys.implementation.name}-{platform.python_version()}-{sysconfig.get_platform()}"
        f"-{libc or 'nolibc'}{libc_version}@{os.path.realpath(base)}"
    )


def env_key(identity: str, lock: str) -> str:
    """The environment's name: sha256 (hex) of the format, the interpreter and the lock."""
    return hashlib.sha256(f"dormouse-env/{ENV_FORMAT}\0{identity}\0{lock}".encode()).hexdigest()


KEY_RE = re.compile(r"^[0-9a-f]{64}\Z")


def is_key(text: str) -> bool:
    return bool(KEY_RE.match(text))


# --- the framework contract ----------------------------------------------------


def contract_error(fw: Framework, have: dict[str, str]) -> str | None:
    """Why an environment holding ``have`` (``{canonical name: version}``)
    cannot run a ``fw`` app with Dormouse's launch, or None."""
    for text in fw.env_requires:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if name not in have:
            return f"The environment has no {req.name}; Dormouse needs {req} to serve {fw.badge} apps."
        try:
            version = Version(have[name])
        except InvalidVersion:
            return f"{req.name} {have[name]!r} is not a version Dormouse can check."
        if not SpecifierSet(str(req.specifier)).contains(version, prereleases=True):
            return f"{req.name} {version} is outside what Dormouse can drive ({req})."
    return None


def site_packages(env_dir: Path, version: tuple[int, int] = sys.version_info[:2]) -> Path:
    return env_dir / "lib" / f"python{version[0]}.{version[1]}" / "site-packages"


def installed(env_dir: Path) -> dict[str, str]:
    """``{canonical name: version}`` of the distributions in an environment,
    read from its ``*.dist-info`` by this process: no code from the
    environment runs (a wheel's ``.pth`` file would run under its Python)."""
    found: dict[str, str] = {}
    for dist in md.distributions(path=[str(site_packages(env_dir))]):
        name = dist.metadata["Name"]
        if name:
            found[canonicalize_name(name)] = dist.version
    return found


# --- uv's messages for people --------------------------------------------------

NOISE = ("Using Python", "Using CPython", "Resolved ", "Prepared ", "Installed ", "Uninstalled ", "Audited ")


def summarize_uv_error(stderr: str, code: int | None) -> str:
    """uv's complaint in words for the app's owner: its ``error:``/``cause:``/
    ``hint:`` lines (the resolver's explanation reads well) without progress
    noise, capped at :data:`ERROR_CAP` characters."""
    lines = [ln.rstrip() for ln in stderr.splitlines() if ln.strip() and not ln.lstrip().startswith(NOISE)]
    text = "\n".join(lines).strip()
    if code is not None and code < 0:
        text = f"The build was stopped (signal {-code}).\n{text}".strip()
    elif code == 2 and "error:" in text and "resolving dependencies" not in text:
        text = f"Dormouse could not reach the package index or read an answer; try again later.\n{text}"
    if not text:
        text = f"uv failed (exit code {code}) without a message."
    return text if len(text) <= ERROR_CAP else text[: ERROR_CAP - 1] + "…"
