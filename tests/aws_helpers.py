"""AWS for tests: fake credentials and no endpoint override, so boto3 reaches only moto
(in-process through `mock_aws`, or a `ThreadedMotoServer` on 127.0.0.1)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

# Variables that would send boto3 (or common.aws) somewhere else than the test says.
_ROUTING = ("AWS_ENDPOINT_URL", "DJS_AWS_LOCALSTACK", "AWS_PROFILE", "LOCALSTACK_HOST")


def clean_aws_env(monkeypatch: pytest.MonkeyPatch, region: str = "us-east-1") -> None:
    """Fake credentials, `region`, and no endpoint override of any service."""
    for name in list(os.environ):
        if name.startswith(_ROUTING) or name.startswith("AWS_ENDPOINT_URL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_REGION", region)
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)  # what boto3 itself reads


def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 (a port the OS picks), for a fixture: yields its URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
