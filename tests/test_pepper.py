"""The API's pepper from SSM Parameter Store or Secrets Manager (against moto): the same key
verifies with the pepper from any source; a wrong or missing one stops it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws
from pydantic import ValidationError

from api_app.factory import NoKeyPepper, create_app
from common.pepper import PepperUnavailable, key_pepper
from common.services import Services
from common.settings import Settings
from tests.aws_helpers import clean_aws_env, moto_server
from tests.helpers import run_djs
from tests.keys import PEPPER, bearer, keyed, make_key

PARAMETER = "/djs/prod/key-pepper"
SECRET = "djs/prod/key-pepper"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    clean_aws_env(monkeypatch)
    with mock_aws():
        yield


def _store(source: str, value: str | bytes, kind: str = "SecureString") -> dict[str, Any]:
    """Put `value` where `source` names, and the settings that read it from there."""
    if source == "ssm":
        ssm = boto3.client("ssm")
        ssm.put_parameter(Name=PARAMETER, Value=value, Type=kind, Overwrite=True)
        return {"key_pepper": None, "key_pepper_ssm": PARAMETER}
    secrets = boto3.client("secretsmanager")
    field = "SecretBinary" if isinstance(value, bytes) else "SecretString"
    secrets.create_secret(Name=SECRET, **{field: value})
    return {"key_pepper": None, "key_pepper_secret": SECRET}


@contextmanager
def _api(settings: Settings, **update: Any) -> Iterator[Client]:
    services = Services.connect(settings.model_copy(update=update))
    try:
        with keyed(Client(create_app(services)), None) as client:
            yield client
    finally:
        services.close()


@pytest.mark.parametrize("source", ["ssm", "secret"])
def test_a_key_verifies_with_the_pepper_from_aws(
    aws: None, settings: Settings, source: str
) -> None:
    key = make_key(settings.database_url, "viewer", "cloud-reader")  # hashed with PEPPER
    with _api(settings, **_store(source, PEPPER)) as client:
        me = client.http.get("/me", headers=bearer(key))
        assert me.status_code == 200, me.body
        assert json.loads(me.body)["name"] == "cloud-reader"
        # Read once, at start-up: the API does not need the parameter any more.
        if source == "ssm":
            boto3.client("ssm").delete_parameter(Name=PARAMETER)
        else:
            boto3.client("secretsmanager").delete_secret(
                SecretId=SECRET, ForceDeleteWithoutRecovery=True
            )
        other = make_key(settings.database_url, "viewer", "second-reader")
        assert client.http.get("/me", headers=bearer(other)).status_code == 200


@pytest.mark.parametrize("source", ["ssm", "secret"])
def test_the_pepper_is_not_logged_even_at_debug(
    aws: None, source: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(**_store(source, PEPPER))
    with caplog.at_level(logging.DEBUG):  # the root logger, as DJS_LOG_LEVEL=debug sets it
        assert key_pepper(settings) == PEPPER.encode()
        boto3.client("sts").get_caller_identity()  # botocore's debug logs are back after
    assert PEPPER not in caplog.text
    assert "Response body" in caplog.text


@pytest.mark.parametrize("source", ["ssm", "secret"])
def test_a_wrong_pepper_refuses_the_key(aws: None, settings: Settings, source: str) -> None:
    key = make_key(settings.database_url, "admin", "cloud-admin")
    with _api(settings, **_store(source, PEPPER + "x")) as client:
        refused = client.http.get("/me", headers=bearer(key))
    assert refused.status_code == 401


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"key_pepper_ssm": "/djs/absent"}, "DJS_KEY_PEPPER_SSM=/djs/absent: ParameterNotFound"),
        (
            {"key_pepper_secret": "djs/absent"},
            "DJS_KEY_PEPPER_SECRET=djs/absent: ResourceNotFoundException",
        ),
        ({"key_pepper_ssm": PARAMETER, "key_pepper_secret": SECRET}, "not DJS_KEY_PEPPER_SSM"),
    ],
)
def test_the_api_does_not_start_without_a_readable_pepper(
    aws: None, settings: Settings, update: dict[str, Any], message: str
) -> None:
    services = Services.connect(settings.model_copy(update={"key_pepper": None, **update}))
    try:
        with pytest.raises(NoKeyPepper, match=message):
            create_app(services)
    finally:
        services.close()


@pytest.mark.parametrize(
    ("source", "value", "kind", "message"),
    [
        ("ssm", PEPPER, "String", "not a SecureString"),
        ("ssm", PEPPER + "\n", "SecureString", "whitespace"),
        ("secret", " " + PEPPER, "", "whitespace"),
        ("secret", PEPPER.encode(), "", "binary"),
        ("secret", "p" * 1025, "", "over 1024"),
    ],
    ids=["ssm-string", "ssm-newline", "secret-space", "secret-binary", "secret-long"],
)
def test_a_pepper_that_is_not_a_clean_secret_is_refused_unshown(
    aws: None, source: str, value: str | bytes, kind: str, message: str
) -> None:
    settings = Settings(**_store(source, value, kind or "SecureString"))
    with pytest.raises(PepperUnavailable, match=message) as refused:
        key_pepper(settings)
    assert PEPPER not in str(refused.value) and "ppp" not in str(refused.value)


def test_the_direct_pepper_still_wins_alone() -> None:
    assert key_pepper(Settings(key_pepper=PEPPER)) == PEPPER.encode()
    with pytest.raises(PepperUnavailable, match="no key pepper"):
        key_pepper(Settings(key_pepper=""))
    with pytest.raises(PepperUnavailable, match="not DJS_KEY_PEPPER and DJS_KEY_PEPPER_SSM"):
        key_pepper(Settings(key_pepper=PEPPER, key_pepper_ssm=PARAMETER))


@pytest.mark.parametrize(
    "update",
    [
        {"key_pepper_ssm": "a name"},
        {"key_pepper_ssm": "/x" * 1025},
        {"key_pepper_secret": "djs/pepper;drop"},
        {"key_pepper_secret": ""},
    ],
)
def test_bad_source_names_are_refused_by_the_settings(update: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Settings(**update)


@pytest.fixture
def moto_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    clean_aws_env(monkeypatch)
    yield from moto_server()


def test_djs_keys_and_the_api_share_the_ssm_pepper(
    moto_url: str,
    settings: Settings,
    env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`djs keys create` hashes with the parameter's pepper; the API verifies with it."""
    ssm = boto3.client("ssm", endpoint_url=moto_url)
    ssm.put_parameter(Name=PARAMETER, Value="from-ssm-" + PEPPER, Type="SecureString")
    aws_env = {k: v for k, v in env.items() if k != "DJS_KEY_PEPPER"}
    aws_env.update(AWS_ENDPOINT_URL=moto_url, DJS_KEY_PEPPER_SSM=PARAMETER)
    made = run_djs(["keys", "create", "--role", "viewer", "--name", "by-cli"], aws_env, tmp_path)
    assert made.returncode == 0, made.stderr
    key = made.stdout.split()[0]
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)  # the API reads it through common.aws
    with _api(settings, key_pepper=None, key_pepper_ssm=PARAMETER) as client:
        assert client.http.get("/me", headers=bearer(key)).status_code == 200
    with _api(settings) as client:  # the test run's own pepper: not the one it was made with
        assert client.http.get("/me", headers=bearer(key)).status_code == 401
