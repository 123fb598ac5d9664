"""What the key routes take and answer (GET /me, /keys), for the routes and the document."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from common.apikeys import KEY_NAME_PATTERN, MAX_RATE_PER_S
from common.models import Float

Role = Literal["submitter", "viewer", "operator", "admin", "metrics"]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)


class KeyRequest(_Closed):
    """The body of POST /keys."""

    name: str = Field(pattern=KEY_NAME_PATTERN, description="Unique; shown in the audit log.")
    role: Role
    # Strict: `true` is not a rate (found by schemathesis; pydantic's lax float takes it).
    rate_per_s: Float | None = Field(
        default=None,
        gt=0,
        le=MAX_RATE_PER_S,
        description="This key's rate limit; null: its role's.",
    )


class KeyOut(_Closed):
    """A key as listed: never its secret nor its hash."""

    id: int
    name: str
    role: Role
    prefix: str = Field(description="The 8 characters after `djs_`, to tell keys apart.")
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(description="Recorded within about 30 s.")
    rate_per_s: float | None


class CreatedKey(KeyOut):
    key: str = Field(description="The key itself: shown this once, never stored.")


class KeyList(_Closed):
    keys: list[KeyOut]


class Me(_Closed):
    name: str
    role: Role
