"""Tables of the store. Schema changes go through Alembic (``migrations/``), never create_all.

Rows mirror OpenPAI's aggregates: a job with its attempts, the task attempts of each job attempt,
users with their groups and API tokens, and an append-only event log per job.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    password_hash: Mapped[str | None] = mapped_column(String(512))
    email: Mapped[str] = mapped_column(String(255), default="")
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    extension: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float)


class Group(Base):
    __tablename__ = "groups"

    groupname: Mapped[str] = mapped_column(String(255), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    virtual_clusters: Mapped[list] = mapped_column(JSON, default=list)
    external_name: Mapped[str] = mapped_column(String(255), default="", server_default="")
    extension: Mapped[dict] = mapped_column(JSON, default=dict, server_default="{}")


class Membership(Base):
    __tablename__ = "memberships"

    username: Mapped[str] = mapped_column(
        ForeignKey("users.username", ondelete="CASCADE"), primary_key=True
    )
    groupname: Mapped[str] = mapped_column(
        ForeignKey("groups.groupname", ondelete="CASCADE"), primary_key=True
    )


class Token(Base):
    """An API token. Only its SHA-256 is stored: a leaked database leaks no usable token."""

    __tablename__ = "tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("users.username", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    application: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float)


class Job(Base):
    """A job: the submitted protocol (secrets kept apart from the shown config) and its status."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    framework_name: Mapped[str] = mapped_column(String(600), unique=True)
    username: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    virtual_cluster: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))
    sub_state: Mapped[str] = mapped_column(String(40), default="")
    execution_type: Mapped[str] = mapped_column(String(8), default="START")
    config_yaml: Mapped[str] = mapped_column(Text)  # masked: shown to users
    protocol: Mapped[dict] = mapped_column(JSON)  # validated protocol, secrets removed
    secrets: Mapped[dict] = mapped_column(JSON, default=dict)  # never returned by the API
    priority: Mapped[int] = mapped_column(Integer, default=0)
    job_priority: Mapped[str | None] = mapped_column(String(16))
    tags: Mapped[list] = mapped_column(JSON, default=list)
    attempt_id: Mapped[int] = mapped_column(Integer, default=0)
    retries_user: Mapped[int] = mapped_column(Integer, default=0)
    retries_platform: Mapped[int] = mapped_column(Integer, default=0)
    total_gpu: Mapped[int] = mapped_column(Integer, default=0)
    total_tasks: Mapped[int] = mapped_column(Integer, default=0)
    total_task_roles: Mapped[int] = mapped_column(Integer, default=0)
    submitted_at: Mapped[float] = mapped_column(Float)
    launched_at: Mapped[float | None] = mapped_column(Float)
    completed_at: Mapped[float | None] = mapped_column(Float)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    exit_diagnostics: Mapped[str | None] = mapped_column(Text)
    exit_trigger: Mapped[dict | None] = mapped_column(JSON)
    waiting_reason: Mapped[str | None] = mapped_column(Text)
    exit_info: Mapped[dict | None] = mapped_column(JSON)

    # history is listed newest first under each filter and paged by keyset (migration 0005)
    __table_args__ = (
        Index("ix_jobs_submitted", "submitted_at", "id"),
        Index("ix_jobs_user_submitted", "username", "submitted_at", "id"),
        Index("ix_jobs_vc_submitted", "virtual_cluster", "submitted_at", "id"),
        Index("ix_jobs_state_submitted", "state", "submitted_at", "id"),
        Index("ix_jobs_vc_state_submitted", "virtual_cluster", "state", "submitted_at", "id"),
        Index("ix_jobs_user_name", "username", "name"),
    )


class JobAttempt(Base):
    __tablename__ = "job_attempts"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    attempt_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float)
    launched_at: Mapped[float | None] = mapped_column(Float)
    completed_at: Mapped[float | None] = mapped_column(Float)
    exit_code: Mapped[int | None] = mapped_column(Integer)


class TaskAttempt(Base):
    """One attempt of one task of one job attempt. ``task_id`` is the backend's key for it."""

    __tablename__ = "task_attempts"

    task_id: Mapped[str] = mapped_column(String(700), primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    job_attempt_id: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(255))
    task_index: Mapped[int] = mapped_column(Integer)
    attempt_id: Mapped[int] = mapped_column(Integer)
    task_uid: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    launch_state: Mapped[str] = mapped_column(String(16), default="pending")
    retries: Mapped[int] = mapped_column(Integer, default=0)
    accountable_retries: Mapped[int] = mapped_column(Integer, default=0)
    node: Mapped[str | None] = mapped_column(String(255))
    ip: Mapped[str | None] = mapped_column(String(64))
    gpus: Mapped[list] = mapped_column(JSON, default=list)
    ports: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float)
    launched_at: Mapped[float | None] = mapped_column(Float)
    completed_at: Mapped[float | None] = mapped_column(Float)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    exit_diagnostics: Mapped[str | None] = mapped_column(Text)
    exit_info: Mapped[dict | None] = mapped_column(JSON)
    debug_until: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        Index("ix_task_attempts_job", "job_id", "job_attempt_id"),
        # the debug reservations a restart reloads (migration 0005)
        Index("ix_task_attempts_debug", "job_id", sqlite_where=text("debug_until IS NOT NULL"),
              postgresql_where=text("debug_until IS NOT NULL")),
    )


class Event(Base):
    """An append-only record of a job or task transition (OpenPAI's job events, extended)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[str | None] = mapped_column(String(700))
    type: Mapped[str] = mapped_column(String(16), default="Normal")
    reason: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text, default="")
    timestamp: Mapped[float] = mapped_column(Float)
