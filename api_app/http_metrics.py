"""HTTP middleware: count every answered request by method, route and status.

The route is Chalice's path template (`/jobs/{raw_id}`), never the raw path, so the label
set is as small as the route table. A counter increment per request, nothing more: no
Postgres or Redis. Refusals answered before the app (an unknown route, a bad key) are
counted by the WSGI front (api_app/wsgi.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalice.app import Response

from common import metrics


def count_requests(request: Any, get_response: Callable[[Any], Response]) -> Response:
    response = get_response(request)
    route = (request.context or {}).get("resourcePath") or "unmatched"
    metrics.HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
    return response
