"""The `djs` command: a parser per verb, and main(), which runs one and reports its failure."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, NoReturn

import psycopg

from common.errors import NotFound
from common.logs import JSON, TEXT, TEXT_FORMAT, configure_for
from common.settings import LOG_LEVELS, Settings
from common.store.migrate import migrate
from djs_cli.admin import add_admin_commands
from djs_cli.dashboard import add_dashboard_commands
from djs_cli.devservers import ensure_database
from djs_cli.devstate import default_data_dir, settings_with_dev_servers
from djs_cli.errors import USAGE, explain
from djs_cli.keys import add_key_commands
from djs_cli.net import cannot_listen, ensure_port_free
from djs_cli.package import add_package_command
from djs_cli.worker import add_worker
from djs_cli.workers import add_workers_command


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    ensure_database(settings.database_url)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        applied = migrate(conn)
    print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")
    return 0


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    """The API on the production front (djs_cli/http_front.py: granian)."""
    from djs_cli.http_front import options_from, serve
    from djs_cli.keys import pepper_of

    pepper_of(settings)  # the API refuses to start without it: say so before any worker
    # granian's workers listen with SO_REUSEPORT, so they would not notice another server.
    ensure_port_free(args.host, args.port)
    try:
        return serve(settings, options_from(args))
    except OSError as exc:  # taken since the check
        raise cannot_listen(args.host, args.port, exc) from exc


def cmd_submit(settings: Settings, args: argparse.Namespace) -> int:
    from common.models import JobSubmission
    from common.services import Services

    fields = {
        "type": args.type,
        "payload": args.payload,
        "queue": args.queue,
        "priority": args.priority,
        "attempts": args.attempts,
        "delay_ms": args.delay_ms,
        "run_at": args.run_at,
        "timeout_s": args.timeout_s,
        "idempotency_key": args.idempotency_key,
    }
    if args.backoff is not None:
        fields["backoff"] = args.backoff
    submission = JobSubmission.model_validate({k: v for k, v in fields.items() if v is not None})
    services = Services.connect(settings)
    try:
        [submitted] = services.manager.enqueue([submission])
    finally:
        services.close()
    body = {
        **submitted.job.model_dump(mode="json"),
        "created": submitted.created,
        "dispatched": submitted.dispatched,
    }
    print(json.dumps(body, indent=2))
    return 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from common.services import Services

    services = Services.connect(settings)
    try:
        job = services.store.get(args.id)
    finally:
        services.close()
    if job is None:
        raise NotFound(f"job {args.id} not found")
    print(json.dumps(job.model_dump(mode="json"), indent=2))
    return 0


def cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    from djs_cli.bench import run_bench

    return run_bench(settings, args)


def cmd_dev(settings: Settings, args: argparse.Namespace) -> int:
    from djs_cli.dev import run_dev

    return run_dev(settings, args)


class Parser(argparse.ArgumentParser):
    """argparse, its errors said in one line like every other failure of djs (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"error: {message} (see {self.prog} --help)\n")


