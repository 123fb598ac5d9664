"""`djs retry|promote|cancel|remove|clean|pause|resume|redrive`: the admin verbs on the CLI."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from common.audit import Actor
from common.errors import Conflict, DjsError, NotFound
from common.manager import JobManager
from common.models import BulkRequest, CleanRequest, JobFilter, RedriveRequest
from common.services import Services
from common.settings import Settings
from djs_cli.errors import FAILURE, UsageError

_VERBS: dict[str, str] = {
    "retry": "failed, cancelled or completed -> pending, with a fresh attempt budget",
    "promote": "delayed -> pending now",
    "cancel": "pending or delayed -> cancelled; active jobs are asked to stop",
    "remove": "delete jobs and their history (never active ones)",
}
# What a verb's output lists, when it is not just the verb: cancel stops waiting jobs at once
# and only asks active ones to stop.
_DONE_KEYS = {"cancel": ("cancelled", "cancel_requested")}
_FILTER_OPTIONS = "--queue, --type, --status, --created-after or --created-before"
_HOW_CHOSEN = (
    "Given ids alone, each job on its own, as the API's /jobs/{id} routes: an unknown id or a "
    "job in the wrong state is refused, and any refusal exits 1. Given a filter, every "
    "matching job (ids included), up to --limit."
)


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


@contextmanager
def _connected(settings: Settings) -> Iterator[Services]:
    services = Services.connect(settings)
    try:
        yield services
    finally:
        services.close()


def _print(body: Any) -> None:
    print(json.dumps(body, indent=2, default=str))


def _with_services(settings: Settings, work: Callable[[Services], Any]) -> int:
    with _connected(settings) as services:
        _print(work(services))
    return 0


def run_verb(settings: Settings, args: argparse.Namespace) -> int:
    """A verb on the jobs named by id (one by one) or on those a filter selects (in bulk)."""
    chosen = job_filter(args)
    named = chosen.model_dump(exclude_none=True)
    if not named:
        raise UsageError(f"{args.command} needs job ids or a filter ({_FILTER_OPTIONS})")
    if set(named) == {"ids"}:
        return _one_by_one(settings, args.command, chosen.ids or [])
    request = BulkRequest(filter=chosen, limit=args.limit)

    def work(s: Services) -> Any:
        m = s.manager
        if args.command == "cancel":
            cancelled, requested = m.cancel(request.filter, request.limit, Actor.cli())
            return {"cancelled": cancelled, "cancel_requested": requested}
        verb = {"retry": m.retry, "promote": m.promote, "remove": m.remove}[args.command]
        return {args.command: verb(request.filter, request.limit, Actor.cli())}

    return _with_services(settings, work)


def _one_by_one(settings: Settings, verb: str, ids: list[int]) -> int:
    """The single-job verb for each id, as the API's /jobs/{id} routes: what was done goes to
    stdout, each refusal (the API's 404 or 409 message) to stderr, and any refusal exits 1."""
    done: dict[str, list[int]] = {key: [] for key in _DONE_KEYS.get(verb, (verb,))}
    refused: list[DjsError] = []
    with _connected(settings) as services:
        for job_id in ids:
            try:
                done[_apply_one(services.manager, verb, job_id)].append(job_id)
            except (NotFound, Conflict) as exc:
                refused.append(exc)
    _print(done)
    for refusal in refused:
        print(f"error: {refusal.message}", file=sys.stderr)
    return FAILURE if refused else 0


def _apply_one(manager: JobManager, verb: str, job_id: int) -> str:
    """Apply `verb` to one job; return the key of the output it is listed under."""
    if verb == "cancel":
        cancelled = manager.cancel_one(job_id, Actor.cli())
        return "cancel_requested" if cancelled.requested else "cancelled"
    one = {"retry": manager.retry_one, "promote": manager.promote_one, "remove": manager.remove_one}
    one[verb](job_id, Actor.cli())
    return verb


def run_clean(settings: Settings, args: argparse.Namespace) -> int:
    request = CleanRequest(status=args.status, age_s=args.age_s, keep=args.keep, limit=args.limit)

    def work(s: Services) -> Any:
        return {"removed": s.manager.clean(args.queue, request, Actor.cli())}

    return _with_services(settings, work)


def run_pause(settings: Settings, args: argparse.Namespace) -> int:
    paused = args.command == "pause"

    def work(s: Services) -> Any:
        s.manager.pause(args.queue, paused, Actor.cli())
        return {"queue": args.queue, "paused": paused}

    return _with_services(settings, work)


def run_redrive(settings: Settings, args: argparse.Namespace) -> int:
    request = RedriveRequest(filter=job_filter(args), limit=args.batch_size)

    def work(s: Services) -> Any:
        retried, step = 0, request
        while True:  # bounded: the cursor only moves forward, over a finite set of ids
            done = s.manager.redrive(step, Actor.cli())
            retried += len(done.ids)
            if done.next_cursor is None or not done.remaining or retried >= args.limit:
                return {"retried": retried, "remaining": done.remaining}
            step = step.model_copy(update={"cursor": done.next_cursor})
            time.sleep(args.pause_ms / 1000)

    return _with_services(settings, work)


def add_admin_commands(sub: Any) -> None:
    for verb, help_text in _VERBS.items():
        parser = sub.add_parser(verb, help=help_text, description=f"{help_text}. {_HOW_CHOSEN}")
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
