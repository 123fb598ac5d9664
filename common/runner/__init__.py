"""The local runner: claims jobs from the dispatcher, runs their handlers on threads, and
records every attempt through the job manager."""

from common.runner.queues import QueueSelection, parse_queues
from common.runner.runner import Runner, RunResult, default_worker_id
from common.runner.watch import Upkeep

__all__ = ["QueueSelection", "RunResult", "Runner", "Upkeep", "default_worker_id", "parse_queues"]
