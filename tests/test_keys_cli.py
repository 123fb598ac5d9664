"""`djs keys` against Postgres, and the admin key `djs dev` makes on its first start."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import Http, free_port, run_djs
from tests.test_dev import Dev


def test_create_list_and_revoke_keys_from_the_cli(env: dict[str, str], tmp_path: Path) -> None:
    made = run_djs(["keys", "create", "--role", "viewer", "--name", "ci-reader"], env, tmp_path)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("djs_") and len(key) == 56 and "shown only this once" in made.stderr

    listed = run_djs(["keys", "list"], env, tmp_path)
    [row] = json.loads(listed.stdout)
    assert (row["name"], row["role"], row["revoked_at"]) == ("ci-reader", "viewer", None)
    assert key not in listed.stdout and row["prefix"] == key.split("_")[1]  # never the secret

    twice = run_djs(["keys", "create", "--role", "viewer", "--name", "ci-reader"], env, tmp_path)
    assert twice.returncode == 1 and "exists" in twice.stderr
    assert run_djs(["keys", "revoke", "ci-reader"], env, tmp_path).returncode == 0
    [row] = json.loads(run_djs(["keys", "list"], env, tmp_path).stdout)
    assert row["revoked_at"] is not None
    unknown = run_djs(["keys", "revoke", "nobody"], env, tmp_path)
    assert unknown.returncode == 1 and "no key" in unknown.stderr


def test_keys_need_the_pepper(env: dict[str, str], tmp_path: Path) -> None:
    bare = {k: v for k, v in env.items() if k != "DJS_KEY_PEPPER"}
    refused = run_djs(["keys", "create", "--role", "admin", "--name", "x"], bare, tmp_path)
    assert refused.returncode == 2 and "DJS_KEY_PEPPER" in refused.stderr


def test_dev_makes_an_admin_key_once_and_keeps_it(env: dict[str, str], tmp_path: Path) -> None:
    """A new user is never locked out: the key is printed, found by `djs keys current`, and
    the same key works after a restart (and is not printed again)."""
    bare = {k: v for k, v in env.items() if k not in ("DJS_KEY_PEPPER", "DJS_API_KEY")}
    port = free_port()
    first = Dev(["--port", str(port)], bare, tmp_path)
    try:
        printed = first.wait_for("admin API key").rsplit(" ", 1)[-1]
        first.wait_for("djs is up")
        current = run_djs(["keys", "current"], bare, tmp_path)
        assert current.stdout.strip() == printed
        status, me = Http(port, printed).request("GET", "/me")
        assert status == 200 and me["role"] == "admin"
        assert Http(port).request("GET", "/jobs")[0] == 401
    finally:
        assert first.stop() == 0
    assert (tmp_path / ".djs" / "secrets.json").stat().st_mode & 0o777 == 0o600
    again = Dev(["--port", str(port)], bare, tmp_path)
    try:
        again.wait_for("djs is up")
        assert "admin API key" not in again.output
        assert Http(port, printed).request("GET", "/me")[0] == 200
    finally:
        assert again.stop() == 0
