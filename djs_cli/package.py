"""`djs package`: both Chalice apps as AWS Lambda deployment zips, each with its SAM template.

Chalice leaves code out of a zip without a word (symlinked chalicelib/ folders, editable
installs, local paths in requirements.txt), so each app is packaged from a staging folder of
its own: its app.py and .chalice/config.json at the root, and vendor/ holding common/, the
app's own package and its third-party requirements, installed offline from the wheelhouse
`make install` fills (manylinux x86_64 wheels for the build Python's version). Chalice puts
vendor/ at the zip's root. The zip is then checked for the files the app cannot run without.

Lambda's runtime is the Python that runs `chalice package`: the build venv under
.djs/package/venv (Python 3.12, made by `make install`), or DJS_PACKAGE_PYTHON / --python.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.settings import Settings
from djs_cli.errors import CliError, UsageError

# The source tree: the apps' app.py, .chalice/ and requirements.txt live beside their code.
ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / ".djs" / "package"
MIN_RUNTIME = (3, 12)  # AWS blocks creating python3.11 functions since 2026-07-31
# Lambda's python3.12+ runtimes are Amazon Linux 2023 on x86_64 (Chalice's default arch).
PLATFORM = "manylinux2014_x86_64"
STAGE_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
PROJECT = "project"  # the staged Chalice project, for `chalice deploy`
OUTPUTS = ("deployment.zip", "sam.json", PROJECT)
CHALICE_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class AppSpec:
    """One Chalice app: where it lives, what its zip vendors, what the zip must hold."""

    name: str  # DIR/<name> is where its zip and template go
    source: str  # the package whose app.py, .chalice/ and requirements.txt are packaged
    packages: tuple[str, ...]  # first-party packages copied into vendor/
    required: tuple[str, ...]  # paths the zip must hold


APPS = (
    AppSpec(
        "api",
        "api_app",
        ("common", "api_app", "dashboard"),
        (
            "app.py",
            "chalice/app.py",
            "common/manager.py",
            "common/store/sql/queries.sql",
            "common/dispatch/lua/enqueue.lua",
            "api_app/factory.py",
            "dashboard/build.py",
            "psycopg/__init__.py",
            "pydantic_core/__init__.py",
        ),
    ),
    AppSpec(
        "worker",
        "worker_app",
        ("common", "worker_app"),
        (
            "app.py",
            "chalice/app.py",
            "common/manager.py",
            "common/store/sql/queries.sql",
            "common/dispatch/lua/enqueue.lua",
            "worker_app/handlers/examples.py",
            "psycopg/__init__.py",
            "pydantic_core/__init__.py",
        ),
    ),
)


@dataclass(frozen=True)
class Build:
    """What packaging runs with: the build Python (with chalice) and the wheelhouse."""

    python: Path
    version: tuple[int, int]
    wheelhouse: Path


def cmd_package(settings: Settings, args: argparse.Namespace) -> int:
    _check_stage(args.stage)
    build = _build(args.python or settings.package_python, Path(args.wheelhouse))
    out = Path(args.out).resolve()  # chalice runs in the staging folder
    for spec in APPS:  # every folder checked before anything is written
        _clear(out / spec.name)
    for spec in APPS:
        target = out / spec.name
        package_app(spec, build, args.stage, target)
        print(f"{spec.name}: {target / 'deployment.zip'} and {target / 'sam.json'}")
        chalice = build.python.parent / "chalice"
        print(f"  or: cd {target / PROJECT} && {chalice} deploy --stage {args.stage}")
    return 0


def package_app(spec: AppSpec, build: Build, stage: str, target: Path) -> None:
    """Stage, vendor and `chalice package` one app into `target`, then check the result."""
    with tempfile.TemporaryDirectory(prefix=f"djs-package-{spec.name}-") as tmp:
        staging = Path(tmp) / spec.source
        _stage(spec, staging)
        _vendor_requirements(spec, build, staging / "vendor")
        _compile(build, staging)
        _chalice_package(build, staging, stage, target)
        # The staged project too: `chalice deploy` from it deploys what the zip holds
        # (from api_app/ as checked in, Chalice would deploy functions without common/).
        shutil.copytree(staging, target / PROJECT, ignore=shutil.ignore_patterns("deployments"))
    check_zip(target / "deployment.zip", spec.required)
    check_runtime(target / "sam.json")


def _build(python: str, wheelhouse: Path) -> Build:
    path = Path(python).expanduser() if python else BUILD_DIR / "venv" / "bin" / "python"
    path = path.absolute()  # not resolve(): a venv's python is a symlink out of its venv
    if not path.exists():
        raise CliError(
            f"no build Python at {path}: `make install` makes the build venv (Python 3.12 with "
            "chalice); or name one with --python / DJS_PACKAGE_PYTHON"
        )
    if not wheelhouse.is_dir():
        raise CliError(f"no wheelhouse at {wheelhouse}: `make install` fills it")
    probe = "import sys, chalice; print(sys.version_info[0], sys.version_info[1])"
    found = _run([str(path), "-c", probe], timeout_s=60)
    if found.returncode != 0:
        raise CliError(f"{path} cannot import chalice: {_tail(found)}")
    major, minor = (int(part) for part in found.stdout.split())
    if (major, minor) < MIN_RUNTIME:
        raise CliError(
            f"{path} is Python {major}.{minor}; Lambda's runtime follows the packaging Python "
            f"and must be python{MIN_RUNTIME[0]}.{MIN_RUNTIME[1]} or newer"
        )
    return Build(path, (major, minor), wheelhouse)


def _check_stage(stage: str) -> None:
    if not STAGE_PATTERN.match(stage):
        raise UsageError(f"--stage {stage!r}: a letter, then letters, digits, _ or - (32 at most)")
    for spec in APPS:
        config = json.loads((ROOT / spec.source / ".chalice" / "config.json").read_text())
        if stage not in config.get("stages", {}):
            known = ", ".join(sorted(config.get("stages", {})))
            raise UsageError(f"--stage {stage}: {spec.source} has no such stage (it has {known})")


def _clear(target: Path) -> None:
    """Empty DIR/<app> of an earlier package, and refuse to touch anything else."""
    if not target.exists():
        return
    if not target.is_dir():
        raise UsageError(f"{target} exists and is not a folder")
    others = sorted(p.name for p in target.iterdir() if p.name not in OUTPUTS)
    if others:
        raise UsageError(f"{target} holds more than an earlier package ({', '.join(others)})")
    for name in OUTPUTS:
        if (target / name).is_dir():
            shutil.rmtree(target / name)
        else:
            (target / name).unlink(missing_ok=True)


def _stage(spec: AppSpec, staging: Path) -> None:
    source = ROOT / spec.source
    (staging / ".chalice").mkdir(parents=True)
    shutil.copy2(source / "app.py", staging / "app.py")
    shutil.copy2(source / ".chalice" / "config.json", staging / ".chalice" / "config.json")
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", ".chalice")
    for package in spec.packages:
        shutil.copytree(ROOT / package, staging / "vendor" / package, ignore=skip)


def _vendor_requirements(spec: AppSpec, build: Build, vendor: Path) -> None:
    """pip install the app's requirements into vendor/, from the wheelhouse only, as wheels
    for Lambda's platform and the build Python's version (no network, no other index)."""
    major, minor = build.version
    command = [
        *(str(build.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
        "--no-compile",  # _compile does it, in the form a zip can use
        *("--no-index", "--find-links", str(build.wheelhouse.resolve())),
        *("--only-binary=:all:", "--platform", PLATFORM, "--implementation", "cp"),
        *("--python-version", f"{major}.{minor}", "--target", str(vendor)),
        *("-r", str(ROOT / spec.source / "requirements.txt")),
    ]
    done = _run(command, env={"PIP_CONFIG_FILE": os.devnull}, timeout_s=CHALICE_TIMEOUT_S)
    if done.returncode != 0:
        raise CliError(
            f"{spec.source}: its requirements are not all in {build.wheelhouse} for Python "
            f"{major}.{minor} on {PLATFORM} (`make install` fills it): {_tail(done)}"
        )


def _compile(build: Build, staging: Path) -> None:
    """Bytecode for every module, checked by hash, never by time: the zip's files all carry
    the same 1980 timestamp, so time-checked .pyc files would be stale on Lambda, whose
    /var/task is read-only: each cold start would compile every module again (importing the
    API's app.py bare took 3.4 s so, 1.2 to 1.8 s with these, on this machine)."""
    command = [str(build.python), "-m", "compileall", "-q", "-f", "-j", "0"]
    command += ["--invalidation-mode", "unchecked-hash", str(staging)]
    done = _run(command, timeout_s=CHALICE_TIMEOUT_S)
    if done.returncode != 0:
        raise CliError(f"compiling {staging.name} failed: {_tail(done)}")


def _chalice_package(build: Build, staging: Path, stage: str, target: Path) -> None:
    # Chalice imports app.py to find its routes: give it the settings the app needs to be
    # built (a placeholder pepper; servers that refuse at once, never a real database).
    env = {
        "DJS_KEY_PEPPER": "packaging-only",
        "DATABASE_URL": "postgresql://127.0.0.1:1/packaging",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    }
    run_cli = "import sys; from chalice.cli import main; sys.argv[0] = 'chalice'; main()"
    command = [str(build.python), "-c", run_cli, "package", "--stage", stage, str(target)]
    done = _run(command, cwd=staging, env=env, timeout_s=CHALICE_TIMEOUT_S)
    # It exits 0 even when app.py fails to import: no zip written is the failure too.
    if done.returncode != 0 or not (target / "deployment.zip").is_file():
        raise CliError(
            f"chalice package wrote no deployment.zip (exit {done.returncode}): {_tail(done)}"
        )


def check_zip(zip_path: Path, required: tuple[str, ...]) -> None:
    """Fail loudly if Chalice left out a file the app cannot run without."""
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
    missing = [path for path in required if path not in names]
    if missing:
        raise CliError(f"{zip_path} lacks {', '.join(missing)}: Chalice left code out")


def runtimes(template: dict[str, Any]) -> dict[str, str]:
    """Each Lambda function of a SAM template and its runtime (Globals apply where unset)."""
    default = template.get("Globals", {}).get("Function", {}).get("Runtime", "")
    return {
        name: str(resource.get("Properties", {}).get("Runtime", default))
        for name, resource in template.get("Resources", {}).items()
        if resource.get("Type") in ("AWS::Serverless::Function", "AWS::Lambda::Function")
    }


def check_runtime(sam_path: Path) -> None:
    found = runtimes(json.loads(sam_path.read_text()))
    if not found:
        raise CliError(f"{sam_path} defines no Lambda function")
    for name, runtime in found.items():
        matched = re.fullmatch(r"python(\d+)\.(\d+)", runtime)
        if matched is None or (int(matched[1]), int(matched[2])) < MIN_RUNTIME:
            raise CliError(f"{sam_path}: {name} has runtime {runtime!r}, not python3.12+")


def _run(
    command: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float,
) -> subprocess.CompletedProcess[str]:
    """A build step in a clean environment: PATH and HOME, no PYTHON* variables of ours,
    and no bytecode written into what is zipped."""
    base = {key: os.environ[key] for key in ("PATH", "HOME", "TMPDIR") if key in os.environ}
    full = {**base, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    try:
        return subprocess.run(
            command, cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired as exc:
        raise CliError(f"{command[0]} took longer than {timeout_s:.0f} s") from exc


def _tail(done: subprocess.CompletedProcess[str], lines: int = 15) -> str:
    text = (done.stderr or "") + (done.stdout or "")
    return "\n".join(text.strip().splitlines()[-lines:]) or "no output"


def add_package_command(sub: Any) -> None:
    package = sub.add_parser(
        "package", help="build both Chalice apps as Lambda zips with their SAM templates"
    )
    package.add_argument("--out", default="dist", help="DIR/api and DIR/worker (default: dist)")
    package.add_argument("--stage", default="dev", help="the Chalice stage (default: dev)")
    package.add_argument(
        "--python",
        default=None,
        help="the Python 3.12+ with chalice that packages (default: DJS_PACKAGE_PYTHON, "
        "else .djs/package/venv/bin/python); Lambda's runtime follows it",
    )
    package.add_argument(
        "--wheelhouse",
        default=str(BUILD_DIR / "wheelhouse"),
        help="wheels for Lambda, installed offline (default: .djs/package/wheelhouse)",
    )
    package.set_defaults(func=cmd_package)
