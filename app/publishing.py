"""Publishing an app: every rule about what a valid app is, in one place.

The /publish form, the CLI and the demo loader all call :func:`publish`; it
validates everything before writing anything, and reports every problem at
once, by field, so a form can show each next to its input.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import ClassVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from . import app_environment, app_envs, security
from .backends import frameworks
from .config import Settings
from .extensions import db
from .models import User, VizApp, utcnow
from .slugs import slug_error

# Python names (a Dash callable).
IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CPU_RE = re.compile(r"^(?:(\d{1,6})m|(\d{1,3})(?:\.(\d{1,3}))?)$")
MEMORY_RE = re.compile(r"^(\d{1,7})(Mi|Gi)$")
# A container image reference: [registry[:port]/]path[:tag][@digest], lowercase path.
IMAGE_RE = re.compile(
    r"^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9-]+)*(?::\d+)?)/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
# A source path inside a container image: relative, plain characters, no "..".
IMAGE_SOURCE_RE = re.compile(
    r"^(?!.*(?:^|/)\.\.(?:/|$|:))[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}(?::[A-Za-z_][A-Za-z0-9_]*)?$"
)


MAX_BUDGET = 100_000  # dollars a month: beyond this a budget is surely a typo


class PublishError(ValueError):
    """Invalid input; ``errors`` maps a field name to a message for a person."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass
class AppInput:
    """What a person submits, as text; :func:`publish` validates it."""

    title: str
    framework: str
    description: str = ""
    source: str = ""  # "dir/app.py" or "dir/app.py:server" relative to APPS_DIR
    image: str = ""
    command: str = ""
    port: str = ""
    cpu: str = "500m"
    memory: str = "512Mi"
    env: str = ""  # KEY=VALUE lines
    embed_origins: str = ""  # sites that may embed the viz page: origins, by spaces, commas or lines
    monthly_budget: str = ""  # dollars a month, blank: none (app/budget.py)
    requirements: str = ""  # its requirements file in APPS_DIR; blank: requirements.txt beside the source
    is_public: bool = True

    # the fields a person types as text (the publish form has one input each)
    TEXT_FIELDS: ClassVar[tuple[str, ...]] = (
        "title",
        "framework",
        "description",
        "source",
        "image",
        "command",
        "port",
        "cpu",
        "memory",
        "env",
        "embed_origins",
        "monthly_budget",
        "requirements",
    )


def parse_cpu(value: str) -> int | None:
    """Millicores for a Kubernetes CPU quantity like '500m' or '1.5'; None if invalid."""
    m = CPU_RE.match(value.strip())
    if not m:
        return None
    if m.group(1) is not None:
        return int(m.group(1))
    whole, frac = int(m.group(2)), (m.group(3) or "").ljust(3, "0")
    return whole * 1000 + int(frac or 0)


def parse_memory(value: str) -> int | None:
    """MiB for a quantity like '512Mi' or '2Gi'; None if invalid."""
    m = MEMORY_RE.match(value.strip())
    if not m:
        return None
    return int(m.group(1)) * (1024 if m.group(2) == "Gi" else 1)


def parse_budget(text: str) -> tuple[float | None, str | None]:
    """An app's monthly budget (app/budget.py) typed in dollars ("25", "12.50"; blank: none), or why not."""
    text = text.strip().removeprefix("$").strip()
    if not text:
        return None, None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None, "Write the budget in dollars, like 25 or 12.50 (or leave it blank for none)."
    if not amount.is_finite() or amount <= 0:
        return None, "A budget must be more than $0 (leave it blank for none)."
    if amount > MAX_BUDGET:
        return None, f"At most ${MAX_BUDGET:,} a month."
    if amount != amount.quantize(Decimal("0.01")):
        return None, "Give the budget in dollars and cents (at most 2 decimals)."
    return float(amount), None


def command_error(command: str, image: str) -> str | None:
    """Why a container command override cannot be used, or None. It is split
    into an argument list (shell quoting rules, no shell) for the container."""
    if not command:
        return None
    if len(command) > 500:
        return "Keep the command under 500 characters."
    if not image:
        return "A command replaces the start command of a container image; give the image too."
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return f"The command cannot be split into arguments: {exc}."
    if not argv:
        return "The command is empty."
    return None


