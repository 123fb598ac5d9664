"""The djs HTTP API as a Chalice app (`chalice local`, `djs api`, or API Gateway + Lambda)."""

from __future__ import annotations

import sys

from api_app.auth.authorizer import lambda_authorizer
from api_app.factory import create_app
from common.services import Services
from common.settings import Settings

if "chalice.local" in sys.modules:  # started by `chalice local`
    from api_app.local_server import tune_chalice_local

    tune_chalice_local()

app = create_app(Services.connect(Settings()))
# Behind API Gateway the authorizer is a Lambda function of its own, whose handler Chalice
# names `app.djs_key` (sam.json): it must be an attribute of this module.
djs_key = lambda_authorizer(app)
