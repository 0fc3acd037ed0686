"""`policies new` writes an installable adapter package that passes the conformance checks as
generated, and refuses names and folders it must not use."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies import commands
from refinevla_bench.policies.conformance import check_policy
from refinevla_bench.policies.registry import ENTRY_POINT_GROUP
from refinevla_bench.policies.scaffold import AdapterNames, scaffold_policy


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("new")(commands.policies_new)
    app.command("check")(commands.policies_check)
    return app


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("adapters")
    result = CliRunner().invoke(_cli(), ["new", "demo_vla", "--dir", str(directory)])
    assert result.exit_code == 0, result.output
    return directory / "refinevla-policy-demo-vla"


def test_names_derive_from_the_policy_name() -> None:
    names = AdapterNames("demo_vla")
    assert (names.distribution, names.module, names.class_name) == (
        "refinevla-policy-demo-vla",
        "refinevla_policy_demo_vla",
        "DemoVlaPolicy",
    )


def test_the_package_has_a_src_layout_tests_and_readme(package: Path) -> None:
    files = {path.relative_to(package).as_posix() for path in package.rglob("*") if path.is_file()}
    assert files == {
        "pyproject.toml",
        "README.md",
        "src/refinevla_policy_demo_vla/__init__.py",
        "src/refinevla_policy_demo_vla/policy.py",
        "tests/test_conformance.py",
    }
    readme = (package / "README.md").read_text()
    for step in ("pip install -e .", "policies check demo_vla", "run --suite widowx --policy"):
        assert step in readme
    assert "$" not in (package / "src/refinevla_policy_demo_vla/policy.py").read_text()


def test_pyproject_registers_the_entry_point(package: Path) -> None:
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    assert project["name"] == "refinevla-policy-demo-vla"
    assert "refinevla-bench" in project["dependencies"]
    assert project["entry-points"][ENTRY_POINT_GROUP] == {
        "demo_vla": "refinevla_policy_demo_vla.policy:DemoVlaPolicy"
    }


def test_the_generated_adapter_passes_the_checks(
    package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(package / "src"))
    module = importlib.import_module("refinevla_policy_demo_vla.policy")
    try:
        report = check_policy(module.DemoVlaPolicy, seed=1, batch=3)
    finally:
        for name in ("refinevla_policy_demo_vla.policy", "refinevla_policy_demo_vla"):
            sys.modules.pop(name, None)
    assert report.passed, report.summary()
    assert module.DemoVlaPolicy.conventions.image_size == (224, 224)


def test_the_generated_test_passes_with_pytest(package: Path) -> None:
    environment = {**os.environ, "PYTHONPATH": str(package / "src")}
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=package,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "1 passed" in completed.stdout


@pytest.mark.parametrize(
    "name", ["MyPolicy", "1policy", "my-policy", "class", "_hidden", "my policy", ""]
)
def test_names_that_are_not_lowercase_identifiers_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="not a lowercase Python identifier"):
        scaffold_policy(name, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_registered_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="'zero' is already registered"):
        scaffold_policy("zero", tmp_path)


def test_an_existing_folder_is_never_overwritten(tmp_path: Path) -> None:
    existing = tmp_path / "refinevla-policy-mine"
    existing.mkdir()
    (existing / "notes.txt").write_text("keep me")
    result = CliRunner().invoke(_cli(), ["new", "mine", "--dir", str(tmp_path)])
    assert isinstance(result.exception, HarnessError)
    assert "already exists" in result.exception.problem
    assert [path.name for path in existing.iterdir()] == ["notes.txt"]
    assert (existing / "notes.txt").read_text() == "keep me"
