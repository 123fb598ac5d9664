"""The djs worker as a Chalice app: each job handler is a Lambda function named after its type."""

from __future__ import annotations

from chalice.app import Chalice

from worker_app.config import HandlerSettings
from worker_app.handlers import examples
from worker_app.registry import registry

app = Chalice(app_name="djs-worker")
examples.configure(HandlerSettings())
app.register_blueprint(examples.bp)

__all__ = ["app", "registry"]
