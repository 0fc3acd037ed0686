"""`policies new`: a standalone, pip-installable adapter package that passes `policies check`
as generated, so a new baseline starts from working code instead of a blank file."""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.registry import registered_policies

_NAME = re.compile(r"[a-z][a-z0-9_]*")

# template file -> where it goes in the package (module placeholders filled in below)
_LAYOUT = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "__init__.py.tmpl": "src/{module}/__init__.py",
    "policy.py.tmpl": "src/{module}/policy.py",
    "test_conformance.py.tmpl": "tests/test_conformance.py",
}


@dataclass(frozen=True)
class AdapterNames:
    """Every name derived from the policy name, so they cannot drift apart."""

    name: str  # the entry point: `--policy NAME`

    @property
    def distribution(self) -> str:
        return f"refinevla-policy-{self.name.replace('_', '-')}"

    @property
    def module(self) -> str:
        return f"refinevla_policy_{self.name}"

    @property
    def class_name(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_") if part) + "Policy"


def validate_policy_name(name: str) -> AdapterNames:
    if not _NAME.fullmatch(name) or keyword.iskeyword(name):
        raise HarnessError(
            f"policy name '{name}' is not a lowercase Python identifier",
            "use lowercase letters, digits and underscores, starting with a letter (e.g. myvla)",
        )
    if name in registered_policies():
        raise HarnessError(
            f"a policy named '{name}' is already registered",
            "pick another name (`refinevla-bench policies list` shows the taken ones)",
        )
    return AdapterNames(name)


def _render(template: str, names: AdapterNames) -> str:
    text = (resources.files("refinevla_bench.policies") / "templates" / template).read_text()
    return Template(text).substitute(
        name=names.name,
        distribution=names.distribution,
        module=names.module,
        class_name=names.class_name,
    )


def scaffold_policy(name: str, directory: Path) -> Path:
    """Write the package to directory/<distribution>; an existing folder is never touched."""
    names = validate_policy_name(name)
    root = directory / names.distribution
    if root.exists():
        raise HarnessError(
            f"{root} already exists", "pick another --dir, or move the existing folder away"
        )
    for template, relative in _LAYOUT.items():
        target = root / relative.format(module=names.module)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_render(template, names))
    return root
