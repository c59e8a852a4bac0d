"""What a Dormouse instance holds, read from outside its server: its
deployment rows (from its database), the app processes its local backend runs
and the files it keeps for them (records in the run dir, route files for
Traefik), and where these disagree (:func:`leaks`).

    assert leaks(rows(url), run_dir, routes_dir) == []

An apps directory for a test (:func:`apps_dir`) holds the demos and the
fixture apps of tests/fixture_apps/ (``plain/app.py:server``, a WSGI app
that starts at once, or after ``START_DELAY`` seconds).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, select

from app.backends.local_groups import group_alive
from app.config import normalise_database_url
from app.models import LIVE_STATUSES, Deployment, User, VizApp
from tests.factories import EXAMPLES
from tests.processes import group_is, processes_mentioning, recorded_groups

FIXTURE_APPS = Path(__file__).resolve().parent / "fixture_apps"
PLAIN_SOURCE = "plain/app.py:server"


def apps_dir(tmp_path: Path) -> Path:
    """A fresh APPS_DIR: copies of examples/ and tests/fixture_apps/ (sources
    must lie inside it, symlinks resolved)."""
    target = tmp_path / "apps"
    for source in (EXAMPLES, FIXTURE_APPS):
        shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@dataclass(frozen=True)
class Row:
    id: int
    name: str  # the deployment name: owner-title-public_name, as the backend names it
    public_name: str
    status: str
    backend_ref: str | None
    latest_ping_at: object

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES


def rows(database_url: str) -> list[Row]:
    """Every deployment row, read on a connection of its own."""
    engine = create_engine(normalise_database_url(database_url))
    try:
        with engine.connect() as conn:
            found = conn.execute(
                select(
                    Deployment.id,
                    User.username,
                    VizApp.title,
                    Deployment.public_name,
                    Deployment.status,
                    Deployment.backend_ref,
                    Deployment.latest_ping_at,
                )
                .join(VizApp, VizApp.id == Deployment.app_id)
                .join(User, User.id == VizApp.owner_id)
                .order_by(Deployment.id)
            ).all()
    finally:
        engine.dispose()
    return [Row(r[0], f"{r[1]}-{r[2]}-{r[3]}", r[3], r[4], r[5], r[6]) for r in found]


def app_processes(run_dir: Path) -> list[int]:
    """Live processes whose command line names ``run_dir`` (every watchdog the
    local backend started there does: its exit file), recorded or not."""
    return processes_mentioning(f"{run_dir}/")


def route_names(routes_dir: Path) -> set[str]:
    """The deployments Traefik has a route file for (Dormouse's own is not one)."""
    if not routes_dir.is_dir():
        return set()
    return {p.stem for p in routes_dir.glob("*.yml") if not p.name.startswith("_")}


def leaks(found: list[Row], run_dir: Path, routes_dir: Path) -> list[str]:
    """What disagrees, in words: a live row whose process is not running, a
    running app, a record or a route file no live row has, a process the run
    dir has no record of. Empty when all agree."""
    live = {row.name: row for row in found if row.live}
    problems = []
    groups = {}
    for record in sorted(run_dir.glob("*.json")) if run_dir.is_dir() else []:
        name = record.stem
        try:
            ref = json.loads(record.read_text(encoding="utf-8"))
            groups[name] = (int(ref["pid"]), int(ref["start"]))
        except (OSError, ValueError, KeyError, TypeError):
            problems.append(f"an unreadable record {record.name}")
    for name, (pgid, start) in groups.items():
        if name not in live:
            running = group_is(pgid, start)
            problems.append(f"{'a running app' if running else 'a record'} {name} with no live row")
    for name, row in live.items():
        ref = json.loads(row.backend_ref) if row.backend_ref else None
        if ref is None or not group_is(int(ref["pid"]), int(ref["start"])):
            problems.append(f"a {row.status} row {name} whose app is not running")
    for name in sorted(route_names(routes_dir) - set(live)):
        problems.append(f"a route file {name}.yml with no live row")
    recorded = {pgid for pgid, start, _ in recorded_groups(run_dir) if group_alive(pgid)}
    for pid in app_processes(run_dir):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if int(stat[stat.rfind(")") + 2 :].split()[2]) not in recorded:
            problems.append(f"an app process {pid} no record knows")
    return problems
