"""The `djs` command as a user meets it: one-line errors with the right exit code, the admin
verbs on ids refusing like the API, a help that names every verb, and `make dev PORT=`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

from chalice.test import Client

from common.models import JobSubmission
from common.services import Services
from tests.conftest import post_json
from tests.helpers import free_port, run_djs
from worker_app.app import registry

ROOT = Path(__file__).resolve().parents[1]


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """stderr must be a single `error: ...` line (no traceback, no log lines)."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# --- errors: one line, exit 2 for usage, 1 at run time -------------------------------------


def test_bad_payload_json_is_a_usage_error(env: dict[str, str], tmp_path: Path) -> None:
    result = run_djs(["submit", "echo", "--payload", "{bad"], env, tmp_path)
    assert result.returncode == 2
    assert one_error_line(result).startswith("error: argument --payload: not valid JSON: ")


def test_a_bound_out_of_range_names_the_field(env: dict[str, str], tmp_path: Path) -> None:
    result = run_djs(["submit", "echo", "--priority", "5000"], env, tmp_path)
    assert result.returncode == 2
    assert one_error_line(result) == "error: priority: Input should be less than or equal to 1000"


def test_a_bad_queue_list_is_a_usage_error(env: dict[str, str], tmp_path: Path) -> None:
    result = run_djs(["worker", "--queues", "emails:-1"], env, tmp_path)
    assert result.returncode == 2
    assert one_error_line(result).startswith("error: not a queue: 'emails:-1' ")


def test_retry_without_ids_or_filter_is_a_usage_error(env: dict[str, str], tmp_path: Path) -> None:
    result = run_djs(["retry"], env, tmp_path)
    assert result.returncode == 2
    assert one_error_line(result).startswith("error: retry needs job ids or a filter (--queue, ")


def test_postgres_down_is_one_line_naming_the_server(env: dict[str, str], tmp_path: Path) -> None:
    """The URL shows which server was tried, its password masked."""
    port = free_port()
    down = {**env, "DATABASE_URL": f"postgresql://postgres:s3cret@127.0.0.1:{port}/djs"}
    shown = f"postgresql://postgres:***@127.0.0.1:{port}/djs"
    for args in (["status", "1"], ["migrate"], ["cancel", "1"]):
        result = run_djs(args, down, tmp_path)
        assert result.returncode == 1, args
        line = one_error_line(result)
        assert line.startswith(f"error: postgres is unavailable ({shown}: "), line
        assert "s3cret" not in line


def test_status_of_an_unknown_job_exits_1(env: dict[str, str], tmp_path: Path) -> None:
    result = run_djs(["status", "424242"], env, tmp_path)
    assert result.returncode == 1
    assert one_error_line(result) == "error: job 424242 not found"


def _listening(reuse_port: bool) -> socket.socket:
    sock = socket.socket()
    if reuse_port:  # as another `djs api` listens
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_api_on_a_port_in_use_is_one_line_exit_1(env: dict[str, str], tmp_path: Path) -> None:
    for reuse_port in (False, True):
        with _listening(reuse_port) as taken:
            port = taken.getsockname()[1]
            result = run_djs(["api", "--port", str(port)], env, tmp_path, timeout_s=20)
        assert result.returncode == 1, reuse_port
        assert one_error_line(result) == (
            f"error: port {port} on 127.0.0.1 is in use (is another djs api or djs dev running?)"
        )


# --- admin verbs on ids: the single-job verbs, refusing as the API does ----------------------


def _submit(services: Services, **fields: Any) -> int:
    [submitted] = services.manager.enqueue([JobSubmission(type="echo", **fields)])
    return submitted.job.id


def _run_pending(services: Services) -> None:
    services.runner(registry, listen=False, burst=True, poll_interval_s=0.05).run()


def _api_message(response: Any) -> str:
    return str(json.loads(response.body)["error"]["message"])


def test_cancel_of_a_completed_job_is_refused_like_the_api(
    services: Services, client: Client, env: dict[str, str], tmp_path: Path
) -> None:
    job_id = _submit(services)
    _run_pending(services)
    result = run_djs(["cancel", str(job_id)], env, tmp_path)
    assert result.returncode == 1
    assert json.loads(result.stdout) == {"cancelled": [], "cancel_requested": []}
    api = post_json(client, f"/jobs/{job_id}/cancel", {})
    assert api.status_code == 409
    assert one_error_line(result) == f"error: {_api_message(api)}"
    assert _api_message(api) == f"cannot cancel job {job_id}: it is completed"


def test_remove_of_an_unknown_id_is_refused_like_the_api(
    client: Client, env: dict[str, str], tmp_path: Path
) -> None:
    result = run_djs(["remove", "987654"], env, tmp_path)
    assert result.returncode == 1
    assert json.loads(result.stdout) == {"remove": []}
    api = client.http.delete("/jobs/987654")
    assert api.status_code == 404
    assert one_error_line(result) == f"error: {_api_message(api)}"


def test_ids_alone_apply_to_each_job_and_report_every_refusal(
    services: Services, env: dict[str, str], tmp_path: Path
) -> None:
    delayed = _submit(services, delay_ms=600_000)
    pending = _submit(services)
    result = run_djs(["promote", str(delayed), str(pending), "999999"], env, tmp_path)
    assert result.returncode == 1
    assert json.loads(result.stdout) == {"promote": [delayed]}
    assert result.stderr.splitlines() == [
        f"error: cannot promote job {pending}: it is pending",
        "error: job 999999 not found",
    ]
    job = services.store.get(delayed)
    assert job is not None and job.status == "pending"


def test_ids_that_all_succeed_exit_0(
    services: Services, env: dict[str, str], tmp_path: Path
) -> None:
    first, second = _submit(services), _submit(services)
    _run_pending(services)
    result = run_djs(["retry", str(first), str(second)], env, tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout) == {"retry": [first, second]}


def test_a_filter_keeps_the_bulk_verb(
    services: Services, env: dict[str, str], tmp_path: Path
) -> None:
    waiting = _submit(services, queue="bulkq")
    result = run_djs(["cancel", "--queue", "bulkq"], env, tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout) == {"cancelled": [waiting], "cancel_requested": []}


# --- help and make ---------------------------------------------------------------------------


def test_help_describes_every_command(env: dict[str, str], tmp_path: Path) -> None:
    result = run_djs(["--help"], env, tmp_path)
    assert result.returncode == 0
    text = result.stdout
    listed = text.split("positional arguments:")[1].split("{")[1].split("}")[0].split(",")
    description = text.split("\n\n")[1]
    named = {word.strip(" ,.`\n") for word in description.split()}
    assert len(listed) == 19
    assert set(listed) <= named, f"not in the description: {set(listed) - named}"


def test_make_dev_takes_the_port() -> None:
    def dev_command(*variables: str) -> str:
        # Run from `make test` too: a nested make prints its directories unless told not to.
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
        result = subprocess.run(
            ["make", "--no-print-directory", "-n", "dev", *variables],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=env,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]

    assert dev_command("PORT=8001").endswith("/djs dev --port 8001")
    assert dev_command().endswith("/djs dev --port 8000")
