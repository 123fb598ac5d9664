"""The Postgres store, the system of record: pools, named queries, the insert path, rows."""

from common.store.store import Store

__all__ = ["Store"]
