"""common/redact.py: sensitive fields at any depth, any case; nothing else touched; and the
JSON log formatter redacting context values (common/logs.py)."""

from __future__ import annotations

import json
import logging

from common.logs import JsonFormatter
from common.redact import REDACTED, redact, sensitive_names

NAMES = sensitive_names(" Password,token,, API_KEY ")


def test_names_are_lower_cased_and_blanks_dropped() -> None:
    assert frozenset({"password", "token", "api_key"}) == NAMES
    assert sensitive_names("") == frozenset()


def test_sensitive_values_are_replaced_at_any_depth_and_in_lists() -> None:
    value = {
        "user": "a",
        "PASSWORD": "hunter2",
        "nested": {"Token": {"deep": "t"}, "ok": [1, {"api_key": "k", "keep": "v"}]},
    }
    assert redact(value, NAMES) == {
        "user": "a",
        "PASSWORD": REDACTED,
        "nested": {"Token": REDACTED, "ok": [1, {"api_key": REDACTED, "keep": "v"}]},
    }
    assert value["PASSWORD"] == "hunter2"  # the input is left as it was


def test_nothing_to_redact_is_the_same_object() -> None:
    value = {"a": [1, {"b": "c"}], "d": None}
    assert redact(value, NAMES) is value
    assert redact({"password": "x"}, frozenset()) == {"password": "x"}
    assert redact("password", NAMES) == "password"  # a value, not a field name


def test_the_json_formatter_redacts_context_values() -> None:
    record = logging.LogRecord("djs.t", logging.INFO, __file__, 1, "m %d", (1,), None)
    record.payload = {"user": "a", "password": "hunter2"}
    record.token = "t"
    line = json.loads(JsonFormatter(NAMES).format(record))
    assert line["msg"] == "m 1" and line["level"] == "info" and line["logger"] == "djs.t"
    assert line["payload"] == {"user": "a", "password": REDACTED}
    assert line["token"] == REDACTED


def test_the_json_formatter_writes_exceptions_as_fields() -> None:
    try:
        raise ValueError("bad thing")
    except ValueError:
        record = logging.LogRecord("djs.t", logging.ERROR, __file__, 1, "oops", None, None)
        import sys

        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(record))
    assert (line["exc_type"], line["exc"]) == ("ValueError", "bad thing")
    assert "Traceback" in line["traceback"] and "bad thing" in line["traceback"]
