"""The audit log's records: who acted (Actor), what they did (AuditEntry), and its pages.

Every admin verb that changes jobs or settings takes an Actor; the store writes the entry in
the same transaction as the change (common/store/audited.py), so the log and the change
commit or roll back together. Submissions are not audited (every job records its key).
An Actor of None means the change is not an admin's (the janitor's retention, the bench).
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from common.models import QueryId, QueryInt


@dataclass(frozen=True)
class Actor:
    """Who made a change: an API key (its id, name and role) and the request it came in."""

    key_id: int | None  # None: not an API key (the CLI on the database, say)
    key_name: str
    role: str
    request_id: str | None = None

    @classmethod
    def cli(cls) -> Actor:
        """A djs command acting on the database directly: the system user and host."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        return cls(None, f"cli:{user}@{socket.gethostname()}", "cli")


@dataclass(frozen=True)
class AuditEntry:
    """One audited action. `target` is the job id or queue name it named (None for a verb by
    filter); `selection` what it was asked to act on (a filter and limit, a request body);
    `jobs` how many jobs it changed (None for a verb that changes settings)."""

    actor: Actor
    verb: str
    target: str | None = None
    selection: dict[str, Any] | None = None
    jobs: int | None = None

    def counted(self, jobs: int | None) -> AuditEntry:
        return replace(self, jobs=jobs)


def entry(
    actor: Actor | None,
    verb: str,
    target: str | int | None = None,
    selection: dict[str, Any] | None = None,
) -> AuditEntry | None:
    """The entry to write with a change, or None when the actor is None (not audited)."""
    if actor is None:
        return None
    return AuditEntry(actor, verb, None if target is None else str(target), selection)


class AuditQuery(BaseModel):
    """Query string of `GET /audit`: newest first, `cursor` the last id of the page before."""

    model_config = ConfigDict(extra="forbid")

    cursor: QueryId | None = None
    limit: QueryInt = Field(default=50, ge=1, le=500)


class AuditRow(BaseModel):
    """One entry of the audit log, as GET /audit answers it."""

    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)

    id: int
    at: datetime
    key_id: int | None
    key_name: str
    role: str
    verb: str = Field(description="retry, promote, cancel, remove, redrive, clean, pause, ...")
    target: str | None = Field(description="The job id or queue named; null for a filter.")
    filter: dict[str, Any] | None = Field(description="What the verb was asked to act on.")
    jobs: int | None = Field(description="Jobs changed; null for a change of settings.")
    request_id: str | None


class AuditPage(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)

    entries: list[AuditRow]
    next_cursor: int | None = Field(description="Pass back as `cursor` for the next page.")
