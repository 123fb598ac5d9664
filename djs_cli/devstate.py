"""The state file of a running `djs dev`, through which the other djs commands find its servers.

`djs dev` writes ``<data dir>/dev.json`` once its API answers and removes it when it stops
(the data dir is its ``--data-dir``: by default ``$DJS_DATA_DIR``, else ``.djs``). A command
run where DATABASE_URL, REDIS_URL or DJS_REDIS_PREFIX is not set takes what is missing from
that file: the environment always wins, and a file whose `djs dev` is gone (it was killed)
is ignored. The file is a JSON object of named fields; readers ignore fields they do not know.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from common.awssecrets import with_database_url
from common.settings import Settings

FILE_NAME = "dev.json"
DEFAULT_DATA_DIR = ".djs"
# The Settings fields a running `djs dev` can supply.
SERVER_FIELDS = ("database_url", "redis_url", "redis_prefix", "key_pepper")


class DevState(BaseModel):
    """What a running `djs dev` tells the other commands."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    pid: int  # the `djs dev` process: once it is gone the file is stale
    api_url: str
    api_pid: int
    # With its password, if it has one: the file is readable by its owner only.
    database_url: str
    redis_url: str
    redis_prefix: str
    # The pepper its API hashes keys with, and its admin key (djs_cli/devkeys.py).
    key_pepper: str | None = None
    api_key: str | None = None


def default_data_dir() -> Path:
    return Path(os.environ.get("DJS_DATA_DIR") or DEFAULT_DATA_DIR)


def state_file(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def write(path: Path, state: DevState) -> None:
    """Replace the file at once (a reader never sees half of it), mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(state.model_dump_json(indent=2) + "\n")
    os.replace(partial, path)


def _parse(path: Path) -> DevState | None:
    try:
        return DevState.model_validate_json(path.read_bytes())
    except (OSError, ValidationError):
        return None


def read(path: Path) -> DevState | None:
    """The state of the running `djs dev` that wrote `path`; None if there is no such file, it
    does not parse, or its process has gone."""
    state = _parse(path)
    return state if state is not None and _is_running_djs(state.pid) else None


def remove(path: Path, pid: int) -> None:
    """Remove the file if process `pid` wrote it (never another `djs dev`'s)."""
    state = _parse(path)
    if state is not None and state.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _is_running_djs(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    # After a reboot the pid may name another program; where /proc tells, it must be djs dev
    # (`djs dev`, or `python -m djs_cli.main dev`).
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return True
    if argv == [""]:  # nothing to tell by (a process in the middle of exec, a zombie)
        return True
    return "dev" in argv and any(Path(arg).name in ("djs", "djs_cli.main") for arg in argv)


def settings_with_dev_servers() -> Settings:
    """Settings from the environment; the servers it does not name, from a running `djs dev`;
    a database URL kept in AWS, read (common/awssecrets.py)."""
    settings = Settings()
    missing = [name for name in SERVER_FIELDS if name not in settings.model_fields_set]
    if settings.key_pepper_ssm or settings.key_pepper_secret:  # the pepper has its source
        missing = [name for name in missing if name != "key_pepper"]
    if settings.database_url_ssm or settings.database_url_secret:
        missing = [name for name in missing if name != "database_url"]
    state = read(state_file(default_data_dir())) if missing else None
    if state is not None:
        settings = Settings(**{name: getattr(state, name) for name in missing})
    return with_database_url(settings)
