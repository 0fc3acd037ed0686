"""`policies new` then `policies check` through the real CLI, with the generated package
installed the way a user installs it (pip), into a private folder on PYTHONPATH."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import run_cli


def test_new_package_installs_and_passes_the_check(tmp_path: Path) -> None:
    created = run_cli(["policies", "new", "mypolicy", "--dir", str(tmp_path)], assets=None)
    assert created.returncode == 0, created.stderr[-2000:]
    package = tmp_path / "refinevla-policy-mypolicy"
    site = tmp_path / "site"
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(package),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    env = {"PYTHONPATH": str(site)}
    listed = run_cli(["policies", "list"], assets=None, extra_env=env)
    assert "mypolicy" in listed.stdout
    checked = run_cli(["policies", "check", "mypolicy"], assets=None, extra_env=env)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]
    assert "all checks passed" in checked.stdout

    again = run_cli(["policies", "new", "mypolicy", "--dir", str(tmp_path)], assets=None)
    assert again.returncode == 2 and "exists" in again.stderr  # never overwritten
    unknown = run_cli(["policies", "check", "nosuchpolicy"], assets=None)
    assert unknown.returncode == 2 and "unknown policy" in unknown.stderr
