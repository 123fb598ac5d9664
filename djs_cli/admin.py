"""`djs retry|promote|cancel|remove|clean|pause|resume|redrive`: the admin verbs on the CLI."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from common.models import BulkRequest, CleanRequest, JobFilter, RedriveRequest
from common.services import Services
from common.settings import Settings

_VERBS: dict[str, str] = {
    "retry": "failed, cancelled or completed -> pending, with a fresh attempt budget",
    "promote": "delayed -> pending now",
    "cancel": "pending or delayed -> cancelled; active jobs are asked to stop",
    "remove": "delete jobs and their history (never active ones)",
}


def add_filter_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ids", nargs="*", type=int, help="job ids")
    parser.add_argument("--queue")
    parser.add_argument("--type")
    parser.add_argument("--status")
    parser.add_argument("--created-after", help="ISO 8601 with a time zone")
    parser.add_argument("--created-before", help="ISO 8601 with a time zone")


def job_filter(args: argparse.Namespace) -> JobFilter:
    return JobFilter.model_validate(
        {
            "ids": args.ids or None,
            "queue": args.queue,
            "type": args.type,
            "status": args.status,
            "created_after": args.created_after,
            "created_before": args.created_before,
        }
    )


def _with_services(settings: Settings, work: Callable[[Services], Any]) -> int:
    services = Services.connect(settings)
    try:
        print(json.dumps(work(services), indent=2, default=str))
    finally:
        services.close()
    return 0


def run_verb(settings: Settings, args: argparse.Namespace) -> int:
    request = BulkRequest(filter=job_filter(args), limit=args.limit)

    def work(s: Services) -> Any:
        m = s.manager
        if args.command == "cancel":
            cancelled, requested = m.cancel(request.filter, request.limit)
            return {"cancelled": cancelled, "cancel_requested": requested}
        verb = {"retry": m.retry, "promote": m.promote, "remove": m.remove}[args.command]
        return {args.command: verb(request.filter, request.limit)}

    return _with_services(settings, work)


def run_clean(settings: Settings, args: argparse.Namespace) -> int:
    request = CleanRequest(status=args.status, age_s=args.age_s, keep=args.keep, limit=args.limit)
    return _with_services(settings, lambda s: {"removed": s.manager.clean(args.queue, request)})


def run_pause(settings: Settings, args: argparse.Namespace) -> int:
    paused = args.command == "pause"

    def work(s: Services) -> Any:
        s.manager.pause(args.queue, paused)
        return {"queue": args.queue, "paused": paused}

    return _with_services(settings, work)


def run_redrive(settings: Settings, args: argparse.Namespace) -> int:
    request = RedriveRequest(filter=job_filter(args), limit=args.batch_size)

    def work(s: Services) -> Any:
        retried, step = 0, request
        while True:  # bounded: the cursor only moves forward, over a finite set of ids
            done = s.manager.redrive(step)
            retried += len(done.ids)
            if done.next_cursor is None or not done.remaining or retried >= args.limit:
                return {"retried": retried, "remaining": done.remaining}
            step = step.model_copy(update={"cursor": done.next_cursor})
            time.sleep(args.pause_ms / 1000)

    return _with_services(settings, work)


def add_admin_commands(sub: Any) -> None:
    for verb, help_text in _VERBS.items():
        parser = sub.add_parser(verb, help=help_text)
        add_filter_args(parser)
        parser.add_argument("--limit", type=int, default=1000)
        parser.set_defaults(func=run_verb)

    clean = sub.add_parser("clean", help="remove finished jobs older than an age or beyond N")
    clean.add_argument("queue")
    clean.add_argument("--status", choices=["completed", "failed", "cancelled"], required=True)
    clean.add_argument("--age-s", type=int)
    clean.add_argument("--keep", type=int)
    clean.add_argument("--limit", type=int, default=100_000)
    clean.set_defaults(func=run_clean)

    for verb in ("pause", "resume"):
        parser = sub.add_parser(verb, help=f"{verb} a queue")
        parser.add_argument("queue")
        parser.set_defaults(func=run_pause)

    redrive = sub.add_parser("redrive", help="retry failed jobs by filter, throttled")
    add_filter_args(redrive)
    redrive.add_argument("--limit", type=int, default=100_000, help="jobs in all, at most")
    redrive.add_argument("--batch-size", type=int, default=100, help="jobs per request")
    redrive.add_argument("--pause-ms", type=int, default=100, help="pause between requests")
    redrive.set_defaults(func=run_redrive)