def json_argument(text: str) -> Any:
    """An option whose value is JSON (its shape is the model's to check)."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc


def _add_dev(sub: Any) -> None:
    dev = sub.add_parser("dev", help="run the whole system on this machine")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--concurrency", type=int, default=8)
    dev.add_argument(
        "--data-dir",
        default=str(default_data_dir()),
        help="embedded servers keep data here, and dev.json says which servers djs dev uses"
        " (default: $DJS_DATA_DIR, else .djs)",
    )
    dev.set_defaults(func=cmd_dev)


def _add_api(sub: Any) -> None:
    from djs_cli.http_front import add_arguments

    api = sub.add_parser("api", help="serve the HTTP API")
    add_arguments(api)  # --host --port --processes --threads --max-body-bytes ... --access-log
    api.set_defaults(func=cmd_api)


def _add_jobs(sub: Any) -> None:
    """migrate, submit, status."""
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)

    submit = sub.add_parser("submit", help="submit a job")
    submit.add_argument("type")
    submit.add_argument("--payload", type=json_argument, default={}, help="JSON object")
    submit.add_argument("--queue", default="default")
    submit.add_argument("--priority", type=int, default=0)
    submit.add_argument("--attempts", type=int, default=3)
    submit.add_argument(
        "--backoff", type=json_argument, help='JSON, e.g. {"type": "fixed", "delay_ms": 500}'
    )
    submit.add_argument("--delay-ms", type=int)
    submit.add_argument("--run-at", help="ISO 8601 with a time zone")
    submit.add_argument("--timeout-s", type=float)
    submit.add_argument("--idempotency-key")
    submit.set_defaults(func=cmd_submit)

    status = sub.add_parser("status", help="show a job and its attempts")
    status.add_argument("id", type=int)
    status.set_defaults(func=cmd_status)


def _add_bench(sub: Any) -> None:
    bench = sub.add_parser("bench", help="measure the system end to end")
    bench.add_argument("--scenarios", default="all", help="all, or a comma-separated list")
    bench.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    bench.add_argument("--runners", type=int, default=2, help="runner processes")
    bench.add_argument("--concurrency", type=int, default=256, help="threads per runner")
    bench.add_argument("--api-processes", type=int, default=1, help="API server processes")
    bench.add_argument(
        "--dashboard-jobs", type=int, default=None, help="jobs the dashboard scenario stores"
    )
    bench.add_argument("--out", default="bench-results")
    bench.set_defaults(func=cmd_bench)


def build_parser() -> Parser:
    parser = Parser(prog="djs")
    sub = parser.add_subparsers(dest="command", required=True)
    adders = (_add_dev, _add_api, add_worker, _add_jobs, _add_bench, add_admin_commands)
    for add in (
        *adders,
        add_key_commands,
        add_workers_command,
        add_dashboard_commands,
        add_package_command,
    ):
        add(sub)
    for name in sorted(_LONG_RUNNING):
        sub.choices[name].add_argument(
            "--log-level",
            choices=LOG_LEVELS,
            type=str.lower,
            help="the least level logged (default: DJS_LOG_LEVEL, else info)",
        )
    # Named from the parsers themselves, so the list cannot fall behind.
    parser.description = (
        f"djs, a distributed job system. Commands: {', '.join(sub.choices)}."
        " `djs COMMAND --help` tells more of each."
    )
    return parser


# Commands that run until stopped, logging as they go.
_LONG_RUNNING = {"dev", "api", "worker", "bench"}
_TEXT_BY_DEFAULT = {"dev", "bench"}


def _settings(args: argparse.Namespace) -> Settings:
    """`djs dev` chooses its own servers; every other command also finds the servers of a
    running `djs dev` (where the environment does not name them)."""
    return Settings() if args.command == "dev" else settings_with_dev_servers()


def _logging_for(settings: Settings, args: argparse.Namespace) -> Settings:
    """Configure logging for a long-running command: --log-level over DJS_LOG_LEVEL; JSON
    lines unless DJS_LOG_FORMAT says text, except `djs dev` (a human at a terminal) and
    `djs bench` (it prints a report), which default to text. The settings returned carry
    the choice, so the API's server processes make the same one."""
    fmt = settings.log_format or (TEXT if args.command in _TEXT_BY_DEFAULT else JSON)
    update = {"log_format": fmt}
    if getattr(args, "log_level", None):
        update["log_level"] = args.log_level
    settings = settings.model_copy(update=update)
    configure_for(settings)
    return settings


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    long_running = args.command in _LONG_RUNNING
    logging.basicConfig(level=logging.INFO, format=TEXT_FORMAT)  # until the settings are read
    if not long_running:
        # A one-shot command says what it did or why it failed, in one line: the pool's
        # retries and the store's warnings about a server that is down would only bury it.
        logging.disable(logging.WARNING)  # psycopg sets its own loggers' levels
    settings: Settings | None = None
    try:
        settings = _settings(args)
        if long_running:
            settings = _logging_for(settings, args)
        return int(args.func(settings, args))
    except Exception as exc:
        failure = explain(exc, settings)
        if failure is None:
            raise
        print(f"error: {failure.message}", file=sys.stderr)
        return failure.code


if __name__ == "__main__":
    sys.exit(main())