def parse_env(text: str) -> tuple[dict[str, str], str | None]:
    env: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep:
            return {}, f"Line {number}: write KEY=VALUE."
        if (why := app_environment.refusal(name)) is not None:
            return {}, f"Line {number}: {why}; choose another name."
        if "\0" in value:
            return {}, f"Line {number}: the value of {name} holds a NUL character."
        if name in env:
            return {}, f"Line {number}: {name} is set twice."
        env[name] = value.strip()
    return env, None


def check_source_input(apps_dir: Path, source: str) -> tuple[str, str | None]:
    """Check a 'path[:callable]' source as a publisher typed it; return
    (relative path, callable). (At launch the backend finds the stored path
    again with :func:`app.backends.local_commands.locate_source`.)

    Raises ValueError with a message when the file is missing or outside
    ``apps_dir`` (symlinks resolved), or the callable is not an identifier.
    """
    path_text, _, callable_name = source.strip().partition(":")
    if not path_text:
        raise ValueError("Give the app's Python file, relative to the apps folder.")
    if callable_name and not IDENTIFIER_RE.match(callable_name):
        raise ValueError(f"{callable_name!r} is not a Python name (e.g. 'server').")
    candidate = Path(path_text)
    if candidate.is_absolute() or ".." in candidate.parts:
        raise ValueError("The source must be a relative path inside the apps folder.")
    root = apps_dir.resolve()
    full = (root / candidate).resolve()
    if not full.is_relative_to(root):
        raise ValueError("The source must stay inside the apps folder.")
    if not full.is_file() or full.suffix != ".py":
        raise ValueError(f"No Python file {path_text!r} in the apps folder.")
    return full.relative_to(root).as_posix(), (callable_name or None)


def available_sources(apps_dir: Path, limit: int = 200) -> list[str]:
    """Python files under the apps folder, for the publish form's suggestions."""
    if not apps_dir.is_dir():
        return []
    found = sorted(
        p.relative_to(apps_dir).as_posix()
        for p in apps_dir.rglob("*.py")
        if "__pycache__" not in p.parts and not p.name.startswith("_")
    )
    return found[:limit]


def title_taken(owner: User, title: str) -> bool:
    """Whether ``owner`` has an app (not deleted) called ``title``."""
    mine = (VizApp.owner_id == owner.id, VizApp.title == title, VizApp.deleted_at.is_(None))
    found = db.session.scalar(select(VizApp.id).where(*mine))
    return found is not None


