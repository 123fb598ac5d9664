"""The djs worker as a Chalice app: each job handler is a Lambda function named after its type;
with DJS_SQS_CONSUME_QUEUE, also the SQS consumer and its scheduled upkeep."""

from __future__ import annotations

from chalice.app import Chalice

from common.settings import Settings
from worker_app import sqs_consumer
from worker_app.config import HandlerSettings
from worker_app.handlers import examples
from worker_app.registry import registry

app = Chalice(app_name="djs-worker")
examples.configure(HandlerSettings())
app.register_blueprint(examples.bp)
_settings = Settings()
if _settings.sqs_consume_queue:
    app.register_blueprint(sqs_consumer.blueprint(_settings, registry))

__all__ = ["app", "registry"]
