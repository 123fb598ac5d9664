"""Calls an unpacked Lambda zip the way Lambda and API Gateway do, from a bare interpreter.

tests/test_package.py runs this file's text as `python3.12 -I -S -c TEXT UNPACKED STEPS`:
no site-packages, no environment-derived paths; sys.path is the unpacked zip (as /var/task
is on Lambda) plus the standard library. STEPS is a JSON list; each step's answer is printed
as one line, MARK then JSON (whatever else the app prints is not an answer). This file
imports nothing from the project: only what the zip holds.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from typing import Any

API_ID = "abcdef1234"
STAGE = "api"
ACCOUNT = "123456789012"
MARK = "djs-step-answer "


class LambdaContext:
    """The fields of Lambda's context object that Chalice and handlers read."""

    def __init__(self, function_name: str, timeout_s: float = 30.0) -> None:
        self.function_name = function_name
        self.aws_request_id = f"req-{time.monotonic_ns()}"
        self.memory_limit_in_mb = 512
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def method_arn(method: str, path: str) -> str:
    return f"arn:aws:execute-api:us-east-1:{ACCOUNT}:{API_ID}/{STAGE}/{method}{path}"


def proxy_event(step: dict[str, Any]) -> dict[str, Any]:
    """An API Gateway (REST, Lambda proxy) event; the authorizer's context values arrive
    as strings, as API Gateway passes them."""
    resource = step.get("resource", step["path"])
    request_context: dict[str, Any] = {
        "resourcePath": resource,
        "httpMethod": step["method"],
        "path": f"/{STAGE}{step['path']}",
        "stage": STAGE,
        "requestId": f"gw-{time.monotonic_ns()}",
        "accountId": ACCOUNT,
        "apiId": API_ID,
        "identity": {"sourceIp": "203.0.113.9", "userAgent": "smoke"},
    }
    if step.get("authorizer") is not None:
        request_context["authorizer"] = {k: _string(v) for k, v in step["authorizer"].items()}
    headers = step.get("headers", {})
    body = step.get("body")
    return {
        "resource": resource,
        "path": step["path"],
        "httpMethod": step["method"],
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": step.get("path_parameters"),
        "stageVariables": None,
        "requestContext": request_context,
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


def _string(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def handler(spec: str) -> Any:
    """`module.function`, as a SAM template's Handler names it."""
    module, _, name = spec.rpartition(".")
    return getattr(importlib.import_module(module), name)


def run_step(step: dict[str, Any]) -> Any:
    kind = step["kind"]
    if kind == "http":  # the API's function, called by API Gateway
        return handler("app.app")(proxy_event(step), LambdaContext("APIHandler"))
    if kind == "authorize":  # the authorizer's function, a TOKEN authorizer
        event = {
            "type": "TOKEN",
            "authorizationToken": step["token"],
            "methodArn": method_arn(step["method"], step["path"]),
        }
        try:
            return handler(step["handler"])(event, LambdaContext("DjsKey"))
        except Exception as exc:  # API Gateway answers 401 for one that says "Unauthorized"
            return {"raised": type(exc).__name__, "message": str(exc)}
    if kind == "invoke":  # a worker function, called with the event a runner passes
        return handler(step["handler"])(step["event"], LambdaContext(step["handler"]))
    if kind == "burst":  # the zip's own runner, until nothing is left to run
        return burst(step["handlers"])
    if kind == "environment":
        return {"path": sys.path, "modules": sorted(sys.modules)}
    raise ValueError(f"unknown step {kind!r}")


def burst(handlers_module: str) -> dict[str, Any]:
    importlib.import_module(handlers_module)  # its handlers register themselves
    from common.services import Services
    from common.settings import Settings
    from worker_app.registry import registry

    services = Services.connect(Settings())
    try:
        runner = services.runner(
            registry, upkeep=[], listen=False, burst=True, poll_interval_s=0.05, concurrency=2
        )
        runner.run()
    finally:
        services.close()
    return {"types": registry.types()}


def main() -> None:
    sys.path.insert(0, sys.argv[1])
    for step in json.loads(sys.argv[2]):
        print(MARK + json.dumps(run_step(step), default=str), flush=True)


if __name__ == "__main__":
    main()
