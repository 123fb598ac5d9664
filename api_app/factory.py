"""Build the API's Chalice app around the services it is given."""

from __future__ import annotations

from chalice.app import Chalice

from api_app.errors import chalice_errors_in_our_shape
from api_app.routes.bulk import bulk_routes
from api_app.routes.docs import docs_routes
from api_app.routes.health import health_routes
from api_app.routes.job_actions import job_action_routes
from api_app.routes.jobs import jobs_routes
from api_app.routes.queues import queues_routes
from common.services import Services


def create_app(services: Services, app_name: str = "djs-api") -> Chalice:
    app = Chalice(app_name=app_name)
    # The API sends and takes JSON only. Chalice matches every request's and response's
    # content type against this list (20 types by default, lower-cased on each check: 14 %
    # of a request's CPU); with none, nothing is base64-encoded, here or behind API Gateway.
    app.api.binary_types = []
    app.register_middleware(chalice_errors_in_our_shape, "http")
    app.register_blueprint(jobs_routes(services))
    app.register_blueprint(job_action_routes(services))
    app.register_blueprint(bulk_routes(services))
    app.register_blueprint(queues_routes(services))
    app.register_blueprint(health_routes(services))
    app.register_blueprint(docs_routes(app))
    return app
