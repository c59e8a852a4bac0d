"""The data model: users, published apps and their deployments."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator
from werkzeug.security import check_password_hash, generate_password_hash

from . import slugs
from .backends.frameworks import FRAMEWORKS
from .extensions import db

LIVE_STATUSES = ("starting", "running")
STATUSES = ("starting", "running", "failed", "stopped")


def sql_in(column: str, values: tuple[str, ...]) -> str:
    """``column IN ('a', 'b')`` for a constraint or index built from one of
    the tuples above (constant, known values only)."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database.

    SQLite keeps no zone, so values come back naive; this gives them back
    their UTC zone, and refuses naive datetimes on the way in.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(40), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Named by every session and remember-me cookie (see get_id): moving it on
    # (logout, a new password, disabling) ends all of them at once.
    session_version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    apps: Mapped[list[VizApp]] = relationship(back_populates="owner")

    def get_id(self) -> str:
        """What Flask-Login keeps in the session and the remember-me cookie."""
        return f"{self.id}:{self.session_version}"

    @property
    def is_active(self) -> bool:
        return self.disabled_at is None

    def end_sessions(self) -> None:
        """Every session and remember-me cookie of this user stops working."""
        self.session_version = (self.session_version or 1) + 1

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def __repr__(self) -> str:
        return f"<User {self.username}>"


