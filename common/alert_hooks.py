"""A queue's alert hook, set, read and removed by the API (common/upkeep/alerts.py sends them).

Settings only: nothing here is dispatched, so it needs the store and not the job manager.
"""

from __future__ import annotations

from typing import Any

from common.alerts import AlertSettings
from common.audit import Actor, entry
from common.store import Store, alerts


def set_alert(
    store: Store, queue: str, settings: AlertSettings, actor: Actor | None = None
) -> dict[str, Any]:
    """Set a queue's alert hook, audited."""
    audit = entry(actor, "queue_alerts", queue, settings.model_dump(mode="json"))
    with store.connection() as conn:
        return alerts.put_alert_audited(conn, queue, settings, audit)


def remove_alert(store: Store, queue: str, actor: Actor | None = None) -> bool:
    """Remove a queue's alert hook, audited; False if it had none."""
    audit = entry(actor, "queue_alerts_remove", queue)
    with store.connection() as conn:
        return alerts.delete_alert_audited(conn, queue, audit)


def get_alert(store: Store, queue: str) -> dict[str, Any] | None:
    """A queue's alert hook, or None."""
    with store.connection() as conn:
        return alerts.get_alert(conn, queue)
