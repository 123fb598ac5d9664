"""How the CLI reports a failed command: one line, `error: ...`, on stderr, and an exit code.

Bad usage or input exits 2, as argparse does; a failure at run time (a dependency down, a job
not found or in the wrong state, a port in use) exits 1. Any other exception is a bug and
keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import redis
from pydantic import ValidationError

from common.awssecrets import SecretUnavailable
from common.errors import DependencyDown, DjsError, InvalidInput
from common.redact import without_password
from common.settings import Settings

USAGE = 2
FAILURE = 1


class CliError(Exception):
    """A failure the CLI reports in its own words."""

    code = FAILURE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(CliError):
    """The command line asks for something the command cannot do."""

    code = USAGE


@dataclass(frozen=True)
class Failure:
    message: str
    code: int


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _fields(exc: ValidationError) -> str:
    """`priority: Input should be ...`, one clause per field, as the API's 422 names them."""
    clauses = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        clauses.append(f"{where}: {message}" if where else message)
    return "; ".join(clauses)


def _unavailable(dependency: str, exc: BaseException, settings: Settings | None) -> str:
    """`postgres is unavailable (its URL: why)`: the URL says which server was tried."""
    cause = exc.__cause__ if isinstance(exc, DependencyDown) else exc
    why = _first_line(cause) if cause is not None else "it does not answer"
    urls = {"postgres": settings.database_url, "redis": settings.redis_url} if settings else {}
    where = f"{without_password(urls[dependency])}: " if dependency in urls else ""
    return f"{dependency} is unavailable ({where}{why})"


Describe = Callable[[Any, Settings | None], str]

# First match wins: subclasses before their bases.
_KNOWN: tuple[tuple[type[BaseException], int | None, Describe], ...] = (
    (CliError, None, lambda exc, _: exc.message),
    (SecretUnavailable, FAILURE, lambda exc, _: str(exc)),  # the pepper, the database URL
    (ValidationError, USAGE, lambda exc, _: _fields(exc)),
    (InvalidInput, USAGE, lambda exc, _: exc.message),
    (DependencyDown, FAILURE, lambda exc, s: _unavailable(exc.dependency, exc, s)),
    (DjsError, FAILURE, lambda exc, _: exc.message),  # NotFound, Conflict: the API's words
    (psycopg.OperationalError, FAILURE, lambda exc, s: _unavailable("postgres", exc, s)),
    (redis.ConnectionError, FAILURE, lambda exc, s: _unavailable("redis", exc, s)),
    (redis.TimeoutError, FAILURE, lambda exc, s: _unavailable("redis", exc, s)),
)


def explain(exc: BaseException, settings: Settings | None) -> Failure | None:
    """The message and exit code for a failure the user can act on; None for a bug."""
    for kind, code, describe in _KNOWN:
        if isinstance(exc, kind):
            exit_code = code if code is not None else getattr(exc, "code", FAILURE)
            return Failure(describe(exc, settings), exit_code)
    return None
