"""DATABASE_URL kept in SSM Parameter Store or Secrets Manager (against moto): read once when
the services connect (and by the CLI), as a URL or as an RDS credentials secret's JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from moto import mock_aws
from psycopg.conninfo import conninfo_to_dict

from common.awssecrets import SecretUnavailable, with_database_url
from common.services import Services
from common.settings import Settings
from tests.aws_helpers import clean_aws_env, moto_server
from tests.helpers import run_djs

PARAMETER = "/djs/prod/database-url"
SECRET = "djs/prod/database"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    clean_aws_env(monkeypatch)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with mock_aws():
        yield


def _current_database(settings: Settings) -> str:
    services = Services.connect(settings)
    try:
        with services.store.connection() as conn:
            row = conn.execute("SELECT current_database()").fetchone()
    finally:
        services.close()
    assert row is not None
    return str(row[0] if isinstance(row, tuple) else next(iter(row.values())))


def _parts(database_url: str) -> dict[str, Any]:
    """The test database's conninfo (`user=... dbname=...`) as fields."""
    parts = conninfo_to_dict(database_url)
    return {
        "username": parts.get("user", "postgres"),
        "host": parts.get("host", "127.0.0.1"),
        "port": int(parts.get("port", 5432)),
        "dbname": parts["dbname"],
    }


def _as_url(database_url: str) -> str:
    p = _parts(database_url)
    return f"postgresql://{p['username']}@{p['host']}:{p['port']}/{p['dbname']}"


def test_the_services_connect_with_the_url_from_ssm(aws: None, database_url: str) -> None:
    url = _as_url(database_url)
    boto3.client("ssm").put_parameter(Name=PARAMETER, Value=url, Type="SecureString")
    settings = Settings(database_url_ssm=PARAMETER)
    assert "database_url" not in settings.model_fields_set
    resolved = with_database_url(settings)
    assert resolved.database_url == url and resolved.database_url_ssm is None
    assert with_database_url(resolved) is resolved  # read once: nothing left to read
    assert _current_database(settings) == _parts(database_url)["dbname"]


def test_an_rds_credentials_secret_becomes_a_url(aws: None, database_url: str) -> None:
    # Trust authentication here ignores the password; its characters must survive quoting.
    fields = {"engine": "postgres", **_parts(database_url), "password": "p@ss:/w#rd?"}
    boto3.client("secretsmanager").create_secret(Name=SECRET, SecretString=json.dumps(fields))
    settings = Settings(database_url_secret=SECRET)
    url = with_database_url(settings).database_url
    assert urlsplit(url).password == "p%40ss%3A%2Fw%23rd%3F"
    assert conninfo_to_dict(url)["password"] == "p@ss:/w#rd?"
    assert _current_database(settings) == fields["dbname"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("db.example.com", "neither a postgresql:// URL, a conninfo string nor"),
        ("{not json", "not a JSON object"),
        ('{"username": "djs", "host": "db"}', "has no password"),
        ('{"username": "djs", "password": "x", "host": "db", "port": 0}', "not a port"),
        ('{"username": "djs", "password": "x", "host": "db/x"}', "not a host name"),
        ("postgresql://djs@db/djs\n", "whitespace"),
    ],
    ids=["bare-host", "bad-json", "no-password", "port", "host", "newline"],
)
def test_a_malformed_secret_is_refused_unshown(aws: None, value: str, message: str) -> None:
    boto3.client("secretsmanager").create_secret(Name=SECRET, SecretString=value)
    with pytest.raises(SecretUnavailable, match=message) as refused:
        Services.connect(Settings(database_url_secret=SECRET))
    assert "DJS_DATABASE_URL_SECRET" in str(refused.value)
    assert '"x"' not in str(refused.value) and "djs@db" not in str(refused.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"database_url_ssm": "/djs/absent"}, "ParameterNotFound"),
        ({"database_url_ssm": PARAMETER, "database_url_secret": SECRET}, "not both"),
        ({"database_url_ssm": PARAMETER, "database_url": "postgresql://x@y/z"}, "both set"),
    ],
    ids=["absent", "two-sources", "and-DATABASE_URL"],
)
def test_no_start_without_one_readable_source(
    aws: None, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(SecretUnavailable, match=message):
        Services.connect(Settings(**fields))


@pytest.fixture
def moto_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    clean_aws_env(monkeypatch)
    yield from moto_server()


def test_the_cli_reads_the_url_from_secrets_manager(
    moto_url: str, database_url: str, env: dict[str, str], tmp_path: Path
) -> None:
    secrets = boto3.client("secretsmanager", endpoint_url=moto_url)
    secrets.create_secret(Name=SECRET, SecretString=database_url)
    cloud = {k: v for k, v in env.items() if k != "DATABASE_URL"}
    cloud.update(AWS_ENDPOINT_URL=moto_url, DJS_DATABASE_URL_SECRET=SECRET)
    made = run_djs(["keys", "create", "--role", "viewer", "--name", "via-secret"], cloud, tmp_path)
    assert made.returncode == 0, made.stderr
    listed = run_djs(["keys", "list"], {**env, "DJS_KEY_PEPPER": "unused"}, tmp_path)
    assert "via-secret" in listed.stdout  # in the test's own database, read directly
    cloud["DJS_DATABASE_URL_SECRET"] = "djs/absent"
    missing = run_djs(["keys", "list"], cloud, tmp_path)
    assert missing.returncode == 1, missing.stderr
    assert "DJS_DATABASE_URL_SECRET=djs/absent" in missing.stderr
    assert "Traceback" not in missing.stderr
