"""Editing an app: the edit form's view of a stored app (environment values
hidden) and saving changes with the same rules as :mod:`app.publishing`."""

from __future__ import annotations

from . import app_envs
from .config import Settings
from .extensions import db
from .models import VizApp
from .publishing import AppInput, PublishError, resolved_environment, validate

# --- editing -----------------------------------------------------------------

#: What the edit form shows for each stored environment value: they may be
#: secrets, so the page never shows them. A line left as ``NAME=********``
#: keeps the stored value; a line removed removes the variable.
HIDDEN_VALUE = "********"


def input_of(app: VizApp) -> AppInput:
    """The app as the edit form shows it (environment values hidden)."""
    source = app.source or ""
    if source and app.callable:
        source = f"{source}:{app.callable}"
    return AppInput(
        title=app.title,
        framework=app.framework,
        description=app.description or "",
        source=source,
        image=app.image or "",
        command=app.command or "",
        port=str(app.port),
        cpu=app.cpu,
        memory=app.memory,
        env="\n".join(f"{name}={HIDDEN_VALUE}" for name in app.env or {}),
        embed_origins="\n".join(app.embed_origins or ()),
        monthly_budget="" if app.monthly_budget is None else f"{app.monthly_budget:.2f}",
        is_public=app.is_public,
    )


def _unhide_env(text: str, stored: dict[str, str]) -> tuple[str, str | None]:
    """``text`` with every ``NAME=********`` line given its stored value back;
    an error if a hidden line names no stored variable."""
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        name, sep, value = line.strip().partition("=")
        if sep and value.strip() == HIDDEN_VALUE:
            name = name.strip()
            if name not in stored:
                return text, f"Line {number}: {name} has no stored value to keep; type its value."
            line = f"{name}={stored[name]}"
        lines.append(line)
    return "\n".join(lines), None


def edit(app: VizApp, data: AppInput, settings: Settings, *, build_now: bool = False) -> VizApp:
    """Validate and save changes to an app; its title and framework stay (they
    name its URLs and how it runs). Changes apply to its next deployment (a
    changed requirements file: once its environment is built)."""
    env_text, env_error = _unhide_env(data.env, dict(app.env or {}))
    data = AppInput(**{**vars(data), "title": app.title, "framework": app.framework, "env": env_text})
    try:
        values = validate(app.owner, data, settings, existing=app)
    except PublishError as exc:
        if env_error:
            exc.errors["env"] = env_error
        raise
    if env_error:
        raise PublishError({"env": env_error})
    state = app_envs.state_of(app)
    unchanged = values["requirements_text"] == app.requirements_text and values["source"] == app.source
    resolved = (
        None if unchanged and state.label in ("ready", "building") else resolved_environment(values, settings)
    )
    for name, value in values.items():
        setattr(app, name, value)
    db.session.commit()
    app_envs.prepare(app, resolved, settings, foreground=build_now)
    return app
