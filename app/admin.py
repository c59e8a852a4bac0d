"""What an admin does from the dashboard: stop a deployment now, keep one
awake for a while, lift an app's monthly budget for the rest of the month,
make or unmake admins, disable an account. Each goes
through the lifecycle or the account service (one implementation of each
rule) and is written to the audit log (``admin_actions``) and the log, with
who did it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from . import budget, lifecycle
from .auth import disable_user
from .extensions import db
from .models import AdminAction, Deployment, User, VizApp

log = logging.getLogger(__name__)

MAX_KEEP_AWAKE_MINUTES = 24 * 60


class AdminError(ValueError):
    """An action refused, with a sentence for the admin."""


def record(actor: User, action: str, target: str, detail: str = "", dep: Deployment | None = None) -> None:
    db.session.add(
        AdminAction(
            actor_id=actor.id,
            actor=actor.username,
            action=action,
            target=target,
            deployment_id=dep.id if dep is not None else None,
            detail=detail,
        )
    )
    db.session.commit()
    log.info("admin %s: %s %s %s", actor.username, action, target, detail)


def target_of(dep: Deployment) -> str:
    return f"{dep.app.slug_path} ({dep.public_name})"


def stop_now(dep: Deployment, actor: User, *, now: datetime) -> bool:
    """Stop a live deployment (stop reason ``admin``); False if it was not live."""
    if not lifecycle.stop(dep, reason="admin", now=now, detail=f"stopped by {actor.username}"):
        return False
    record(actor, "stop", target_of(dep), dep=dep)
    return True


def keep_awake(dep: Deployment, minutes: int, actor: User, *, now: datetime) -> datetime:
    """Let the idle sweep keep ``dep`` for ``minutes`` from now; the moment."""
    if not 1 <= minutes <= MAX_KEEP_AWAKE_MINUTES:
        raise AdminError(f"Keep it awake for 1 to {MAX_KEEP_AWAKE_MINUTES} minutes.")
    until = now + timedelta(minutes=minutes)
    if not lifecycle.keep_awake(dep, until=until, by=actor.id):
        raise AdminError("That deployment is no longer running.")
    record(actor, "keep-awake", target_of(dep), f"for {minutes} min, until {until:%Y-%m-%d %H:%M} UTC", dep)
    return until


def lift_budget(app: VizApp, actor: User, *, now: datetime) -> datetime:
    """Let the app start whatever it costs until the 1st of next month; the moment."""
    if app.monthly_budget is None:
        raise AdminError(f"{app.slug_path} has no budget to lift.")
    if budget.lifted(app, now):
        raise AdminError(f"{app.slug_path}'s budget is already lifted for this month.")
    until = budget.lift(app, now=now)
    record(
        actor,
        "lift-budget",
        app.slug_path,
        f"${app.monthly_budget:,.2f} a month, lifted until {until:%Y-%m-%d}",
    )
    return until


def set_admin(user: User, is_admin: bool, actor: User) -> None:
    if user.id == actor.id and not is_admin:
        raise AdminError("You cannot remove your own admin rights (ask another admin).")
    if user.is_admin == is_admin:
        return
    user.is_admin = is_admin
    db.session.commit()
    record(actor, "make-admin" if is_admin else "remove-admin", user.username)


def disable(user: User, actor: User) -> list[str]:
    """Disable the account (its sessions end, its apps stop); what was stopped."""
    if user.id == actor.id:
        raise AdminError("You cannot disable your own account.")
    if not user.is_active:
        raise AdminError(f"{user.username} is already disabled.")
    stopped = disable_user(user)
    record(actor, "disable", user.username, f"stopped {', '.join(stopped)}" if stopped else "")
    return stopped
