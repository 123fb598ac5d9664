"""Domain errors. The API maps each to an HTTP status in one place (api_app/errors.py)."""

from __future__ import annotations

from typing import Any


class DjsError(Exception):
    """Base of every error djs reports to a caller."""

    code = "error"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DjsError):
    code = "not_found"


class Conflict(DjsError):
    code = "conflict"


class InvalidInput(DjsError):
    code = "validation_error"


class DependencyDown(DjsError):
    """Postgres or Redis did not answer."""

    code = "dependency_unavailable"

    def __init__(self, dependency: str, cause: BaseException | None = None) -> None:
        super().__init__(f"{dependency} is unavailable", {"dependency": dependency})
        self.dependency = dependency
        self.__cause__ = cause
