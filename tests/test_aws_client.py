"""Where common.aws's clients connect: a moto server through AWS_ENDPOINT_URL, LocalStack
with DJS_AWS_LOCALSTACK=1 (its endpoint only: no LocalStack runs here), AWS otherwise."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from common import aws
from tests.aws_helpers import clean_aws_env, moto_server


@pytest.fixture
def moto_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    clean_aws_env(monkeypatch)
    yield from moto_server()


def test_aws_endpoint_url_sends_every_client_to_the_moto_server(
    moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    sqs = aws.client("sqs")
    assert sqs.meta.endpoint_url == moto_url
    url = sqs.create_queue(QueueName="djs-endpoint-check")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    aws.client("s3").create_bucket(Bucket="djs-endpoint-check")
    # Seen from a client made without common.aws, pointed at the server by hand.
    direct = boto3.client("sqs", endpoint_url=moto_url, region_name="us-east-1")
    [message] = direct.receive_message(QueueUrl=url)["Messages"]
    assert message["Body"] == "hello"
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")
    assert "djs-endpoint-check" in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_a_service_s_own_endpoint_variable_wins_for_that_service(
    moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", moto_url)
    ssm = aws.client("ssm")
    ssm.put_parameter(Name="/djs/check", Value="v", Type="String")
    assert ssm.meta.endpoint_url == moto_url
    assert aws.client("sqs").meta.endpoint_url == "http://127.0.0.1:9"


def test_localstack_mode_goes_to_localstack_s_edge_port(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_aws_env(monkeypatch, region="eu-central-1")
    monkeypatch.setenv("DJS_AWS_LOCALSTACK", "1")
    for service in ("lambda", "sqs", "s3", "ssm", "secretsmanager"):
        client = aws.client(service)
        assert client.meta.endpoint_url == "http://localhost:4566", service
        assert client.meta.region_name == "eu-central-1", service
    monkeypatch.setenv("LOCALSTACK_HOST", "localstack:4566")  # inside the Compose network
    assert aws.client("sqs").meta.endpoint_url == "http://localstack:4566"
    # localstack-client's own rule: an AWS_ENDPOINT_URL, where set, is LocalStack's address.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4577")
    assert aws.client("s3").meta.endpoint_url == "http://127.0.0.1:4577"


def test_without_an_override_the_client_goes_to_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_aws_env(monkeypatch, region="eu-west-1")
    monkeypatch.setenv("DJS_AWS_LOCALSTACK", "0")
    assert aws.client("sqs").meta.endpoint_url == "https://sqs.eu-west-1.amazonaws.com"
    assert not aws.use_localstack()
