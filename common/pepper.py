"""The pepper API key hashes are made with, from where the settings say: read once at start-up.

One of three sources, never two (two could disagree, and the keys of the other would all be
refused):
- `DJS_KEY_PEPPER`: the value itself (local runs, Compose, `djs dev`);
- `DJS_KEY_PEPPER_SSM`: the name (or ARN) of an SSM Parameter Store *SecureString*, read
  with decryption (a plain String parameter is refused: the pepper is a secret);
- `DJS_KEY_PEPPER_SECRET`: a Secrets Manager secret's id (name or ARN), its SecretString.

The value is never logged or put in an error message: errors name the source and what is
wrong with it. A value with whitespace at either end is refused rather than trimmed: the
same pepper given elsewhere without it (DJS_KEY_PEPPER="$(aws ssm ...)") would hash every
key differently.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from common import aws
from common.settings import Settings

# Longer than any sensible pepper (32 random bytes in hex is 64), shorter than what AWS holds.
MAX_PEPPER_CHARS = 1024
NO_PEPPER = (
    "no key pepper: set DJS_KEY_PEPPER, DJS_KEY_PEPPER_SSM (an SSM SecureString's name) or "
    "DJS_KEY_PEPPER_SECRET (a Secrets Manager secret id); API keys are hashed with it "
    "(make one: python -c 'import secrets; print(secrets.token_hex(32))')"
)


class PepperUnavailable(Exception):
    """The pepper is not set, set twice, or its source cannot give it: nothing can start."""


def key_pepper(settings: Settings) -> bytes:
    """The pepper from the one source the settings name; PepperUnavailable if none can."""
    given = {
        "DJS_KEY_PEPPER": settings.key_pepper.get_secret_value() if settings.key_pepper else "",
        "DJS_KEY_PEPPER_SSM": settings.key_pepper_ssm or "",
        "DJS_KEY_PEPPER_SECRET": settings.key_pepper_secret or "",
    }
    named = [name for name, value in given.items() if value]
    if not named:
        raise PepperUnavailable(NO_PEPPER)
    if len(named) > 1:
        raise PepperUnavailable(f"set one source of the key pepper, not {' and '.join(named)}")
    source = named[0]
    if source == "DJS_KEY_PEPPER":
        value = given[source]
    elif source == "DJS_KEY_PEPPER_SSM":
        value = _from_ssm(given[source])
    else:
        value = _from_secrets_manager(given[source])
    _check(value, f"{source}={given[source]}" if source != "DJS_KEY_PEPPER" else source)
    return value.encode()


def _check(value: str, where: str) -> None:
    if not value:
        raise PepperUnavailable(f"the key pepper from {where} is empty")
    if len(value) > MAX_PEPPER_CHARS:
        raise PepperUnavailable(f"the key pepper from {where} is over {MAX_PEPPER_CHARS} chars")
    if value != value.strip():
        raise PepperUnavailable(
            f"the key pepper from {where} starts or ends with whitespace (a newline?): "
            "store it without"
        )


def _from_ssm(name: str) -> str:
    where = f"SSM parameter {name}"
    try:
        parameter = aws.client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]
    except (ClientError, BotoCoreError) as exc:
        raise PepperUnavailable(f"cannot read the key pepper from {where}: {_why(exc)}") from exc
    if parameter.get("Type") != "SecureString":
        raise PepperUnavailable(
            f"{where} is a {parameter.get('Type')}, not a SecureString: store the pepper "
            "encrypted (aws ssm put-parameter --type SecureString)"
        )
    return str(parameter.get("Value", ""))


def _from_secrets_manager(secret_id: str) -> str:
    where = f"Secrets Manager secret {secret_id}"
    try:
        secret = aws.client("secretsmanager").get_secret_value(SecretId=secret_id)
    except (ClientError, BotoCoreError) as exc:
        raise PepperUnavailable(f"cannot read the key pepper from {where}: {_why(exc)}") from exc
    if "SecretString" not in secret:
        raise PepperUnavailable(f"{where} holds binary data: store the pepper as a string")
    return str(secret["SecretString"])


def _why(exc: BaseException) -> str:
    """What AWS said (its error code and message), never a value: neither holds the secret."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    return str(exc) or type(exc).__name__
