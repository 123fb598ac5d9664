"""GET /openapi.json: the API's OpenAPI 3.1 document, built from the app's own routes."""

from __future__ import annotations

import functools
from typing import Any

from chalice.app import Blueprint, Chalice

from api_app.contract.bodies import OpenApiDocument
from api_app.contract.document import openapi_document
from api_app.contract.meta import documented
from api_app.errors import json_response


def docs_routes(app: Chalice) -> Blueprint:
    """The document is built on the first request, once every blueprint is registered, and
    kept: it reads no database, so it answers while Postgres and Redis are down."""
    bp = Blueprint(__name__)
    built = functools.cache(lambda: openapi_document(app))

    @bp.route("/openapi.json", methods=["GET"])
    @documented("This document", {200: OpenApiDocument}, uses_dependencies=False)
    def openapi() -> Any:
        return json_response(built())

    return bp
