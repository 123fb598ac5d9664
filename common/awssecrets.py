"""Secrets read once at start-up from SSM Parameter Store or Secrets Manager (through
common.aws): the API's key pepper (common/pepper.py) and the database URL.

Errors name the setting and the source and what AWS said (its error code and message), never
a value. A value with whitespace at either end is refused rather than trimmed: the same secret
given elsewhere without it would not match.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg.conninfo import conninfo_to_dict

from common import aws
from common.settings import Settings

# Longer than any database URL or pepper, shorter than what either service holds.
MAX_SECRET_CHARS = 4096
_URL_SCHEMES = ("postgresql://", "postgres://")


class SecretUnavailable(Exception):
    """A secret the settings name is absent, unreadable or malformed: nothing can start."""


@contextmanager
def _unlogged() -> Iterator[None]:
    """botocore logs every response body at DEBUG (botocore.parsers): with the root logger at
    debug (DJS_LOG_LEVEL=debug, a Lambda's application log level DEBUG) the secret would be
    in the logs. Its loggers stay at WARNING while a secret is read."""
    botocore = logging.getLogger("botocore")
    level = botocore.level
    botocore.setLevel(max(logging.WARNING, level))
    try:
        yield
    finally:
        botocore.setLevel(level)


def from_ssm(name: str, setting: str) -> str:
    """The decrypted value of the SecureString parameter `name`."""
    from botocore.exceptions import BotoCoreError, ClientError  # not at import: see _why

    where = f"{setting}={name}"
    try:
        with _unlogged():
            ssm = aws.client("ssm")
            parameter = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
    except (ClientError, BotoCoreError) as exc:
        raise SecretUnavailable(f"cannot read SSM parameter {where}: {_why(exc)}") from exc
    if parameter.get("Type") != "SecureString":
        raise SecretUnavailable(
            f"SSM parameter {where} is a {parameter.get('Type')}, not a SecureString: store "
            "it encrypted (aws ssm put-parameter --type SecureString)"
        )
    return checked(str(parameter.get("Value", "")), f"SSM parameter {where}")


def from_secrets_manager(secret_id: str, setting: str) -> str:
    """The SecretString of the secret `secret_id`."""
    from botocore.exceptions import BotoCoreError, ClientError  # not at import: see _why

    where = f"{setting}={secret_id}"
    try:
        with _unlogged():
            secret = aws.client("secretsmanager").get_secret_value(SecretId=secret_id)
    except (ClientError, BotoCoreError) as exc:
        raise SecretUnavailable(f"cannot read Secrets Manager secret {where}: {_why(exc)}") from exc
    if "SecretString" not in secret:
        raise SecretUnavailable(f"Secrets Manager secret {where} holds binary data, not a string")
    return checked(str(secret["SecretString"]), f"Secrets Manager secret {where}")


def checked(value: str, where: str) -> str:
    if not value:
        raise SecretUnavailable(f"{where} is empty")
    if len(value) > MAX_SECRET_CHARS:
        raise SecretUnavailable(f"{where} is over {MAX_SECRET_CHARS} characters")
    if value != value.strip():
        raise SecretUnavailable(
            f"{where} starts or ends with whitespace (a newline?): store it without"
        )
    return value


# botocore is imported where a secret is read, not with this module: the Lambda zips hold
# no botocore (the runtime has its own), and the API zip imports this module bare.


def _why(exc: BaseException) -> str:
    response = getattr(exc, "response", None)  # a botocore ClientError
    if isinstance(response, dict):
        error = response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    return str(exc) or type(exc).__name__


def with_database_url(settings: Settings) -> Settings:
    """`settings` with the database URL read from DJS_DATABASE_URL_SSM or _SECRET, if one is
    set (then DATABASE_URL must not be); unchanged otherwise. Idempotent: the result names
    no source any more."""
    ssm, secret = settings.database_url_ssm, settings.database_url_secret
    if not ssm and not secret:
        return settings
    if ssm and secret:
        raise SecretUnavailable("set DJS_DATABASE_URL_SSM or DJS_DATABASE_URL_SECRET, not both")
    if "database_url" in settings.model_fields_set:
        raise SecretUnavailable(
            "DATABASE_URL and DJS_DATABASE_URL_SSM/_SECRET are both set: set one source"
        )
    if ssm:
        url = database_url_of(from_ssm(ssm, "DJS_DATABASE_URL_SSM"), "DJS_DATABASE_URL_SSM")
    else:
        value = from_secrets_manager(secret or "", "DJS_DATABASE_URL_SECRET")
        url = database_url_of(value, "DJS_DATABASE_URL_SECRET")
    update = {"database_url": url, "database_url_ssm": None, "database_url_secret": None}
    return settings.model_copy(update=update)


def _is_conninfo(value: str) -> bool:
    try:
        return bool(conninfo_to_dict(value))
    except psycopg.Error:
        return False


def database_url_of(value: str, setting: str) -> str:
    """A postgresql:// URL or libpq conninfo as stored, or a URL made from the JSON object an
    RDS credentials secret holds (`username`, `password`, `host`, optional `port`, `dbname`)."""
    if not value.startswith("{"):
        if value.startswith(_URL_SCHEMES) or _is_conninfo(value):
            return value
        raise SecretUnavailable(
            f"{setting}: the value is neither a postgresql:// URL, a conninfo string nor a "
            "JSON object"
        )
    try:
        fields: Any = json.loads(value)
    except ValueError:
        fields = None
    if not isinstance(fields, dict):
        raise SecretUnavailable(f"{setting}: the value is not a JSON object")
    missing = [k for k in ("username", "password", "host") if not isinstance(fields.get(k), str)]
    if missing:
        raise SecretUnavailable(f"{setting}: the JSON secret has no {', '.join(missing)}")
    port = fields.get("port", 5432)
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise SecretUnavailable(f"{setting}: the JSON secret's port is not a port number")
    dbname = fields.get("dbname") or "postgres"
    if not isinstance(dbname, str):
        raise SecretUnavailable(f"{setting}: the JSON secret's dbname is not a string")
    user, password = quote(fields["username"], safe=""), quote(fields["password"], safe="")
    host = fields["host"]
    if not host or any(c in host for c in "/@?#[] "):
        raise SecretUnavailable(f"{setting}: the JSON secret's host is not a host name")
    return f"postgresql://{user}:{password}@{host}:{port}/{quote(dbname, safe='')}"