def validate(
    owner: User, data: AppInput, settings: Settings, *, existing: VizApp | None = None
) -> dict[str, object]:
    """Check everything; return the values to store, or raise PublishError.
    With ``existing`` (an edit) its own title is no clash."""
    errors: dict[str, str] = {}
    values: dict[str, object] = {}
    title = data.title.strip()
    if (err := slug_error(title, "title")) is not None:
        errors["title"] = err
    elif (existing is None or existing.title != title) and title_taken(owner, title):
        errors["title"] = f"You already have an app called {title!r}."
    values["title"] = title

    framework = data.framework.strip().lower()
    fw = frameworks.FRAMEWORKS.get(framework)
    if fw is None:
        errors["framework"] = f"Choose {frameworks.names_text()}."
    values["framework"] = framework

    description = data.description.strip()
    if len(description) > 5000:
        errors["description"] = "Keep the description under 5000 characters."
    values["description"] = description

    image = data.image.strip()
    if image and (len(image) > 500 or not IMAGE_RE.match(image)):
        errors["image"] = "Not a valid image reference (e.g. ghcr.io/you/app:1.0)."
    values["image"] = image or None
    command = data.command.strip()
    if (err := command_error(command, image)) is not None:
        errors["command"] = err
    values["command"] = command or None

    values["source"] = values["callable"] = None
    if data.source.strip():
        try:
            values["source"], values["callable"] = check_source_input(settings.apps_dir, data.source)
        except ValueError as exc:
            if image and "image" not in errors and IMAGE_SOURCE_RE.match(data.source.strip()):
                # not in the apps folder: a path inside the image (cluster backends)
                path_text, _, callable_name = data.source.strip().partition(":")
                values["source"], values["callable"] = path_text, callable_name or None
            else:
                errors["source"] = str(exc)
        if fw and not fw.takes_callable and values.get("callable"):
            errors["source"] = f"A {fw.badge} app is a script; give only its file, no ':callable'."
        if fw and fw.takes_callable and "source" not in errors and not values["callable"]:
            values["callable"] = fw.default_callable
    elif not image:
        errors["source"] = "Give the app's source file (or, for a cluster, its image)."
    if settings.backend == "kubernetes" and not image and "image" not in errors:
        errors["image"] = "Apps run on the cluster from a container image; give one."
    values["requirements_text"] = None  # the cluster backend ignores requirements: the image has its packages
    if settings.backend == "local" and values["source"] and "source" not in errors:
        text, requirements_error = app_envs.read_requirements(
            settings.apps_dir, str(values["source"]), data.requirements
        )
        if requirements_error:
            errors["requirements"] = requirements_error
        values["requirements_text"] = text

    port_text = data.port.strip() or str(fw.default_port if fw else 8050)
    try:
        port = int(port_text)
        if not 1024 <= port <= 65535:
            raise ValueError
        values["port"] = port
    except ValueError:
        errors["port"] = "The port must be a whole number from 1024 to 65535."

    for name, parse, example, maximum, unit in (
        ("cpu", parse_cpu, "500m or 1.5", settings.max_cpu_millicores, "m CPU"),
        ("memory", parse_memory, "512Mi or 2Gi", settings.max_memory_mib, "Mi memory"),
    ):
        text = getattr(data, name).strip()
        amount = parse(text)
        if not amount:
            errors[name] = f"Write {name.replace('cpu', 'CPU')} like {example}."
        elif amount > maximum:
            errors[name] = f"At most {maximum}{unit}."
        values[name] = text

    env, env_error = parse_env(data.env)
    if env_error:
        errors["env"] = env_error
    values["env"] = env
    embed_origins, embed_error = security.parse_embed_origins(data.embed_origins)
    if embed_error:
        errors["embed_origins"] = embed_error
    values["embed_origins"] = embed_origins
    monthly_budget, budget_error = parse_budget(data.monthly_budget)
    if budget_error:
        errors["monthly_budget"] = budget_error
    values["monthly_budget"] = monthly_budget
    values["is_public"] = bool(data.is_public)
    if errors:
        raise PublishError(errors)
    return values


def resolved_environment(values: dict[str, object], settings: Settings) -> app_envs.Resolved | None:
    """Resolve the app's environment (local backend) before anything is
    saved, so requirements that cannot be satisfied are a form error."""
    if settings.backend != "local" or not values.get("source"):
        return None
    try:
        return app_envs.resolve(
            app_envs.Builder.from_settings(settings), str(values["framework"]), values["requirements_text"]
        )  # type: ignore[arg-type]
    except app_envs.BuildError as exc:
        raise PublishError({"requirements": str(exc)}) from None


def publish(owner: User, data: AppInput, settings: Settings, *, build_now: bool = False) -> VizApp:
    """Validate and save a new app; nothing is written when anything is
    wrong. Its environment is built in the background, or here (``build_now``:
    the CLI and the demo loader)."""
    values = validate(owner, data, settings)
    published = (
        db.session.scalar(
            select(func.count(VizApp.id)).where(VizApp.owner_id == owner.id, VizApp.deleted_at.is_(None))
        )
        or 0
    )
    if published >= settings.max_apps_per_owner:
        raise PublishError(
            {"title": f"You have published {published} apps, the most one account may have here."}
        )
    resolved = resolved_environment(values, settings)
    app = VizApp(owner_id=owner.id, **values)  # not owner=: that would add it to the session before its key
    # Claimed before the app is saved, so it is saved with its pending
    # environment: nobody else sees it until that is ready.
    mine = resolved is not None and app_envs.attach(
        app, resolved, app_envs.Builder.from_settings(settings), now=utcnow(), commit=False
    )
    db.session.add(app)
    try:
        db.session.commit()
    except IntegrityError:  # a simultaneous publish of the same title (a claimed build: the sweep's retry)
        db.session.rollback()
        raise PublishError({"title": f"You already have an app called {values['title']!r}."}) from None
    if mine and resolved is not None:
        app_envs.build(app, resolved.key, settings, foreground=build_now)
    return app
