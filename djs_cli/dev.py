"""`djs dev`: Postgres and Redis (embedded when none answer), migrations, the API and a runner."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

from common.devservers import provide
from common.migrate import migrate
from common.settings import Settings


def run_dev(settings: Settings, args: argparse.Namespace) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    services = provide(settings.database_url, settings.redis_url, Path(args.data_dir).resolve())
    children: list[subprocess.Popen[bytes]] = []
    try:
        for started in services.started:
            print(f"started {started}", flush=True)
        with psycopg.connect(services.database_url, autocommit=True) as conn:
            migrate(conn)
        env = {**os.environ, "DATABASE_URL": services.database_url, "REDIS_URL": services.redis_url}
        djs = [sys.executable, "-m", "djs_cli.main"]
        children.append(
            subprocess.Popen([*djs, "api", "--host", args.host, "--port", str(args.port)], env=env)
        )
        children.append(
            subprocess.Popen([*djs, "worker", "--concurrency", str(args.concurrency)], env=env)
        )
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
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
