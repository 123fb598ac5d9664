"""The checks that keep the example handlers inside their bounds: a report path below the
reports directory, and a webhook that reaches only public addresses.

A job's payload is written by whoever can submit jobs: without these, `csv_report` wrote
anywhere the runner could (a `.pth` file in site-packages ran code at the next start) and
`webhook` fetched the API's own admin routes and the cloud metadata address.
"""

from __future__ import annotations

import os
from pathlib import Path

from common.handlers import NonRetryableError
from common.netguard import IPAddress, allowed, is_public, vetted_address

# The address guard lives in common/netguard.py (the alert loop uses it too); named here for
# the webhook handler and the tests that import it from this module.
__all__ = ["IPAddress", "allowed", "is_public", "open_new_file", "report_path", "vetted_address"]


def report_path(base: Path, relative: str, suffix: str = ".csv") -> Path:
    """`relative` resolved below `base` (symlinks included); NonRetryableError otherwise."""
    if not relative or Path(relative).is_absolute():
        raise NonRetryableError(f"path must be relative to the reports directory: {relative!r}")
    if not relative.endswith(suffix):
        raise NonRetryableError(f"path must end with {suffix}: {relative!r}")
    root = base.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root) or target == root:
        raise NonRetryableError(f"path leaves the reports directory: {relative!r}")
    return target


def open_new_file(path: Path) -> int:
    """Open for writing without following a symlink planted at the last moment."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    try:
        return os.open(path, flags, 0o644)
    except OSError as exc:
        raise NonRetryableError(f"cannot write {path.name}: {exc.strerror}") from exc
