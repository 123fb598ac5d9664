"""The least role each route needs: the one table access control is decided from.

Every route of the app is either public or listed here; `install_authorizer` refuses an app
with a route in neither, so a new route cannot ship unguarded or undecided.
"""

from __future__ import annotations

from common.apikeys import ROLES, at_least

# Answer without a key: the load balancer's probe, the API's own description, and the
# dashboard's page and files (which hold no data: the page reads the API with a key).
PUBLIC: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/openapi.json"),
        ("GET", "/admin/queues"),
        ("GET", "/admin/queues/assets/{asset}"),
    }
)

# (method, Chalice path) -> the least role that may call it. Roles are ordered (ROLES):
# each may do what the ones below it may. The most frequent calls come first: the policy
# lists them in this order and API Gateway (and chalice.local) match it in order.
MINIMUM_ROLE: dict[tuple[str, str], str] = {
    ("POST", "/jobs"): "submitter",
    ("POST", "/jobs/batch"): "submitter",
    ("GET", "/jobs/{raw_id}"): "submitter",  # a submitter's own jobs only (404 otherwise)
    ("GET", "/jobs"): "submitter",
    ("GET", "/queues"): "submitter",  # a submitter counts its own jobs only
    ("GET", "/me"): "submitter",
    ("GET", "/workers"): "viewer",  # worker names are viewer information (SEES_EVERYTHING)
    ("GET", "/stats"): "viewer",
    ("POST", "/jobs/{raw_id}/retry"): "operator",
    ("POST", "/jobs/{raw_id}/promote"): "operator",
    ("POST", "/jobs/{raw_id}/cancel"): "operator",
    ("POST", "/jobs/retry"): "operator",
    ("POST", "/jobs/promote"): "operator",
    ("POST", "/jobs/cancel"): "operator",
    ("POST", "/jobs/redrive"): "operator",
    ("POST", "/queues/{name}/pause"): "operator",
    ("POST", "/queues/{name}/resume"): "operator",
    ("DELETE", "/jobs/{raw_id}"): "admin",
    ("POST", "/jobs/remove"): "admin",
    ("PUT", "/queues/{name}/settings"): "admin",
    # The URL may carry the receiver's token: admins only, to read it too.
    ("GET", "/queues/{name}/alerts"): "admin",
    ("PUT", "/queues/{name}/alerts"): "admin",
    ("DELETE", "/queues/{name}/alerts"): "admin",
    ("POST", "/queues/{name}/clean"): "admin",
    ("POST", "/keys"): "admin",
    ("GET", "/keys"): "admin",
    ("DELETE", "/keys/{key_id}"): "admin",
    ("GET", "/audit"): "admin",
    # A scrape key's one route (and admin's: admin may call every route).
    ("GET", "/metrics"): "metrics",
}

# The least role that reads every job, with tracebacks and worker names; below it (a
# submitter) a key reads only the jobs it submitted, without those.
SEES_EVERYTHING = "viewer"


def allowed(role: str) -> list[tuple[str, str]]:
    """The routes a role may call, in MINIMUM_ROLE's order."""
    return [route for route, least in MINIMUM_ROLE.items() if at_least(role, least)]


def check_roles_known() -> None:
    unknown = {least for least in MINIMUM_ROLE.values()} - set(ROLES)
    if unknown:
        raise ValueError(f"roles.MINIMUM_ROLE names unknown roles: {sorted(unknown)}")
