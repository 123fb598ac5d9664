"""A real three-master Redis Cluster on 127.0.0.1 for tests/test_redis_cluster.py: its own
redis-server processes in a temporary directory, on free ports, killed after."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest
import redis
from redis.crc import key_slot

from tests.helpers import WAIT_S, free_port

MASTERS = 3


def _require(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.fail(
            f"{tool} is not on PATH: the Redis Cluster tests need redis-server and "
            "redis-cli (Redis 7 or later) to start a cluster of their own"
        )
    return found


def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"the test Redis Cluster: {what} within {WAIT_S} s")
        time.sleep(0.05)


def _answers(port: int) -> bool:
    client = redis.Redis(port=port, socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


def _state_ok(port: int) -> bool:
    client = redis.Redis(port=port, socket_timeout=2)
    try:
        return bool(client.cluster("INFO").get("cluster_state") == "ok")
    finally:
        client.close()


def _start(folder: Path, logs: list[IO[bytes]]) -> tuple[list[int], list[subprocess.Popen[bytes]]]:
    server = _require("redis-server")
    ports, nodes = [], []
    for n in range(MASTERS):
        port, bus = free_port(), free_port()  # the bus port too: port + 10000 may be taken
        log = (folder / f"node{n}.log").open("wb")
        logs.append(log)
        args = [
            server,
            "--port",
            str(port),
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            str(bus),
            "--cluster-config-file",
            str(folder / f"nodes{n}.conf"),
            "--save",
            "",
            "--appendonly",
            "no",
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
        ]
        nodes.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT))
        ports.append(port)
    return ports, nodes


def _create(ports: list[int]) -> None:
    cli = _require("redis-cli")
    for port in ports:
        _until(lambda port=port: _answers(port), f"node {port} did not answer")
    args = [
        cli,
        "--cluster",
        "create",
        *[f"127.0.0.1:{p}" for p in ports],
        "--cluster-replicas",
        "0",
        "--cluster-yes",
    ]
    done = subprocess.run(args, capture_output=True, timeout=WAIT_S, check=False)
    if done.returncode != 0:
        pytest.fail(
            f"redis-cli --cluster create failed ({done.returncode}): "
            f"{done.stdout.decode()[-2000:]} {done.stderr.decode()[-2000:]}"
        )
    for port in ports:
        _until(lambda port=port: _state_ok(port), f"node {port} did not say cluster_state:ok")


@contextmanager
def cluster(folder: Path) -> Iterator[list[int]]:
    """The masters' ports, once every node says cluster_state:ok."""
    logs: list[IO[bytes]] = []
    ports, nodes = _start(folder, logs)
    try:
        _create(ports)
        yield ports
    finally:
        for node in nodes:
            node.kill()
        for node in nodes:
            node.wait(timeout=WAIT_S)
        for log in logs:
            log.close()


def slot_owners(port: int) -> Callable[[int], int]:
    """slot -> the port of the master that holds it, from CLUSTER SLOTS."""
    client = redis.Redis(port=port)
    ranges = [(int(r[0]), int(r[1]), int(r[2][1])) for r in client.execute_command("CLUSTER SLOTS")]
    client.close()

    def owner(slot: int) -> int:
        return next(p for first, last, p in ranges if first <= slot <= last)

    return owner


def one_per_node(port: int, name: Callable[[int], str], tag: Callable[[int], str]) -> list[str]:
    """The first names (name(i)) whose hash tag (tag(i)) lands on each master: one per node."""
    owner = slot_owners(port)
    found: dict[int, str] = {}
    for i in range(10_000):
        found.setdefault(owner(key_slot(tag(i).encode())), name(i))
        if len(found) == MASTERS:
            return list(found.values())
    raise AssertionError("no names on every node")
