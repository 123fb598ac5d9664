"""`djs api`: the API's WSGI application (api_app/wsgi.py) on granian, a maintained HTTP server.

granian parses HTTP in Rust (hyper) and calls the application on a pool of Python threads
(`threads` per process), so Python pays for requests, not for parsing. What each duty of a
front rests on:

- framing: hyper answers a malformed request line or header, two Content-Lengths, a length
  that is not a number, a transfer coding other than chunked (400) and over-long headers
  (431), and closes the connection. These few answers are hyper's own, with an empty body;
  every answer of the application is JSON. A body the application does not read (or that
  breaks off) closes the connection too, so no body is ever read as the next request;
- chunked bodies: hyper decodes them but hides a broken one, so the application refuses any
  body sent with a Transfer-Encoding (411) unread; with Content-Length too, hyper ignores the
  length, as RFC 9112 says;
- slow and idle clients: `header_timeout_s` bounds the wait for a request's headers, counted
  from when the connection opened or its last response was sent: hyper's header read timeout
  is also its idle keep-alive timeout. HTTP/1.1 only: with h2c detection on, a connection
  that never sends a byte was never timed out. A slow *body* is not timed out (granian has no
  body timeout, emmett-framework/granian#728): it holds one of the process's threads until
  it ends or its client leaves;
- large bodies: the application refuses one over `max_body_bytes` (413) before reading it.

    python -m djs_cli.http_front --port 8000 --processes 2
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from common.logs import JSON, configure_for
from common.settings import Settings

APPLICATION = "api_app.wsgi:application"
_GRANIAN_LOGGING: dict[str, Any] = {
    "loggers": {
        "_granian": {"handlers": [], "propagate": True},
        "granian.access": {"handlers": [], "propagate": True},
    }
}
MIB = 1024 * 1024
# prometheus_client reads it when first imported: in each server process, after it is set.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class FrontOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    # Processes on the port (granian workers); Python runs one request at a time per process.
    processes: int = 1
    # Requests in progress per process at most. A request waiting on the group commit of
    # POST /jobs holds its thread, so the batches can be no larger than this.
    threads: int = 32
    max_body_bytes: int = MIB
    header_timeout_s: float = 30.0
    backlog: int = 1024
    access_log: bool = False
    # The WSGI application to serve, as MODULE:NAME.
    application: str = APPLICATION


def worker_environment(settings: Settings, options: FrontOptions) -> dict[str, str]:
    """The environment variables that rebuild `settings` in a worker process: each worker
    imports api_app.wsgi, which reads Settings from the environment, as app.py does."""
    env: dict[str, str] = {}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        value = getattr(settings, name)
        if value is None:  # unset stays unset (str(None) would read as the text "None")
            continue
        if isinstance(value, SecretStr):  # str() of a secret is its mask, not its value
            value = value.get_secret_value()
        env[alias if isinstance(alias, str) else f"DJS_{name.upper()}"] = str(value)
    env["DJS_HTTP_MAX_BODY_BYTES"] = str(options.max_body_bytes)
    env["DJS_HTTP_ACCESS_LOG"] = "1" if options.access_log else "0"
    env["DJS_LOG_FORMAT"] = settings.log_format or JSON  # the API logs JSON unless told
    return env


def load_application(target: str) -> Callable[..., Any]:
    """Import the application in a worker process; then keep what start-up allocated out of
    the garbage collector's sight, as the other long-running djs processes do."""
    import importlib

    from djs_cli.gc_tuning import settle_gc

    configure_for(Settings())  # what the parent chose, passed in the environment
    _stop_with_parent()
    from common.metrics import after_fork

    after_fork()  # granian forked this process after PROMETHEUS_MULTIPROC_DIR was set
    module, _, name = target.partition(":")
    application: Callable[..., Any] = getattr(importlib.import_module(module), name)
    settle_gc()
    return application


