"""`@documented(...)`: what a route takes and answers, attached to the route itself.

The route table is Chalice's (`app.routes`): paths, methods and path variables come from there.
What Chalice does not know (the models a route validates with and answers with, the errors
particular to it) sits on the view function, written beside the code that does it, so the
document cannot list a route that does not exist or miss one that does."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from common.limits import BIGINT
from common.models import NAME_PATTERN, JobSubmission

View = TypeVar("View", bound=Callable[..., Any])

# The attribute a view carries its contract in; functools.wraps (api_view) copies it along.
_ATTRIBUTE = "djs_contract"

# Path variables by the name the routes give them, and the rule each one's parser keeps
# (api_app.errors.job_id, api_app.routes.queues.queue_name).
PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "raw_id": {"type": "integer", "format": "int64", "minimum": 1, "maximum": BIGINT},
    "name": {"type": "string", "pattern": NAME_PATTERN},
    "key_id": {"type": "integer", "format": "int64", "minimum": 1, "maximum": BIGINT},
    # api_app.routes.admin_site.ASSET_PATTERN
    "asset": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_.-]{0,63}$"},
}
JSON = "application/json"


@dataclass(frozen=True)
class Contract:
    """One route's part of the document; see `documented`."""

    summary: str
    ok: Mapping[int, type[BaseModel]]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: Mapping[int, str] = field(default_factory=dict)
    headers: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    uses_dependencies: bool = True
    # The media types its success answers come in (the dashboard's pages are not JSON).
    media_types: tuple[str, ...] = (JSON,)


def documented(
    summary: str,
    ok: Mapping[int, type[BaseModel]],
    *,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    errors: Mapping[int, str] | None = None,
    headers: Mapping[str, dict[str, Any]] | None = None,
    uses_dependencies: bool = True,
    media_types: tuple[str, ...] = (JSON,),
) -> Callable[[View], View]:
    """Attach a route's contract: its success statuses and their bodies, the model its JSON
    body or query string is validated with, the errors only it gives (404, 409), and request
    headers it reads. The errors every route of its shape gives (400/411/413/415/422 for a
    body, 422 for parameters, 503 when Postgres or Redis is down) are added by the document."""
    contract = Contract(
        summary, ok, body, query, errors or {}, headers or {}, uses_dependencies, media_types
    )

    def attach(view: View) -> View:
        vars(view)[_ATTRIBUTE] = contract
        return view

    return attach


def contract_of(view: Callable[..., Any]) -> Contract | None:
    found = vars(view).get(_ATTRIBUTE)
    return found if isinstance(found, Contract) else None


def _idempotency_header() -> dict[str, dict[str, Any]]:
    # The header is the body's field by another name: the field's own bounds.
    field = JobSubmission.model_json_schema()["properties"]["idempotency_key"]
    [text] = [branch for branch in field["anyOf"] if branch.get("type") == "string"]
    return {"Idempotency-Key": text}


IDEMPOTENCY_HEADER = _idempotency_header()