class VizApp(db.Model):
    """A published app (of any registered framework). It runs only as a :class:`Deployment`."""

    __tablename__ = "viz_apps"
    __table_args__ = (
        # One app of each title per owner among those not deleted: a deleted
        # app's row (and its deployments' history) stays, and its title is free.
        Index(
            "uq_viz_apps_owner_title",
            "owner_id",
            "title",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        # the registry's names (plain lowercase words); a framework added there
        # needs a migration that widens this constraint
        CheckConstraint(sql_in("framework", tuple(FRAMEWORKS)), name="framework"),
        CheckConstraint("port BETWEEN 1 AND 65535", name="port"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(40))
    framework: Mapped[str] = mapped_column(String(10))
    description: Mapped[str] = mapped_column(Text, default="")
    # Local backend: a Python file relative to APPS_DIR; for Dash also the WSGI
    # callable in it (e.g. "server").
    source: Mapped[str | None] = mapped_column(String(500))
    callable: Mapped[str | None] = mapped_column(String(100))
    # Cluster backends: the container image and an optional command override.
    image: Mapped[str | None] = mapped_column(String(500))
    command: Mapped[str | None] = mapped_column(String(500))
    port: Mapped[int] = mapped_column(Integer, default=8050)
    cpu: Mapped[str] = mapped_column(String(20), default="500m")
    memory: Mapped[str] = mapped_column(String(20), default="512Mi")
    env: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    # Sites (origins such as https://blog.example.org) that may embed the viz
    # page in a frame, besides Dormouse's own pages: its CSP frame-ancestors.
    embed_origins: Mapped[list[str]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Dollars a month this app may cost (see app/costs.py); none: no limit.
    monthly_budget: Mapped[float | None] = mapped_column(Numeric(12, 2, asdecimal=False))
    # An admin lifted the budget for the rest of a month: the app starts
    # whatever it costs until this moment (the 1st of the next month; the
    # admin_actions log has who). See app/budget.py.
    budget_lifted_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set when its owner (or an admin) deletes it: the app is gone from every
    # page and command, its deployments stay for usage and cost history.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Its own packages (local backend, app/env_builds.py): the accepted lines
    # of its requirements.txt (None: none, the framework's default
    # environment), the hash of what is resolved for it, the environment
    # it runs in (None until its first one is ready, or for an app from before
    # environments), and the one being built for it (first publish, or an edit
    # that changed its requirements: it replaces env_key once ready;
    # app/app_envs.py). An app with no env_key but a pending one is its
    # owner's and admins' only (managing.published).
    requirements_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    requirements_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    env_key: Mapped[str | None] = mapped_column(
        ForeignKey("environments.key", ondelete="SET NULL"), nullable=True, index=True
    )
    pending_env_key: Mapped[str | None] = mapped_column(
        ForeignKey("environments.key", ondelete="SET NULL"), nullable=True, index=True
    )

    owner: Mapped[User] = relationship(back_populates="apps")
    environment: Mapped[Environment | None] = relationship(foreign_keys=[env_key])
    deployments: Mapped[list[Deployment]] = relationship(
        back_populates="app", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def slug_path(self) -> str:
        return f"{self.owner.username}/{self.title}"

    def __repr__(self) -> str:
        return f"<VizApp {self.slug_path}>"


class Deployment(db.Model):
    """One run of an app. At most one live (starting/running) per app and name."""

    __tablename__ = "deployments"
    __table_args__ = (
        CheckConstraint(sql_in("status", STATUSES), name="status"),
        # The guarantee that simultaneous first visits make exactly one deployment.
        Index(
            "uq_deployments_live_app_name",
            "app_id",
            "name",
            unique=True,
            sqlite_where=text(sql_in("status", LIVE_STATUSES)),
            postgresql_where=text(sql_in("status", LIVE_STATUSES)),
        ),
        Index("ix_deployments_status", "status"),
        # Usage and cost (app/usage.py, app/costs.py): deployments of one app, or
        # of all, that started or stopped in a window.
        Index("ix_deployments_app_created", "app_id", "created_at"),
        Index("ix_deployments_created_at", "created_at"),
        Index("ix_deployments_stopped_created", "stopped_at", "created_at"),
        # The caps (MAX_LIVE_DEPLOYMENTS, MAX_LIVE_PER_OWNER), exact across workers
        # and replicas: a live deployment holds one numbered slot of each, and
        # these indexes let no two live deployments hold the same one.
        Index(
            "uq_deployments_live_slot",
            "slot",
            unique=True,
            sqlite_where=text(sql_in("status", LIVE_STATUSES)),
            postgresql_where=text(sql_in("status", LIVE_STATUSES)),
        ),
        Index(
            "uq_deployments_live_owner_slot",
            "owner_id",
            "owner_slot",
            unique=True,
            sqlite_where=text(sql_in("status", LIVE_STATUSES)),
            postgresql_where=text(sql_in("status", LIVE_STATUSES)),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("viz_apps.id", ondelete="CASCADE"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    slot: Mapped[int | None] = mapped_column(Integer)  # of MAX_LIVE_DEPLOYMENTS, while live
    owner_slot: Mapped[int | None] = mapped_column(Integer)  # of MAX_LIVE_PER_OWNER, while live
    name: Mapped[str] = mapped_column(String(40), default="default")
    public_name: Mapped[str] = mapped_column(String(60), unique=True)
    status: Mapped[str] = mapped_column(String(10), default="starting")
    status_reason: Mapped[str] = mapped_column(Text, default="")
    phase: Mapped[str] = mapped_column(String(200), default="")
    backend: Mapped[str] = mapped_column(String(20))
    backend_ref: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    latest_load_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    latest_ping_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stop_reason: Mapped[str | None] = mapped_column(String(20))
    # When a process last read this deployment's status from the backend; the
    # conditional update on it lets one read a second through, across workers.
    status_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What ran, for its cost: the app's CPU and memory when this deployment was
    # made (the app may be edited later). None only for rows whose app's
    # quantities could not be read when the columns were added.
    cpu_millicores: Mapped[int | None] = mapped_column(Integer)
    memory_mib: Mapped[int | None] = mapped_column(Integer)
    # Usage counters, moved only by writes that happen anyway (record_load,
    # record_ping): full page loads, and seconds watched as the written pings
    # tell it (app/usage.py, ping_credit).
    page_loads: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    viewer_seconds: Mapped[float] = mapped_column(Float, default=0.0, server_default=text("0"))
    # Goodbyes: beacons from pages of this deployment as they closed (never
    # more than page_loads), and the latest one's moment. page_loads minus
    # goodbyes is how many of its pages may still be open (a lost beacon only
    # makes it higher); the idle policy stops it soon after the last closed.
    goodbyes: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    latest_goodbye_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # An admin's "keep awake for N minutes": the idle sweep keeps the
    # deployment until this moment (app/idle.py), and who asked (the
    # admin_actions log has every such request).
    keep_awake_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    keep_awake_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    app: Mapped[VizApp] = relationship(back_populates="deployments")
    kept_awake_by: Mapped[User | None] = relationship(foreign_keys=[keep_awake_by])

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def prefix(self) -> str:
        """The URL path the app serves under: /<owner>/<title>/<public_name>/."""
        return slugs.url_prefix(self.app.owner.username, self.app.title, self.public_name)

    @property
    def deployment_name(self) -> str:
        """The name backends know this deployment by (see AppSpec)."""
        return slugs.deployment_name(self.app.owner.username, self.app.title, self.public_name)

    def __repr__(self) -> str:
        return f"<Deployment {self.public_name} {self.status}>"


ENV_STATUSES = ("building", "ready", "failed")


class Environment(db.Model):
    """A Python environment built with uv for apps (app/env_builds.py), in
    ``ENVS_DIR/<key>``; the key is the hash of its lock and interpreter, so
    apps whose requirements resolve alike share it. The row is the claim on
    its build: one INSERT (or conditional UPDATE of a failed or stale one)
    wins, every other worker reads the row."""

    __tablename__ = "environments"
    __table_args__ = (CheckConstraint(sql_in("status", ENV_STATUSES), name="status"),)

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(10))
    framework: Mapped[str] = mapped_column(String(10))
    python: Mapped[str] = mapped_column(String(300))  # the interpreter's identity
    lock_text: Mapped[str] = mapped_column(Text)  # the name==version lines
    error: Mapped[str | None] = mapped_column(Text, nullable=True)  # uv's message, for owners
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    build_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    builds: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))  # uv runs
    claimed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)  # host:pid
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    built_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def __repr__(self) -> str:
        return f"<Environment {self.key[:12]} {self.status}>"


class SchedulerLease(db.Model):
    """A named lease so that only one sweep runs at a time across workers and
    replicas: whoever holds an unexpired lease may run the job."""

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UsedToken(db.Model):
    """The id (``jti``) of an app entry token that has been exchanged, kept
    until the token expires, so a copied or replayed entry URL is refused in
    every worker and replica. The sweep removes expired rows."""

    __tablename__ = "used_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


ADMIN_ACTIONS = ("stop", "keep-awake", "make-admin", "remove-admin", "disable", "lift-budget")


class AdminAction(db.Model):
    """What an admin did from the dashboard, when, to what: the audit log.
    The actor's and the target's names are copied, so the line reads the
    same whatever happens to the rows later."""

    __tablename__ = "admin_actions"
    __table_args__ = (CheckConstraint(sql_in("action", ADMIN_ACTIONS), name="action"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(40))  # the admin's username
    action: Mapped[str] = mapped_column(String(20))
    target: Mapped[str] = mapped_column(String(200))  # owner/title (public name), or a username
    deployment_id: Mapped[int | None] = mapped_column(ForeignKey("deployments.id", ondelete="SET NULL"))
    detail: Mapped[str] = mapped_column(Text, default="")


class ApiToken(db.Model):
    """A bearer token for the REST API (:mod:`app.api_tokens`): its ``jti``,
    whose it is, what its owner called it, when it expires, whether it was
    revoked, when it was last used (coalesced). The token string itself is
    never stored: it is shown once, when made."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    jti: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(80), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    user: Mapped[User] = relationship()
