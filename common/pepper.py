"""The pepper API key hashes are made with, from where the settings say: read once at start-up.

One of three sources, never two (two could disagree, and the keys of the other would all be
refused):
- `DJS_KEY_PEPPER`: the value itself (local runs, Compose, `djs dev`);
- `DJS_KEY_PEPPER_SSM`: the name (or ARN) of an SSM Parameter Store *SecureString*, read
  with decryption (a plain String parameter is refused: the pepper is a secret);
- `DJS_KEY_PEPPER_SECRET`: a Secrets Manager secret's id (name or ARN), its SecretString.

The value is never logged or put in an error message (common/awssecrets.py).
"""

from __future__ import annotations

from common.awssecrets import SecretUnavailable, checked, from_secrets_manager, from_ssm
from common.settings import Settings

# Longer than any sensible pepper (32 random bytes in hex is 64).
MAX_PEPPER_CHARS = 1024
NO_PEPPER = (
    "no key pepper: set DJS_KEY_PEPPER, DJS_KEY_PEPPER_SSM (an SSM SecureString's name) or "
    "DJS_KEY_PEPPER_SECRET (a Secrets Manager secret id); API keys are hashed with it "
    "(make one: python -c 'import secrets; print(secrets.token_hex(32))')"
)


class PepperUnavailable(SecretUnavailable):
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
    try:
        if source == "DJS_KEY_PEPPER":
            value = checked(given[source], source)
        elif source == "DJS_KEY_PEPPER_SSM":
            value = from_ssm(given[source], source)
        else:
            value = from_secrets_manager(given[source], source)
    except SecretUnavailable as exc:
        raise PepperUnavailable(f"the key pepper: {exc}") from exc
    if len(value) > MAX_PEPPER_CHARS:
        raise PepperUnavailable(f"the key pepper from {source} is over {MAX_PEPPER_CHARS} chars")
    return value.encode()
