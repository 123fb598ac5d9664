"""Build the OpenAPI 3.1 document from the Chalice app's routes and their `@documented` parts.

Schemas are the pydantic models' own (`models_json_schema`), with their `$defs` as
components/schemas: the document says what the models check, because it is made from them."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from chalice.app import Chalice, RouteEntry
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from api_app.auth.roles import MINIMUM_ROLE, PUBLIC
from api_app.contract.bodies import ErrorBody
from api_app.contract.meta import PATH_PARAMETERS, Contract, contract_of

REF = "#/components/schemas/{model}"
JSON = "application/json"
# Keyed by (model, mode): a model is documented as validated (a body) or as serialised.
Refs = dict[tuple[Any, JsonSchemaMode], dict[str, Any]]

# What every route of a shape can answer besides its own errors.
_BODY_ERRORS = {
    400: "The body is not valid JSON.",
    411: "The body was sent chunked (Transfer-Encoding); send a Content-Length.",
    413: "The body is over the server's limit (1 MiB by default).",
    415: "The body is not application/json.",
    422: "The request is not valid; `details` names each field.",
}
_PARAMETER_ERROR = {422: "A parameter is not valid; `details` names it."}
_DEPENDENCY_ERROR = {503: "Postgres or Redis is down; try again after Retry-After seconds."}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}}


class UndocumentedRoute(Exception):
    """A route without `@documented`: the document would be incomplete."""


def openapi_document(app: Chalice, title: str = "djs", version: str = "0.1.0") -> dict[str, Any]:
    routes = [
        (path, method.upper(), entry, _contract(path, method, entry))
        for path, methods in app.routes.items()
        for method, entry in methods.items()
    ]
    refs, components = _schemas(routes)
    paths: dict[str, dict[str, Any]] = {}
    for path, method, entry, contract in routes:
        operation = _operation(entry, contract, refs)
        paths.setdefault(path, {})[method.lower()] = _secured(operation, method, path, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": "The djs HTTP API."},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": _SECURITY_SCHEMES},
    }


_SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "An API key: djs_..._..."}
}
_CHALLENGE = {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer."}}
_AUTH_ERRORS = {
    401: "No key, or a key that is malformed, unknown or revoked (WWW-Authenticate: Bearer).",
    403: "The key's role may not call this route.",
    429: "The key's rate limit is spent; try again after Retry-After seconds.",
}
# Redis down: the rate limit fails closed for every role but admin (api_app/ratelimit.py).
_AUTH_HEADERS = {401: _CHALLENGE, 429: _RETRY_AFTER}


def _secured(operation: dict[str, Any], method: str, path: str, refs: Refs) -> dict[str, Any]:
    """A route that needs a key says so, with the least role that may call it (x-djs-role)."""
    if (method, path) in PUBLIC:
        return {**operation, "security": []}
    error_schema = refs[(ErrorBody, "serialization")]
    answers = dict(operation["responses"])
    for status, description in _AUTH_ERRORS.items():
        headers = _AUTH_HEADERS.get(status)
        answers.setdefault(str(status), _response(description, error_schema, headers))
    answers.setdefault("503", _response(_DEPENDENCY_ERROR[503], error_schema, _RETRY_AFTER))
    ordered = dict(sorted(answers.items()))
    role = MINIMUM_ROLE.get((method, path))
    extra = {"x-djs-role": role} if role else {}
    return {**operation, "security": [{"bearer": []}], **extra, "responses": ordered}


def _contract(path: str, method: str, entry: RouteEntry) -> Contract:
    contract = contract_of(entry.view_function)
    if contract is None:
        raise UndocumentedRoute(f"{method} {path} ({entry.view_name}) has no @documented")
    return contract


def _schemas(routes: list[tuple[str, str, RouteEntry, Contract]]) -> tuple[Refs, dict[str, Any]]:
    """Every model the routes name, in the mode it is used in: bodies as validated, answers
    as serialised. Returns the schema (a $ref) for each and the components they refer to."""
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorBody, "serialization")]
    for *_, contract in routes:
        if contract.body is not None:
            wanted.append((contract.body, "validation"))
        wanted.extend((model, "serialization") for model in contract.ok.values())
    unique = list(dict.fromkeys(wanted))
    refs, top = models_json_schema(unique, ref_template=REF)
    return dict(refs), dict(top.get("$defs", {}))


def _operation(entry: RouteEntry, contract: Contract, refs: Refs) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": entry.view_name,
        "summary": contract.summary,
        "tags": [entry.view_function.__module__.rsplit(".", 1)[-1]],
        "parameters": _parameters(entry, contract),
        "responses": _responses(entry, contract, refs),
    }
    if contract.body is not None:
        schema = refs[(contract.body, "validation")]
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": schema}}}
    return operation


def _parameters(entry: RouteEntry, contract: Contract) -> list[dict[str, Any]]:
    found = [
        {"name": name, "in": "path", "required": True, "schema": PATH_PARAMETERS[name]}
        for name in entry.view_args
    ]
    found += [
        {"name": name, "in": "header", "required": False, "schema": schema}
        for name, schema in contract.headers.items()
    ]
    if contract.query is not None:
        found += _query_parameters(contract.query)
    return found


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(mode="validation", ref_template=REF)
    if "$defs" in schema:  # a query string holds plain values; a nested model cannot be sent
        raise ValueError(f"{model.__name__}: a query model's fields must be plain values")
    required = set(schema.get("required", []))
    found = []
    for name, field in schema["properties"].items():
        value = _not_null(field)
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": value,
        }
        if value.get("type") == "array":  # ids=1,2,3, as the list route splits it
            parameter |= {"style": "form", "explode": False}
        found.append(parameter)
    return found


def _not_null(field: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without its `null` branch: absent is how None is sent."""
    branches = [b for b in field.get("anyOf", []) if b.get("type") != "null"]
    if len(branches) != 1:
        return field
    extra = {k: v for k, v in field.items() if k not in ("anyOf", "title", "default")}
    return {**branches[0], **extra}


def _responses(entry: RouteEntry, contract: Contract, refs: Refs) -> dict[str, Any]:
    answers: dict[str, Any] = {
        str(status): _response(
            HTTPStatus(status).phrase, refs[(model, "serialization")], None, contract.media_types
        )
        for status, model in contract.ok.items()
    }
    errors: dict[int, str] = {}
    if contract.body is not None:
        errors |= _BODY_ERRORS
    if entry.view_args or contract.query is not None or contract.headers:
        errors |= _PARAMETER_ERROR
    if contract.uses_dependencies:
        errors |= _DEPENDENCY_ERROR
    errors |= contract.errors
    error_schema = refs[(ErrorBody, "serialization")]
    for status, description in sorted(errors.items()):
        headers = _RETRY_AFTER if status == 503 else None
        answers[str(status)] = _response(description, error_schema, headers)
    return answers


def _response(
    description: str,
    schema: dict[str, Any],
    headers: dict[str, Any] | None = None,
    media_types: tuple[str, ...] = (JSON,),
) -> dict[str, Any]:
    content = {media: {"schema": schema} for media in media_types}
    answer: dict[str, Any] = {"description": description, "content": content}
    if headers:
        answer["headers"] = headers
    return answer
