"""Background upkeep inside every runner: the janitor, the reconciler and the listener."""
