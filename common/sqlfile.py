"""Named SQL blocks loaded once from .sql files (`-- name: claim_jobs` starts a block)."""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def load_queries(filename: str) -> dict[str, str]:
    """Return {name: sql} for every `-- name:` block in common/sql/<filename>.

    A block whose name starts with `_` is a fragment: `{{name}}` elsewhere is replaced by it
    as written (without its comment lines), and it is not returned itself.
    """
    text = resources.files("common").joinpath("sql", filename).read_text()
    parts = _NAME.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    blocks = {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}
    fragments = {
        name[1:]: "\n".join(ln for ln in body.splitlines() if not ln.startswith("--"))
        for name, body in blocks.items()
        if name.startswith("_")
    }
    queries = {}
    for name, body in blocks.items():
        if name.startswith("_"):
            continue
        for fragment, sql in fragments.items():
            body = body.replace("{{" + fragment + "}}", sql)
        queries[name] = body
    return queries


def migration_files() -> list[tuple[int, str, str]]:
    """Return (number, filename, sql) for each numbered migration, in order."""
    folder = resources.files("common").joinpath("sql", "migrations")
    found = []
    for entry in folder.iterdir():
        match = re.match(r"^(\d+)_\w+\.sql$", entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text()))
    return sorted(found)
