"""The serverless path (DJS_DISPATCH=sqs): the Lambda function that consumes the SQS queue,
and the scheduled upkeep that stands in for the runners' background work. worker_app/app.py
registers them only when DJS_SQS_CONSUME_QUEUE names the SQS queue. Neither touches Redis."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from chalice.app import Blueprint, Rate, SQSEvent

from common.handlers import HandlerRegistry
from common.runner.delivery import DeliveryConsumer
from common.services import Services
from common.settings import Settings
from common.upkeep.scheduled import upkeep_once

log = logging.getLogger("djs.sqs")

CONSUMER = "sqs_consume"  # the Lambda functions' names (.chalice/config.json, infra/aws/)
UPKEEP = "djs_upkeep"
_MAX_WORKER_CHARS = 200


def blueprint(
    settings: Settings,
    registry: HandlerRegistry,
    connect: Callable[[Settings], Services] = Services.connect,
) -> Blueprint:
    """The consumer of settings.sqs_consume_queue, running registry's handlers, and the
    upkeep every minute. `connect` is called on the first call, not at import."""
    if settings.dispatch != "sqs" or not settings.sqs_consume_queue:
        raise ValueError("the SQS consumer needs DJS_DISPATCH=sqs and DJS_SQS_CONSUME_QUEUE")
    bp = Blueprint(__name__)
    built: list[DeliveryConsumer] = []  # one per Lambda container, kept while it is warm

    def consumer() -> DeliveryConsumer:
        if not built:
            built.append(DeliveryConsumer(connect(settings).manager, registry))
        return built[0]

    @bp.on_sqs_message(queue=settings.sqs_consume_queue, batch_size=10, name=CONSUMER)
    def sqs_consume(event: SQSEvent) -> dict[str, int]:
        context: Any = event.context  # the Lambda context (chalice types it loosely)
        worker = f"sqs:{context.function_name}:{context.aws_request_id}"[:_MAX_WORKER_CHARS]
        tally = consumer().consume(
            (record.body for record in event),
            worker,
            lambda: float(context.get_remaining_time_in_millis()) / 1000,
        )
        log.info("settled an SQS batch: %s", dict(tally))
        return dict(tally)

    @bp.schedule(Rate(1, unit=Rate.MINUTES), name=UPKEEP)
    def djs_upkeep(event: Any) -> dict[str, int]:
        manager = consumer().manager
        return upkeep_once(manager, settings.sqs_resend_after_s, settings.reconcile_batch)

    return bp
