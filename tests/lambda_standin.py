"""A stand-in for AWS Lambda's Invoke API on 127.0.0.1 that runs the real handlers.

`POST /2015-03-31/functions/{name}/invocations` in Lambda's wire format: the function
`{prefix}{job type}` is the Chalice app's Lambda function of that name, run through
`chalice.test.Client().lambda_.invoke` as Lambda's Python runtime would run it:
- a return value: 200, its JSON;
- an exception: 200 with `X-Amz-Function-Error: Unhandled` and the runtime's error document
  (errorMessage, errorType, requestId, stackTrace as a list of formatted frames);
- a run past the function's timeout: the same header and "Task timed out after N seconds";
- a function throttled (`throttle[name]` requests left): 429 TooManyRequestsException;
- `fail_with[name]` = (status, code): that service error;
- no such function: 404 ResourceNotFoundException.
moto cannot run Lambda code without Docker; this runs it in-process, over real HTTP, so the
boto3 request and response are the real ones.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import traceback
import urllib.parse
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chalice.app import Chalice
from chalice.test import Client

_PATH = re.compile(r"^/2015-03-31/functions/([^/?]+)/invocations$")


class LambdaStandIn:
    def __init__(self, app: Chalice, prefix: str, timeout_s: dict[str, float] | None = None):
        self.client = Client(app)
        # chalice's invoke swaps the process-wide os.environ for a copy while it runs (to set
        # the stage's variables) and puts back what it found: with invokes that overlap, or
        # that outlive a test (a timed-out one), it puts back stale copies, and the test's
        # AWS_ENDPOINT_URL_LAMBDA vanished. This app has no stage variables: nothing to set.
        self.client.lambda_._patched_env_vars = _no_variables  # type: ignore[method-assign]
        self.handlers = app.handler_map
        self.prefix = prefix
        self.timeout_s = timeout_s or {}  # by function name; else 60 s
        self.throttle: dict[str, int] = {}  # function name -> requests still throttled
        self.fail_with: dict[str, tuple[int, str]] = {}
        self.calls: list[str] = []  # function names, one per request
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, function: str, body: bytes) -> tuple[int, dict[str, str], Any]:
        """(status, headers, JSON document) for one invoke request."""
        with self._lock:
            self.calls.append(function)
            throttled = self.throttle.get(function, 0) > 0
            if throttled:
                self.throttle[function] -= 1
        name = function.removeprefix(self.prefix)
        if not function.startswith(self.prefix) or name not in self.handlers:
            arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function}"
            return _service_error(404, "ResourceNotFoundException", f"Function not found: {arn}")
        if throttled:
            return _service_error(429, "TooManyRequestsException", "Rate Exceeded.")
        if function in self.fail_with:
            status, code = self.fail_with[function]
            return _service_error(status, code, f"{code} from the stand-in")
        return self._run(function, name, json.loads(body))

    def _run(self, function: str, name: str, event: Any) -> tuple[int, dict[str, str], Any]:
        outcome: list[Any] = []

        def call() -> None:
            try:
                outcome.append(("ok", self.client.lambda_.invoke(name, event).payload))
            except Exception as exc:
                outcome.append(("error", exc))

        thread = threading.Thread(target=call, daemon=True)
        thread.start()
        timeout_s = self.timeout_s.get(function, 60.0)
        thread.join(timeout_s)
        if not outcome:  # Lambda ends the run; here the thread is left to finish alone
            request_id = uuid.uuid4()
            message = f"{request_id} Task timed out after {timeout_s:.2f} seconds"
            return 200, {"X-Amz-Function-Error": "Unhandled"}, {"errorMessage": message}
        kind, value = outcome[0]
        if kind == "error":
            return 200, {"X-Amz-Function-Error": "Unhandled"}, _runtime_error(value)
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            marshal = {"errorType": "Runtime.MarshalError", "errorMessage": str(exc)}
            return 200, {"X-Amz-Function-Error": "Unhandled"}, marshal
        return 200, {}, value


@contextlib.contextmanager
def _no_variables(variables: dict[str, str]) -> Iterator[None]:
    assert not variables, "the stand-in runs apps without stage environment variables"
    yield


def _runtime_error(exc: BaseException) -> dict[str, Any]:
    """The error document of Lambda's Python runtime (awslambdaric's build_fault_result)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": str(uuid.uuid4()),
        "stackTrace": traceback.format_list(frames),
    }


def _service_error(status: int, code: str, message: str) -> tuple[int, dict[str, str], Any]:
    return status, {"X-Amzn-ErrorType": code}, {"Type": "User", "message": message}


def _handler_for(standin: LambdaStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            match = _PATH.match(urllib.parse.urlsplit(self.path).path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if match is None:
                status, headers, doc = _service_error(400, "InvalidRequest", self.path)
            else:
                function = urllib.parse.unquote(match.group(1))
                status, headers, doc = standin.answer(function, body)
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Amzn-RequestId", str(uuid.uuid4()))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
