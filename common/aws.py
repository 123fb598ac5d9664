"""boto3 clients for the cloud path (Lambda, SQS, S3, SSM, Secrets Manager), made in one place.

Where they connect, in this order:
- `DJS_AWS_LOCALSTACK=1`: LocalStack, through localstack-client's session: at
  `AWS_ENDPOINT_URL` if it is set (localstack-client's own rule), else its edge port on
  `LOCALSTACK_HOST` (localhost:4566 by default; the Compose `aws` profile);
- otherwise boto3's own resolution, which honours `AWS_ENDPOINT_URL` and
  `AWS_ENDPOINT_URL_<SERVICE>` (a `moto_server` or LocalStack), then AWS itself.
(tests/test_aws_client.py pins each.)

The region is `AWS_REGION`, then `AWS_DEFAULT_REGION`, then us-east-1 (moto's default), so a
client can always be made; credentials stay boto3's business.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.config import Config

DEFAULT_REGION = "us-east-1"


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def use_localstack() -> bool:
    return os.environ.get("DJS_AWS_LOCALSTACK", "").strip().lower() in ("1", "true", "yes")


def client(service: str, config: Config | None = None) -> Any:
    """A boto3 client for `service`, pointed at LocalStack, an endpoint override, or AWS."""
    # Imported here, not at the top: Lambda's runtime supplies boto3 (the zips do not vendor
    # it), and app.py must import without it (tests/test_package.py imports the zips bare).
    import boto3

    if use_localstack():
        from localstack_client.session import Session  # only the local emulation needs it

        return Session(region_name=region()).client(service, config=config)
    return boto3.session.Session().client(service, region_name=region(), config=config)