def run_alerts() -> None:
    """The alert loop (common/upkeep/alerts.py) of `djs api`, so that "jobs but no runners"
    is told even when no runner is up. In a process of its own, started with `spawn`: a
    thread of the granian parent would hold Postgres connections across granian's fork of
    its workers. It reads Settings from the environment, as the workers do."""
    import signal
    import threading

    from common.services import Services
    from common.upkeep.alerts import AlertLoop, run_in_thread

    settings = Settings()
    configure_for(settings)  # as the API's own processes log (the parent set the format)
    _stop_with_parent()
    services = Services.connect(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    loop = AlertLoop(services.store, settings.alert_allowed(), settings.alert_interval_s)
    run_in_thread(loop, stop).join()


def _start_alerts() -> Any:
    import multiprocessing

    process = multiprocessing.get_context("spawn").Process(
        target=run_alerts, name="djs-alerts", daemon=True
    )
    process.start()
    return process


def _stop_with_parent() -> None:
    """Have the kernel stop this worker (SIGTERM: gracefully) when its granian parent dies.
    A parent killed with SIGKILL cannot stop its workers, and they would go on serving the
    port (SO_REUSEPORT) beside the next `djs api`. Linux only (prctl PR_SET_PDEATHSIG)."""
    import ctypes
    import multiprocessing
    import signal

    parent = multiprocessing.parent_process()
    if parent is None or not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent.pid:  # it died before the prctl
        os.kill(os.getpid(), signal.SIGTERM)


def serve(settings: Settings, options: FrontOptions) -> int:
    """Serve the API until SIGINT or SIGTERM; granian stops its workers gracefully."""
    os.environ.update(worker_environment(settings, options))
    made = _metrics_dir()
    try:
        return _serve(settings, options)
    finally:
        if made:
            shutil.rmtree(made, ignore_errors=True)


def _metrics_dir() -> str | None:
    """The processes' shared metrics directory (prometheus_client's multiprocess mode), set
    before they start so that GET /metrics on any of them reports them all; return it if made
    here (it is removed when the server stops). One the operator set is used and kept."""
    if os.environ.get(MULTIPROC_ENV):
        return None
    made = tempfile.mkdtemp(prefix="djs-metrics-")
    os.environ[MULTIPROC_ENV] = made
    return made


def _serve(settings: Settings, options: FrontOptions) -> int:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings

    server = Granian(
        options.application,
        address=options.host,
        port=options.port,
        interface=Interfaces.WSGI,
        workers=options.processes,
        blocking_threads=options.threads,
        backpressure=options.threads,
        backlog=options.backlog,
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(
            header_read_timeout=max(1, round(options.header_timeout_s * 1000)),
            keep_alive=True,
        ),
        websockets=False,
        # The application logs each request itself (api_app/wsgi.py): with its route and
        # key id, as JSON; granian's own access log knows neither.
        log_access=False,
        # granian's loggers write text to stdout by default: theirs go to the root logger
        # instead, formatted as every other line (common/logs.py).
        log_dictconfig=_GRANIAN_LOGGING,
        # A worker that will not stop (a request stuck on a dead dependency) is killed.
        workers_kill_timeout=30,
    )
    # granian warns when a process may run more Python threads than 2 x cores + 1; ours
    # mostly wait on Postgres and Redis, and the group commit needs them waiting together.
    logging.getLogger("_granian").addFilter(_NotTheThreadsWarning())
    configure_for(settings)  # granian's dictConfig closed the handlers installed before
    server.on_startup(
        lambda: print(f"djs api listening on http://{options.host}:{options.port}", flush=True)
    )
    alerts = _start_alerts()
    try:
        server.serve(target_loader=load_application)
    except RuntimeError as exc:  # granian says why it cannot listen in a RuntimeError
        raise _os_error(exc) or exc from None
    finally:
        alerts.terminate()
        alerts.join(5)
    return 0


def _os_error(exc: RuntimeError) -> OSError | None:
    """`Address already in use (os error 98)` as the OSError it was."""
    found = re.search(r"\(os error (\d+)\)", str(exc))
    return OSError(int(found[1]), os.strerror(int(found[1]))) if found else None


class _NotTheThreadsWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Python threads" not in record.getMessage()


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _timeout_s(text: str) -> float:
    value = float(text)
    if not 0.001 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be from 0.001 to 3600 seconds, not {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `djs api` (and of `python -m djs_cli.http_front`)."""
    d = FrontOptions()
    parser.add_argument("--host", default=d.host)
    parser.add_argument("--port", type=int, default=d.port)
    parser.add_argument(
        "--processes", type=_at_least_one, default=d.processes, help="server processes on the port"
    )
    parser.add_argument(
        "--threads",
        type=_at_least_one,
        default=d.threads,
        help=f"requests in progress per process (default: {d.threads})",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=_at_least_one,
        default=d.max_body_bytes,
        help="larger request bodies are refused with 413 (default: 1 MiB)",
    )
    parser.add_argument(
        "--header-timeout-s",
        type=_timeout_s,
        default=d.header_timeout_s,
        help="a client has this long to send a request's headers, from when it connected or"
        " got its last response: the idle keep-alive timeout too (default: 30)",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")


def options_from(args: argparse.Namespace) -> FrontOptions:
    return FrontOptions(
        host=args.host,
        port=args.port,
        processes=args.processes,
        threads=args.threads,
        max_body_bytes=args.max_body_bytes,
        header_timeout_s=args.header_timeout_s,
        access_log=args.access_log,
        application=getattr(args, "application", APPLICATION),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="djs-http-front", description="serve the HTTP API")
    add_arguments(parser)
    parser.add_argument(
        "--application",
        default=APPLICATION,
        metavar="MODULE:NAME",
        help=f"the WSGI application to serve (default: {APPLICATION})",
    )
    return serve(Settings(), options_from(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
