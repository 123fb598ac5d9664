"""Named SQL blocks loaded once from .sql files (`-- name: claim_jobs` starts a block)."""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_FRAGMENT = re.compile(r"\{\{(\w+)\}\}")


def load_queries(filename: str) -> dict[str, str]:
    """Return {name: sql} for every `-- name:` block in common/store/sql/<filename>.

    A block whose name starts with `_` is a fragment: `{{name}}` elsewhere is replaced by it
    as written (without its comment lines), and it is not returned itself. An unknown
    `{{name}}` is a KeyError at import.
    """
    text = resources.files("common.store").joinpath("sql", filename).read_text()
    parts = _NAME.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    blocks = {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}
    fragments = {
        name[1:]: "\n".join(ln for ln in body.splitlines() if not ln.startswith("--"))
        for name, body in blocks.items()
        if name.startswith("_")
    }
    return {name: _expand(body, fragments) for name, body in blocks.items() if name[0] != "_"}


def _expand(body: str, fragments: dict[str, str]) -> str:
    """Replace `{{name}}` by its fragment, fragments inside fragments too."""
    for _ in range(10):  # fragments nest a level or two; a cycle would loop for ever
        expanded = _FRAGMENT.sub(lambda m: fragments[m.group(1)], body)
        if expanded == body:
            return body
        body = expanded
    raise ValueError("SQL fragments nest too deeply (a cycle?)")


def migration_files() -> list[tuple[int, str, str]]:
    """Return (number, filename, sql) for each numbered migration, in order."""
    folder = resources.files("common.store").joinpath("sql", "migrations")
    found = []
    for entry in folder.iterdir():
        match = re.match(r"^(\d+)_\w+\.sql$", entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text()))
    return sorted(found)


# Every query djs runs, by name.
QUERIES = load_queries("queries.sql")
