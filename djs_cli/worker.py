"""`djs worker`: a runner in this process, its health probe, and its own replacement.

A runner whose abandoned handler threads pile up (Python cannot end them) says it needs
replacing; the worker then re-executes itself: the same pid and command line, a fresh
interpreter without those threads. SIGTERM still means stop, never replace.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from common.settings import Settings
from djs_cli.gc_tuning import settle_gc

T = TypeVar("T", int, float)

log = logging.getLogger("djs")


def _signals_call(handler: Callable[[], None]) -> None:
    """Ctrl-C and SIGTERM both mean: stop gracefully."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: handler())


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from common.runner import parse_queues
    from common.runner.queues import check_strict
    from common.services import Services
    from worker_app.app import registry

    for module in args.imports:  # extra handler modules register into the same registry
        importlib.import_module(module)
    queues = parse_queues(args.queues) if args.queues else None
    if args.strict:
        check_strict(queues)  # refused before anything connects
    if args.beat_interval_s is not None:
        settings = settings.model_copy(update={"beat_interval_s": args.beat_interval_s})
    services = Services.connect(settings)
    runner = services.runner(
        registry,
        queues,
        strict=args.strict,
        concurrency=args.concurrency,
        burst=args.burst,
        cancel_grace_s=args.cancel_grace_s,
        max_leaked_threads=args.max_leaked_threads,
        invoke=args.invoke,
    )
    _signals_call(runner.stop)
    probe = _probe(args, runner, services) if args.health_port else None
    log.info(
        "worker %s on %s, concurrency %d, %s: %s%s",
        runner.worker_id,
        (f"queues {args.queues}" + (" (strict order)" if args.strict else ""))
        if queues
        else "every queue",
        args.concurrency,
        _invoking(args.invoke or settings.invoke, settings.lambda_function_prefix),
        ", ".join(registry.types()),
        f", health on {args.health_host}:{probe.port}" if probe else "",
    )
    settle_gc()
    result = runner.run()
    if probe:
        probe.close()
    services.close()
    if result.replace and not runner.stop_requested:  # a SIGTERM during the drain wins
        _replace_this_process(result.replace)
    return 0


def _invoking(invoke: str, prefix: str) -> str:
    if invoke == "lambda":
        return f"invoking Lambda functions {prefix}<type> for"
    return "handlers"


def _probe(args: argparse.Namespace, runner: Any, services: Any) -> Any:
    """The runner's probe and metrics port: GET /health, /ready and /metrics."""
    from common import metrics
    from common.readiness import answer, readiness
    from djs_cli.health_probe import HealthProbe

    return HealthProbe(
        runner.health,
        args.health_host,
        args.health_port,
        ready=lambda: answer(readiness(services)),
        scrape=metrics.exposition,
    ).start()


def _replace_this_process(reason: str) -> None:
    """exec the same command again: every thread of this process ends, leaked ones too."""
    argv = [sys.executable, *sys.orig_argv[1:]]
    log.warning("replacing worker process %d (%s): exec %s", os.getpid(), reason, " ".join(argv))
    logging.shutdown()  # flush what is logged before the image goes
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


def _within(convert: Callable[[str], T], low: T, high: T, unit: str = "") -> Callable[[str], T]:
    """An argparse type: `convert` the text, then refuse a value outside [low, high]."""

    def parse(text: str) -> T:
        value = convert(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low:g} to {high:g}{unit}")
        return value

    return parse


def add_worker(sub: Any) -> None:
    from common import limits
    from common.runner.runner import MAX_CANCEL_GRACE_S, MIN_MAX_LEAKED_THREADS

    worker = sub.add_parser("worker", help="run jobs from every queue, or from those named")
    _add_sizing(worker)
    worker.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    worker.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import a module that registers more handlers (repeatable)",
    )
    worker.add_argument(
        "--cancel-grace-s",
        type=_within(float, 0.0, MAX_CANCEL_GRACE_S, " seconds"),
        default=5.0,
        help="a cancelled handler still running after this long is abandoned (default 5)",
    )
    worker.add_argument(
        "--max-leaked-threads",
        type=_within(int, 1, 100_000),
        help="abandoned handler threads still running past which the worker drains and"
        f" re-executes itself (default: the concurrency, at least {MIN_MAX_LEAKED_THREADS})",
    )
    worker.add_argument(
        "--invoke",
        choices=("local", "lambda"),
        help="how handlers run: local (in this process's threads) or lambda (boto3 lambda.invoke"
        " of the deployed function DJS_LAMBDA_FUNCTION_PREFIX + job type, e.g."
        " djs-worker-prod-echo) (default: DJS_INVOKE, else local)",
    )
    _add_probe_port(worker)
    worker.add_argument(
        "--beat-interval-s",
        type=_within(float, limits.MIN_BEAT_INTERVAL_S, limits.MAX_BEAT_INTERVAL_S, " seconds"),
        help="how often the worker writes its row in the live registry (GET /workers, djs"
        " workers), which lists it while its last beat is at most two of these old"
        " (default: DJS_BEAT_INTERVAL_S, else 5)",
    )
    worker.set_defaults(func=cmd_worker)


def _add_sizing(worker: Any) -> None:
    """Which queues, in what order, and how many jobs at once (README: Operating djs)."""
    from common import limits

    worker.add_argument(
        "--queues",
        metavar="NAME[:WEIGHT],...",
        help="the queues to serve; a queue with weight W comes first W times as often as one"
        " with weight 1 when both have work (default: every queue, weight 1)",
    )
    worker.add_argument(
        "--strict",
        action="store_true",
        help="strict order: always take from the first of the --queues, in the order listed,"
        " that has a job ready; no weights (e.g. --queues high,low --strict)",
    )
    worker.add_argument(
        "--concurrency",
        type=_within(int, 1, limits.MAX_CONCURRENCY),
        metavar="N",
        default=8,
        help="jobs this process runs at once, one thread each (default 8): high for handlers"
        " that wait on I/O, 1-2 per process for CPU-bound ones (run a process per core)",
    )


def _add_probe_port(parser: Any) -> None:
    """The runner's probe and metrics port (djs_cli/health_probe.py)."""
    parser.add_argument(
        "--health-port",
        type=_within(int, 0, 65535),
        default=0,
        help="the runner's probe and metrics port: GET /health, /ready and /metrics, without"
        " access control (default 0: off)",
    )
    parser.add_argument(
        "--health-host",
        default="127.0.0.1",
        help="the address the probe port listens on (default 127.0.0.1: this host only)",
    )
