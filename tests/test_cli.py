"""The installed `refinevla-bench` script: user errors are one line with a fix and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import run_cli

NO_VULKAN = {
    "VK_DRIVER_FILES": "/nonexistent/icd.json",
    "VK_ICD_FILENAMES": "/nonexistent/icd.json",
}


def assert_one_line_error(stderr: str, *fragments: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and "; fix: " in lines[0], lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_version_and_help() -> None:
    assert run_cli(["--version"], assets=None).stdout.startswith("refinevla-bench ")
    help_text = run_cli(["--help"], assets=None).stdout
    for command in ("run", "doctor", "assets", "policies"):
        assert command in help_text


def test_unknown_suite(widowx_assets: Path) -> None:
    completed = run_cli(["run", "--suite", "franka"], assets=widowx_assets)
    assert completed.returncode == 2
    assert_one_line_error(completed.stderr, "unknown suite 'franka'", "--suite", "widowx")


def test_unknown_policy(widowx_assets: Path) -> None:
    completed = run_cli(["run", "--policy", "nope"], assets=widowx_assets)
    assert completed.returncode == 2
    assert_one_line_error(completed.stderr, "unknown policy 'nope'", "policies list")


def test_missing_assets_name_the_fetch_command(empty_assets: Path) -> None:
    completed = run_cli(["run", "--suite", "widowx", "--episodes", "1"], assets=empty_assets)
    assert completed.returncode == 2
    assert_one_line_error(completed.stderr, "refinevla-bench assets fetch --suite widowx")
    assert list(empty_assets.iterdir()) == []  # nothing was downloaded or created behind our back


def test_no_render_device(widowx_assets: Path) -> None:
    completed = run_cli(
        ["run", "--episodes", "1", "--tasks", "carrot_on_plate"],
        assets=widowx_assets,
        extra_env=NO_VULKAN,
    )
    assert completed.returncode == 2
    assert_one_line_error(completed.stderr, "render device", "install-system-deps.sh")


def test_policies_list_shows_conventions() -> None:
    completed = run_cli(["policies", "list"], assets=None)
    assert completed.returncode == 0
    zero_row = next(line for line in completed.stdout.splitlines() if " zero " in line)
    assert "axis_angle" in zero_row and "absolute" in zero_row


def test_doctor_passes_here_and_names_the_render_device(widowx_assets: Path) -> None:
    completed = run_cli(["doctor", "--json", "--suite", "widowx"], assets=widowx_assets)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(completed.stdout)
    assert report["suites"] == {"widowx": True}
    every_suite = run_cli(["doctor", "--json"], assets=widowx_assets)
    assert every_suite.returncode == 1  # the Google Robot suites' assets are not fetched here
    full = json.loads(every_suite.stdout)
    assert full["suites"] == {"widowx": True, "google_robot_vm": False, "google_robot_va": False}
    google = next(c for c in full["checks"] if c["name"] == "assets (google_robot_vm)")
    assert "assets fetch --suite google_robot" in google["fix"]
    render = next(check for check in report["checks"] if check["name"] == "vulkan render device")
    assert render["status"] == "ok"
    torch_check = next(check for check in report["checks"] if check["name"] == "torch")
    if "no CUDA GPU" in torch_check["detail"]:
        assert "llvmpipe" in render["detail"] and "lavapipe" in render["detail"]
    assets = next(check for check in report["checks"] if check["name"] == "assets (widowx)")
    assert (
        assets["status"] == "warn" and "stand-in" in assets["detail"]
    )  # the CI copy has stand-ins


def test_doctor_fails_with_fixes_when_a_suite_cannot_run(empty_assets: Path) -> None:
    completed = run_cli(["doctor", "--json"], assets=empty_assets, extra_env=NO_VULKAN)
    assert completed.returncode == 1
    report = json.loads(completed.stdout)
    assert report["suites"] == {"widowx": False, "google_robot_vm": False, "google_robot_va": False}
    failed = {
        check["name"]: check["fix"] for check in report["checks"] if check["status"] == "fail"
    }
    assert "install-system-deps.sh" in failed["vulkan render device"]
    assert failed["assets (widowx)"] == "refinevla-bench assets fetch --suite widowx"
    assert failed["assets (google_robot_va)"] == "refinevla-bench assets fetch --suite google_robot"


OPTIONAL_MODULES = (
    "torch",
    "PIL",
    "pyarrow",
    "pandas",
    "openai",
    "transformers",
)  # typer needs pydantic


def hide_modules(folder: Path, names: tuple[str, ...]) -> dict[str, str]:
    """PYTHONPATH entries that make `import NAME` fail as if the package were not installed."""
    for name in names:
        package = folder / name
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{name}'\", name={name!r})\n"
        )
    return {"PYTHONPATH": str(folder)}


def test_cli_starts_without_the_extras_and_names_the_missing_one(tmp_path: Path) -> None:
    env = hide_modules(tmp_path / "hidden", OPTIONAL_MODULES)
    for command in (["--help"], ["annotate", "--help"], ["train", "--help"], ["tables", "--help"]):
        shown = run_cli(command, assets=None, extra_env=env)
        assert shown.returncode == 0, (command, shown.stderr[-2000:])
    annotate = run_cli(["annotate", str(tmp_path)], assets=None, extra_env=env)
    assert annotate.returncode == 2
    assert "needs the 'teacher' extra" in annotate.stderr
    assert "pip install 'refinevla-bench[teacher]'" in annotate.stderr
    assert len(annotate.stderr.strip().splitlines()) == 1
