"""Map every error to one JSON shape, {"error": {"code", "message", "details"}}, in one place."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from chalice.app import Response
from pydantic import ValidationError

from common import fastjson
from common.errors import Conflict, DependencyDown, DjsError, InvalidInput, NotFound
from common.limits import BIGINT

log = logging.getLogger("djs.api")

# Chalice answers an unknown content type with its own 415 body; routes accept every type and
# json_body checks it.
ANY_TYPE = ["*/*"]


class MalformedJson(DjsError):
    code = "malformed_json"


class UnsupportedMediaType(DjsError):
    code = "unsupported_media_type"


_STATUS: dict[type[DjsError], int] = {
    MalformedJson: 400,
    NotFound: 404,
    Conflict: 409,
    UnsupportedMediaType: 415,
    InvalidInput: 422,
    DependencyDown: 503,
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    all_headers: dict[str, str | list[str]] = {
        "Content-Type": "application/json",
        **(headers or {}),
    }
    # Serialized here with orjson: Chalice would use the json module's Python encoder.
    text = body if isinstance(body, str) else fastjson.dumps_answer(body)
    return Response(body=text, status_code=status, headers=all_headers)


def _validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"path": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]


# Seconds a client should wait before trying again when a dependency is down.
RETRY_AFTER_S = 2


def error_response(exc: Exception) -> Response:
    if isinstance(exc, ValidationError):
        exc = InvalidInput("the request is not valid", _validation_details(exc))
    if isinstance(exc, DjsError):
        status = next(s for cls, s in _STATUS.items() if isinstance(exc, cls))
        headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
        return json_response(error_body(exc.code, exc.message, exc.details), status, headers)
    # Never a stack trace in the body: it goes to the log.
    log.exception("unhandled error")
    return json_response(error_body("internal_error", "an internal error occurred"), 500)


def api_view(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a route so every error it raises becomes the JSON error body."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            return error_response(exc)

    return wrapper


def json_body(request: Any) -> Any:
    """The request body as JSON: 415 for another media type, 400 when it does not parse."""
    content_type = (request.headers.get("content-type") or "application/json").lower()
    if content_type.split(";")[0].strip() != "application/json":
        raise UnsupportedMediaType(
            f"expected content-type application/json, got {content_type}",
            {"content_type": content_type},
        )
    raw = request.raw_body or b""
    try:
        return fastjson.loads(raw)
    except ValueError:
        pass  # orjson refuses what the json module reads (NaN, a lone surrogate): the
        # bounds then refuse it with a 422 that names the field, as for any other value
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise MalformedJson(f"the body is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # nesting deeper than the parser's stack
        raise MalformedJson("the body nests too deeply to parse") from exc


def job_id(raw: str) -> int:
    """A path id; anything but an integer from 1 to 2^63 - 1 is a 422 naming the field."""
    # The length first: int() of thousands of digits is slow, and refused beyond 4,300.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or not 1 <= int(raw) <= BIGINT:
        raise InvalidInput(
            f"id must be an integer from 1 to {BIGINT}", [{"path": "id", "message": raw[:40]}]
        )
    return int(raw)


def chalice_errors_in_our_shape(request: Any, get_response: Callable[[Any], Response]) -> Response:
    """HTTP middleware: the errors Chalice answers itself (405 for a method a route lacks, its
    own 400 and 500) get djs's error shape too."""
    response = get_response(request)
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and "Code" in body:
        words = re.findall(r"[A-Z][a-z]+", str(body["Code"]).removesuffix("Error"))
        code = "_".join(w.lower() for w in words) or "error"
        response.body = error_body(code, str(body.get("Message", "")))
        response.headers["Content-Type"] = "application/json"
    return response
