"""The Chalice custom authorizer that guards every route but the public ones.

The same function runs behind API Gateway (a Lambda authorizer), under `chalice local`,
`chalice.test.Client` and `djs api` (whose WSGI front goes through chalice.local's
LocalGateway, which runs authorizers). It verifies the bearer key (api_app/auth/verifier.py)
and answers a policy allowing every route the key's role may call (api_app/auth/roles.py),
so API Gateway may cache it per key for all routes; the context carries the key's identity
to the routes (api_app/auth/identity.py).
"""

from __future__ import annotations

import re
from typing import Any

from chalice.app import AuthRequest, Chalice, ChaliceAuthorizer

from api_app.auth.refusal import Unauthorized, Unavailable
from api_app.auth.roles import MINIMUM_ROLE, PUBLIC, allowed, check_roles_known
from api_app.auth.verifier import Identity, KeyVerifier
from common.errors import DependencyDown

# API Gateway may cache a policy for this long; with the verifier's own cache (at most 30 s)
# a revoked key is refused within 55 s.
GATEWAY_TTL_S = 25
_BEARER = re.compile(r"^[Bb]earer +(\S+)\s*$")
_PATH_VARIABLE = re.compile(r"\{[^}]+\}")


class UnguardedRoute(Exception):
    """A route neither public nor in roles.MINIMUM_ROLE."""


def install_authorizer(app: Chalice, verifier: KeyVerifier) -> None:
    """Register the authorizer and put it on every route that is not public."""
    check_roles_known()
    policies = _Policies()

    @app.authorizer(ttl_seconds=GATEWAY_TTL_S, name="djs_key")
    def djs_key(auth_request: AuthRequest) -> dict[str, Any]:
        found = _BEARER.match(auth_request.token or "")
        if found is None:
            raise Unauthorized("send Authorization: Bearer <key>")
        try:
            identity = verifier.verify(found.group(1))
        except DependencyDown as exc:
            raise Unavailable() from exc
        if identity is None:
            raise Unauthorized("the key is not valid (malformed, unknown or revoked)")
        return {
            "principalId": identity.name,
            "policyDocument": policies.of(identity.role, auth_request.method_arn),
            "context": _context(identity),
        }

    for path, methods in app.routes.items():
        for method, entry in methods.items():
            if (method, path) in PUBLIC:
                continue
            if (method, path) not in MINIMUM_ROLE:
                raise UnguardedRoute(f"{method} {path}: add it to api_app/auth/roles.py")
            entry.authorizer = djs_key


def lambda_authorizer(app: Chalice) -> ChaliceAuthorizer:
    """The authorizer as a function of the app's module: on AWS its own Lambda function is
    called by the handler string Chalice gave it, `app.djs_key`, so api_app/app.py must
    have it as `djs_key` (found on the routes it guards: install_authorizer defines it)."""
    for methods in app.routes.values():
        for entry in methods.values():
            if isinstance(entry.authorizer, ChaliceAuthorizer):
                return entry.authorizer
    raise UnguardedRoute("no route has the authorizer: install_authorizer was not called")


def _context(identity: Identity) -> dict[str, Any]:
    # API Gateway passes context values as strings, numbers or booleans: no None.
    rate = identity.rate_per_s
    return {
        "key_id": identity.key_id,
        "name": identity.name,
        "role": identity.role,
        "rate_per_s": "" if rate is None else rate,
    }


class _Policies:
    """One policy document per (API stage, role), built once: the allowed routes as ARNs."""

    def __init__(self) -> None:
        self._built: dict[tuple[str, str], dict[str, Any]] = {}

    def of(self, role: str, method_arn: str) -> dict[str, Any]:
        # arn:aws:execute-api:REGION:ACCOUNT:API_ID/STAGE/METHOD/PATH
        stage = "/".join(method_arn.split("/", 2)[:2]) + "/"
        policy = self._built.get((stage, role))
        if policy is None:
            policy = self._built[(stage, role)] = _policy(stage, role)
        return policy


def _policy(stage: str, role: str) -> dict[str, Any]:
    routes = allowed(role)
    if len(routes) == len(MINIMUM_ROLE):
        resources = [f"{stage}*"]
    else:
        resources = [f"{stage}{m}/{_PATH_VARIABLE.sub('*', p[1:])}" for m, p in routes]
    statement = {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": resources}
    return {"Version": "2012-10-17", "Statement": [statement]}
