"""`djs package`, for real: both zips built offline from the wheelhouse, their SAM templates
linted by cfn-lint, and each zip unpacked and run in a bare python3.12 (`-I -S`: sys.path
is the zip and the standard library, as on Lambda) with Lambda-shaped events.

"Runs a real job" here: the API zip's authorizer and POST /jobs store a job in this test's
Postgres and push it to Redis; the worker zip's own runner (common/ and the echo handler
from the zip) claims it, runs it and records it completed. The SQS consumer, which would
carry a job from the queue to the worker's Lambda on AWS, is another part of issue 15.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from common.services import Services
from common.settings import Settings
from djs_cli.package import BUILD_DIR
from tests.keys import PEPPER, UNKNOWN_KEY, make_key

pytestmark = pytest.mark.serial  # packages two apps, then starts a bare Python per test

DJS = Path(sys.executable).parent / "djs"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
LAMBDA_PYTHON = BUILD_DIR / "venv" / "bin" / "python"  # its version is the zips' runtime
DRIVER = (Path(__file__).parent / "lambda_driver.py").read_text()
MARK = "djs-step-answer "


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not LAMBDA_PYTHON.exists():
        pytest.fail(f"no build venv at {LAMBDA_PYTHON}: run `make install`")
    where = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [str(DJS), "package", "--out", "built", "--stage", "prod"],  # relative to cwd
        cwd=where,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    out = where / "built"
    for name in ("api", "worker"):
        with zipfile.ZipFile(out / name / "deployment.zip") as archive:
            archive.extractall(out / "unpacked" / name)
    return out


def in_lambda(unpacked: Path, steps: list[dict[str, Any]], env: dict[str, str]) -> list[Any]:
    """Run `steps` against an unpacked zip in a bare interpreter; their answers."""
    done = subprocess.run(
        [str(LAMBDA_PYTHON), "-I", "-S", "-c", DRIVER, str(unpacked), json.dumps(steps)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    answers = [json.loads(line[len(MARK) :]) for line in done.stdout.splitlines() if MARK in line]
    assert len(answers) == len(steps), done.stdout
    return answers


def lambda_env(settings: Settings) -> dict[str, str]:
    """Only what a deployment's environment variables would say."""
    return {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "DJS_REDIS_PREFIX": settings.redis_prefix,
        "DJS_KEY_PEPPER": PEPPER,
    }


