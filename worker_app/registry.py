"""The one table from job type to handler; handler modules register into it."""

from __future__ import annotations

from common.handlers import HandlerRegistry

registry = HandlerRegistry()
