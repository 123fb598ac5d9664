"""The objects every entry point needs, built once from Settings and passed on."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from common.awssecrets import with_database_url
from common.batcher import SubmitBatcher
from common.handlers import HandlerRegistry
from common.manager import JobManager
from common.ratelimit import RateLimiter, TokenBuckets
from common.runner import QueueSelection, Runner, Upkeep
from common.runner.invoke import INVOKERS, Invoker
from common.settings import Settings
from common.upkeep.alerts import AlertLoop
from common.upkeep.janitor import Janitor
from common.upkeep.listener import EnqueueListener
from common.upkeep.reconciler import Reconciler

if TYPE_CHECKING:
    from common.dispatch import PollingDispatcher
    from common.store import Store


class Services:
    """The job manager, and what is built on it: the API's batcher, runners, upkeep."""

    def __init__(self, settings: Settings, manager: JobManager) -> None:
        self.settings = settings
        self.manager = manager
        self._batcher: SubmitBatcher | None = None
        self._limiter: RateLimiter | None = None

    @classmethod
    def connect(cls, settings: Settings) -> Services:
        """Neither Postgres nor Redis needs to answer yet. A database URL kept in SSM or
        Secrets Manager (DJS_DATABASE_URL_SSM / _SECRET) is read here, once."""
        settings = with_database_url(settings)
        return cls(settings, JobManager.connect(settings))

    @property
    def store(self) -> Store:
        """For reads; every change of state goes through the manager."""
        return self.manager.store

    @property
    def queue(self) -> PollingDispatcher:
        """The dispatcher, for what it holds (depth); changes go through the manager."""
        return self.manager.polling

    @property
    def batcher(self) -> SubmitBatcher:
        """Group commit for the API's submissions, started on first use."""
        if self._batcher is None:
            self._batcher = SubmitBatcher(self.manager)
        return self._batcher

    @property
    def limiter(self) -> RateLimiter:
        """The API's rate limits per key (its own Redis client, with short timeouts)."""
        if self._limiter is None:
            s = self.settings
            buckets = TokenBuckets(s.redis_url, s.redis_prefix, cluster=s.redis_cluster)
            self._limiter = RateLimiter(buckets, burst_s=s.rate_burst_s)
        return self._limiter

    def dispatch_check(self) -> tuple[str, Callable[[], None]]:
        """What the health probes call the dispatcher ("redis" or "sqs"), and its ping."""
        return self.settings.dispatch, self.manager.dispatcher.ping

    def upkeep(self) -> list[Upkeep]:
        """The reconciler and the janitor, as every runner runs them."""
        s = self.settings
        return [
            Reconciler(self.manager, s.reconcile_after_s, s.reconcile_batch),
            Janitor(self.manager, s.janitor_interval_s),
            AlertLoop(self.store, s.alert_allowed(), s.alert_interval_s),
        ]

    def runner(
        self,
        registry: HandlerRegistry,
        queues: dict[str, int] | None = None,
        *,
        strict: bool = False,
        upkeep: list[Upkeep] | None = None,
        listen: bool = True,
        invoke: str | None = None,
        **options: Any,
    ) -> Runner:
        """A runner on these queues (name -> weight; None: every queue; `strict`: in the order
        given, no weights), with the upkeep and the enqueue listener unless told otherwise,
        calling handlers as `invoke` says (None: DJS_INVOKE); `options` go to Runner."""
        s = self.settings
        if s.dispatch != "redis":
            raise ValueError(
                f"a runner polls Redis; with DJS_DISPATCH={s.dispatch} the worker app's "
                "Lambda consumer runs the jobs (worker_app/sqs_consumer.py)"
            )
        selection = QueueSelection(
            queues,
            self.manager.queue_names,
            always=[s.default_queue],
            refresh_s=s.poll_interval_s,
            strict=strict,
        )
        listener = EnqueueListener(self.manager, s.database_url) if listen else None
        defaults: dict[str, Any] = {
            "poll_interval_s": s.poll_interval_s,
            "lease_s": s.lease_s,
            "grace_s": s.grace_s,
            "beat_interval_s": s.beat_interval_s,
            "invoker": self.invoker(invoke or s.invoke, options.get("concurrency", 8)),
        }
        return Runner(
            self.manager,
            registry,
            queues=selection,
            upkeep=self.upkeep() if upkeep is None else upkeep,
            listener=listener,
            **{**defaults, **options},
        )

    def invoker(self, invoke: str, concurrency: int) -> Invoker | None:
        """None for `local` (the runner calls its registry's handlers); `lambda` invokes their
        deployed functions, with a connection per job thread."""
        if invoke == "local":
            return None
        if invoke == "lambda":
            # Imported here: botocore is not in the Lambda zips, which import this module.
            from common.runner.lambda_invoke import LambdaInvoker

            return LambdaInvoker(self.settings.lambda_function_prefix, concurrency)
        raise ValueError(f"invoke must be one of {', '.join(INVOKERS)}, not {invoke!r}")

    def close(self) -> None:
        if self._limiter is not None:
            self._limiter.close()
        self.manager.close()