def template(packaged: Path, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((packaged / name / "sam.json").read_text())
    return loaded


def functions(packaged: Path, name: str) -> dict[str, dict[str, Any]]:
    return {
        key: resource["Properties"]
        for key, resource in template(packaged, name)["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def test_each_zip_holds_common_its_app_and_a_312_runtime(packaged: Path) -> None:
    expected = {
        "api": {"app.py", "common/manager.py", "common/store/sql/queries.sql", "api_app/app.py"},
        "worker": {"app.py", "common/runner/runner.py", "worker_app/handlers/examples.py"},
    }
    expected["api"] |= {"dashboard/templates/index.html.j2", "psycopg_binary/__init__.py"}
    for name, paths in expected.items():
        with zipfile.ZipFile(packaged / name / "deployment.zip") as archive:
            names = set(archive.namelist())
        assert paths <= names, paths - names
        for function, properties in functions(packaged, name).items():
            major, minor = properties["Runtime"].removeprefix("python").split(".")
            assert (int(major), int(minor)) >= (3, 12), (function, properties["Runtime"])
            assert properties["CodeUri"] == "./deployment.zip"


def test_the_staged_project_deploys_what_the_zip_holds(packaged: Path, tmp_path: Path) -> None:
    """`chalice deploy` from DIR/api/project packages the same files as deployment.zip (and
    needs no network: nothing is left for pip to fetch)."""
    project = packaged / "api" / "project"
    assert not (project / "requirements.txt").exists()
    chalice = LAMBDA_PYTHON.parent / "chalice"
    done = subprocess.run(
        [str(chalice), "package", "--stage", "prod", str(tmp_path / "again")],
        cwd=project,
        # Chalice imports app.py: the settings it needs to be built, and no server behind them.
        env={
            "PATH": os.environ["PATH"],
            "DJS_KEY_PEPPER": "deploy-test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "DATABASE_URL": "postgresql://127.0.0.1:1/nothing",
            "REDIS_URL": "redis://127.0.0.1:1/0",
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    first = zipfile.ZipFile(packaged / "api" / "deployment.zip")
    again = zipfile.ZipFile(tmp_path / "again" / "deployment.zip")
    with first, again:
        assert set(again.namelist()) == set(first.namelist())


def test_the_zips_bytecode_is_checked_by_hash_not_by_time(packaged: Path) -> None:
    """Every file of a zip is dated 1980 and /var/task is read-only: a time-checked .pyc
    would be stale, and each cold start would compile every module again."""
    for name in ("api", "worker"):
        with zipfile.ZipFile(packaged / name / "deployment.zip") as archive:
            names = archive.namelist()
            for module in ("common/__pycache__/manager.", "pydantic/__pycache__/main."):
                [pyc] = [n for n in names if n.startswith(module) and n.endswith(".pyc")]
                flags = int.from_bytes(archive.read(pyc)[4:8], "little")
                assert flags == 1, (pyc, flags)  # PEP 552: hash-based, source not checked
            # All but chalice/app.py, which Chalice adds itself (and the root app.py).
            sources = [n for n in names if n.endswith(".py") and "/" in n and n[:8] != "chalice/"]
            compiled = {n.split("/__pycache__/")[0] for n in names if n.endswith(".pyc")}
            assert {s.rsplit("/", 1)[0] for s in sources} <= compiled


def test_the_sam_templates_pass_cfn_lint(packaged: Path) -> None:
    templates = [str(packaged / name / "sam.json") for name in ("api", "worker")]
    done = subprocess.run([str(CFN_LINT), *templates], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_each_worker_function_outlasts_its_handler_and_the_api_the_gateway(
    packaged: Path,
) -> None:
    from worker_app.app import registry

    by_handler = {p["Handler"]: p for p in functions(packaged, "worker").values()}
    specs = [registry.get(job_type) for job_type in registry.types()]
    # The worker app's own (tests that import tests/hardening_handlers add theirs).
    for spec in [s for s in specs if s is not None and s.func.__module__.startswith("worker_app")]:
        job_type = spec.type
        properties = by_handler[f"{spec.func.__module__}.{spec.func.__name__}"]
        assert properties["Timeout"] >= spec.timeout_s, job_type
    for properties in functions(packaged, "api").values():
        assert properties["Timeout"] <= 29  # API Gateway ends a request at 29 s


def test_the_zips_import_bare_with_no_server_answering(packaged: Path) -> None:
    down = {
        "DATABASE_URL": "postgresql://127.0.0.1:1/nothing",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "DJS_KEY_PEPPER": PEPPER,
    }
    health = {"kind": "http", "method": "GET", "path": "/health"}
    looked, answered = in_lambda(
        packaged / "unpacked" / "api", [{"kind": "environment"}, health], down
    )
    assert answered["statusCode"] == 503  # it says so, rather than hanging at import
    worker_env, echoed = in_lambda(
        packaged / "unpacked" / "worker",
        [
            {"kind": "environment"},
            {
                "kind": "invoke",
                "handler": "worker_app.handlers.examples.echo",
                "event": {
                    "job_id": 1,
                    "type": "echo",
                    "queue": "default",
                    "attempt": 1,
                    "payload": {"hello": ["world", 1]},
                },
            },
        ],
        down,
    )
    assert echoed == {"hello": ["world", 1]}
    for seen, name in ((looked, "api"), (worker_env, "worker")):
        assert seen["path"][0] == str(packaged / "unpacked" / name)
        assert not [p for p in seen["path"] if "site-packages" in p]
        assert "boto3" not in seen["modules"]


def authorizer_handler(packaged: Path) -> str:
    """The authorizer's Lambda function, by the handler its template gives it."""
    [found] = [
        p["Handler"] for p in functions(packaged, "api").values() if p["Handler"] != "app.app"
    ]
    return str(found)


def submit_steps(packaged: Path, key: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"kind": "http", "method": "GET", "path": "/health"},
        {"kind": "authorize", "handler": authorizer_handler(packaged), "token": f"Bearer {key}",
         "method": "POST", "path": "/jobs"},
        {"kind": "http", "method": "POST", "path": "/jobs", "authorizer": None,
         "headers": {"content-type": "application/json"},
         "body": {"type": "echo", "payload": payload}},
    ]  # fmt: skip


def submit_through_the_api_zip(packaged: Path, settings: Settings, key: str, payload: Any) -> Any:
    """GET /health, then the authorizer as API Gateway calls it, then POST /jobs with the
    context it answered; the answers."""
    unpacked = packaged / "unpacked" / "api"
    steps = submit_steps(packaged, key, payload)
    health, policy = in_lambda(unpacked, steps[:2], lambda_env(settings))
    assert health["statusCode"] == 200, health
    assert "policyDocument" in policy, policy
    [statement] = policy["policyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    steps[2]["authorizer"] = {**policy["context"], "principalId": policy["principalId"]}
    [created] = in_lambda(unpacked, steps[2:], lambda_env(settings))
    assert created["statusCode"] == 201, created
    return json.loads(created["body"])


def test_the_api_zip_authorizes_a_key_and_stores_a_job(
    packaged: Path, settings: Settings, services: Services, database_url: str
) -> None:
    key = make_key(database_url, "submitter")
    body = submit_through_the_api_zip(packaged, settings, key, {"n": 1})
    stored = services.store.get(body["id"])
    assert stored is not None and stored.type == "echo" and stored.payload == {"n": 1}
    assert stored.status == "pending"
    [refused] = in_lambda(
        packaged / "unpacked" / "api",
        [submit_steps(packaged, UNKNOWN_KEY, {})[1]],
        lambda_env(settings),
    )
    assert refused["message"] == "Unauthorized"  # the word API Gateway turns into a 401


def test_a_job_submitted_to_the_api_zip_runs_in_the_worker_zip(
    packaged: Path, settings: Settings, services: Services, database_url: str
) -> None:
    key = make_key(database_url, "submitter")
    body = submit_through_the_api_zip(packaged, settings, key, {"n": 7, "s": "é"})
    [ran] = in_lambda(
        packaged / "unpacked" / "worker",
        [{"kind": "burst", "handlers": "worker_app.handlers.examples"}],
        lambda_env(settings),
    )
    assert "echo" in ran["types"]
    done = services.store.get(body["id"])
    assert done is not None and done.status == "completed", done
    assert done.result == {"n": 7, "s": "é"}
    [attempt] = done.history
    assert attempt.outcome == "completed"
