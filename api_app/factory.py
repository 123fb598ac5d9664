"""Build the API's Chalice app around the services it is given."""

from __future__ import annotations

from chalice.app import Chalice

from api_app.auth.authorizer import install_authorizer
from api_app.auth.refusal import match_policies_fast, refusals_in_our_shape
from api_app.auth.verifier import KeyVerifier
from api_app.cors import add_preflights, cors_headers, parse_origins
from api_app.errors import chalice_errors_in_our_shape
from api_app.http_metrics import count_requests
from api_app.ratelimit import rate_limits, role_rates
from api_app.routes.admin_site import admin_site_routes
from api_app.routes.alerts import alerts_routes
from api_app.routes.audit import audit_routes
from api_app.routes.bulk import bulk_routes
from api_app.routes.docs import docs_routes
from api_app.routes.health import health_routes
from api_app.routes.job_actions import job_action_routes
from api_app.routes.jobs import jobs_routes
from api_app.routes.keys import key_routes
from api_app.routes.metrics import metrics_routes
from api_app.routes.queues import queues_routes
from api_app.routes.stats import stats_routes
from api_app.routes.workers import workers_routes
from common.pepper import PepperUnavailable, key_pepper
from common.services import Services


class NoKeyPepper(Exception):
    """The API cannot verify keys without its pepper: it does not start."""


def create_app(services: Services, app_name: str = "djs-api") -> Chalice:
    verifier = _verifier(services)
    app = Chalice(app_name=app_name)
    # The API sends and takes JSON only. Chalice matches every request's and response's
    # content type against this list (20 types by default, lower-cased on each check: 14 %
    # of a request's CPU); with none, nothing is base64-encoded, here or behind API Gateway.
    app.api.binary_types = []
    app.register_middleware(count_requests, "http")  # outermost: every answer is counted
    app.register_middleware(chalice_errors_in_our_shape, "http")
    # Outermost first: a 429 carries the CORS headers too, so a dashboard can read it.
    origins = parse_origins(services.settings.cors_origins)
    if origins:
        app.register_middleware(cors_headers(origins), "http")
    settings = services.settings
    if settings.rate_limited():  # else throttled at the edge (DJS_RATE_LIMIT=off)
        app.register_middleware(rate_limits(services.limiter, role_rates(settings)), "http")
    app.register_blueprint(jobs_routes(services))
    app.register_blueprint(job_action_routes(services))
    app.register_blueprint(bulk_routes(services))
    app.register_blueprint(queues_routes(services))
    app.register_blueprint(alerts_routes(services))
    app.register_blueprint(health_routes(services))
    app.register_blueprint(metrics_routes(services))
    app.register_blueprint(key_routes(services, verifier))
    app.register_blueprint(audit_routes(services))
    app.register_blueprint(workers_routes(services))
    app.register_blueprint(stats_routes(services))
    app.register_blueprint(docs_routes(app))
    app.register_blueprint(admin_site_routes())
    install_authorizer(app, verifier)  # after every route is registered
    add_preflights(app, origins)  # after the authorizer: a preflight carries no key
    refusals_in_our_shape()
    match_policies_fast()
    return app


def _verifier(services: Services) -> KeyVerifier:
    s = services.settings
    try:  # from DJS_KEY_PEPPER, or SSM / Secrets Manager: read once, here
        pepper = key_pepper(s)
    except PepperUnavailable as exc:
        raise NoKeyPepper(f"the API verifies keys with a pepper and does not start: {exc}") from exc
    return KeyVerifier(services.store, pepper, s.key_cache_s, s.key_touch_interval_s)
