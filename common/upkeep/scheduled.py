"""The upkeep of a deployment without runners (DJS_DISPATCH=sqs): what every runner's watcher
runs in the background, run once per call of a scheduled Lambda function (worker_app)."""

from __future__ import annotations

from common.manager import JobManager
from common.upkeep.janitor import Janitor
from common.upkeep.reconciler import Reconciler


def upkeep_once(manager: JobManager, resend_after_s: float, batch: int) -> dict[str, int]:
    """The janitor (due delayed jobs promoted, and sent by the manager; expired leases
    recovered; unreadable rows quarantined; retention), then the reconciler (waiting jobs
    untouched for resend_after_s sent again). Raises DependencyDown if Postgres is down:
    the next scheduled call tries again. Return how many jobs each touched."""
    touched = Janitor(manager, batch=batch).run_once()
    sent = Reconciler(manager, resend_after_s, batch).run_once()
    return {"janitor": touched, "reconciler": sent}
