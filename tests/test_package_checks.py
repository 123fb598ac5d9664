"""What `djs package` refuses, without packaging: a zip Chalice left code out of, a runtime
older than python3.12, a build Python older than 3.12, an unknown stage, an output folder
holding other files; and the apps' Lambda requirements keep pyproject.toml's bounds."""

from __future__ import annotations

import json
import logging
import re
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from djs_cli.errors import CliError
from djs_cli.main import main
from djs_cli.package import APPS, BUILD_DIR, PLATFORM, ROOT, check_runtime, check_zip


@pytest.fixture(autouse=True)
def _logging_back() -> Iterator[None]:
    """main() turns warnings off for a one-shot command: not for the tests after these."""
    yield
    logging.disable(logging.NOTSET)


def test_a_zip_without_common_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deployment.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("app.py", "")
        archive.writestr("chalice/app.py", "")
    with pytest.raises(CliError, match=r"lacks common/manager\.py"):
        check_zip(path, ("app.py", "chalice/app.py", "common/manager.py"))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("common/manager.py", "")
    check_zip(path, ("app.py", "chalice/app.py", "common/manager.py"))


def _template(tmp_path: Path, runtime: str | None, globals_runtime: str | None = None) -> Path:
    properties = {"Handler": "app.app"} | ({"Runtime": runtime} if runtime else {})
    template: dict[str, object] = {
        "Resources": {"APIHandler": {"Type": "AWS::Serverless::Function", "Properties": properties}}
    }
    if globals_runtime:
        template["Globals"] = {"Function": {"Runtime": globals_runtime}}
    path = tmp_path / "sam.json"
    path.write_text(json.dumps(template))
    return path


@pytest.mark.parametrize("runtime", ["python3.11", "python3.9", "nodejs20.x", "python3"])
def test_a_runtime_older_than_312_is_refused(tmp_path: Path, runtime: str) -> None:
    with pytest.raises(CliError, match=r"not python3\.12"):
        check_runtime(_template(tmp_path, runtime))


def test_312_and_newer_pass_and_globals_count(tmp_path: Path) -> None:
    check_runtime(_template(tmp_path, "python3.12"))
    check_runtime(_template(tmp_path, "python3.13"))
    check_runtime(_template(tmp_path, None, globals_runtime="python3.12"))
    with pytest.raises(CliError, match=r"not python3\.12"):
        check_runtime(_template(tmp_path, None, globals_runtime="python3.11"))
    (tmp_path / "empty.json").write_text(json.dumps({"Resources": {}}))
    with pytest.raises(CliError, match="no Lambda function"):
        check_runtime(tmp_path / "empty.json")


def test_a_build_python_older_than_312_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # This venv's Python (3.11) has chalice: only its version is wrong.
    assert sys.version_info < (3, 12)
    code = main(["package", "--out", str(tmp_path), "--python", sys.executable])
    assert code == 1
    assert "python3.12 or newer" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_an_unknown_stage_or_a_missing_build_python_is_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["package", "--out", str(tmp_path), "--stage", "nosuch"]) == 2
    assert "has no such stage" in capsys.readouterr().err
    assert main(["package", "--out", str(tmp_path), "--stage", "../x"]) == 2
    assert "--stage" in capsys.readouterr().err
    missing = tmp_path / "no-python"
    assert main(["package", "--out", str(tmp_path), "--python", str(missing)]) == 1
    assert "make install" in capsys.readouterr().err


def test_an_output_folder_with_other_files_is_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "worker").mkdir()
    (tmp_path / "worker" / "notes.txt").write_text("mine")
    if not (BUILD_DIR / "venv" / "bin" / "python").exists():
        pytest.fail("no build venv: run `make install`")
    assert main(["package", "--out", str(tmp_path)]) == 2
    assert "holds more than an earlier package" in capsys.readouterr().err
    assert (tmp_path / "worker" / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "api").exists()  # refused before the first app was packaged


def _requirements(path: Path) -> list[str]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def test_lambda_requirements_keep_the_bounds_of_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = {
        re.split(r"[\[<>=!~]", d)[0].lower(): d for d in pyproject["project"]["dependencies"]
    }
    for spec in APPS:
        for requirement in _requirements(ROOT / spec.source / "requirements.txt"):
            name = re.split(r"[\[<>=!~]", requirement)[0].lower()
            assert name in declared, f"{spec.source}: {requirement} is not in pyproject"
            assert requirement == declared[name], (spec.source, requirement)


def test_the_wheelhouse_is_filled_for_the_platform_djs_package_installs_for() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert f"--platform {PLATFORM}" in makefile
    assert "--only-binary=:all:" in makefile
