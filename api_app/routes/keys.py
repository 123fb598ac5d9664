"""GET /me, and the admin routes for API keys: create (the key is answered once), list,
revoke."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint

from api_app.actor import actor
from api_app.auth.bodies import CreatedKey, KeyList, KeyOut, KeyRequest, Me
from api_app.auth.identity import caller
from api_app.auth.verifier import KeyVerifier
from api_app.contract.meta import documented
from api_app.errors import ANY_TYPE, api_view, job_id, json_body, json_response
from common.audit import AuditEntry
from common.errors import Conflict
from common.services import Services
from common.store.keys import create_key, list_keys, revoke_key

# What each route takes and answers, for GET /openapi.json (api_app/contract).
_ME = documented("The calling key's name and role", {200: Me}, uses_dependencies=False)
_CREATE = documented(
    "Create a key (answered once)",
    {201: CreatedKey},
    body=KeyRequest,
    errors={409: "A key has this name."},
)
_LIST = documented("Every key (never a secret)", {200: KeyList})
_REVOKE = documented(
    "Revoke a key",
    {200: KeyOut},
    errors={404: "No key has this id.", 409: "The key is the caller's own."},
)


def key_routes(services: Services, verifier: KeyVerifier) -> Blueprint:
    bp = Blueprint(__name__)
    store = services.store

    @bp.route("/me", methods=["GET"])
    @_ME
    @api_view
    def me() -> Any:
        found = caller(bp.current_request)
        return json_response({"name": found.name, "role": found.role})

    @bp.route("/keys", methods=["POST"], content_types=ANY_TYPE)
    @_CREATE
    @api_view
    def post_key() -> Any:
        asked = KeyRequest.model_validate(json_body(bp.current_request))
        with store.connection() as conn:
            audit = _audit(bp.current_request, "key_create", asked)
            row, key = create_key(
                conn, verifier.pepper, asked.name, asked.role, asked.rate_per_s, audit
            )
        return json_response({**KeyOut(**row).model_dump(mode="json"), "key": key}, 201)

    @bp.route("/keys", methods=["GET"])
    @_LIST
    @api_view
    def get_keys() -> Any:
        with store.connection() as conn:
            rows = list_keys(conn)
        return json_response({"keys": [KeyOut(**r).model_dump(mode="json") for r in rows]})

    @bp.route("/keys/{key_id}", methods=["DELETE"])
    @_REVOKE
    @api_view
    def delete_key(key_id: str) -> Any:
        ident = job_id(key_id)
        if ident == caller(bp.current_request).key_id:  # never lock the last admin out
            raise Conflict("a key cannot revoke itself; revoke it with another admin key")
        with store.connection() as conn:
            row = revoke_key(conn, ident, _audit(bp.current_request, "key_revoke"))
        verifier.forget(row["id"])  # here at once; other processes within their cache's TTL
        return json_response(KeyOut(**row).model_dump(mode="json"))

    return bp


def _audit(request: Any, verb: str, asked: KeyRequest | None = None) -> AuditEntry:
    # The key's name and role, never its secret (which does not exist yet when created).
    selection = asked.model_dump(mode="json") if asked is not None else None
    return AuditEntry(actor(request), verb, selection=selection)
