"""What is installed under an asset root, read from disk so every command agrees.

A finished install carries a marker file written before the folder is renamed into place, so a
target folder with a marker is complete by construction; folders without one were copied by hand.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from refinevla_bench.harness.assets.catalog import AssetSource, sources_for_suite
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.paths import assets_root

MARKER_NAME = ".refinevla-asset.json"
SUBSTITUTES_NAME = "SUBSTITUTES.json"
MARKER_FORMAT = 1

AssetState = Literal["installed", "unmanaged", "incomplete", "missing"]
READY_STATES: tuple[AssetState, ...] = ("installed", "unmanaged")


@dataclass(frozen=True)
class StandIn:
    """A file that replaces an unavailable upstream file: fine for smoke runs, not for numbers."""

    path: str
    stand_in_for: str
    what: str


@dataclass(frozen=True)
class AssetStatus:
    """One asset's state under a root; `source`, `sha256`, `pin` come from its marker."""

    id: str
    suites: tuple[str, ...]
    target: Path
    state: AssetState
    source: str | None = None
    sha256: str | None = None
    pin: str | None = None
    installed_at: str | None = None
    missing_files: tuple[str, ...] = ()
    standins: tuple[StandIn, ...] = ()

    @property
    def ready(self) -> bool:
        """Whether ManiSkill can load it (a hand-made copy with every required file counts)."""
        return self.state in READY_STATES

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "suites": list(self.suites),
            "target": str(self.target),
            "state": self.state,
            "ready": self.ready,
            "source": self.source,
            "sha256": self.sha256,
            "pin": self.pin,
            "installed_at": self.installed_at,
            "missing_files": list(self.missing_files),
            "standins": [vars(standin) for standin in self.standins],
        }


def read_substitutes(tree: Path, target: str) -> tuple[StandIn, ...]:
    """Stand-ins listed in `<tree>/SUBSTITUTES.json` that lie under `target` (none if absent)."""
    path = tree / SUBSTITUTES_NAME
    if not path.is_file():
        return ()
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
        standins = tuple(
            StandIn(str(e["path"]), str(e["stand_in_for"]), str(e["what"])) for e in entries
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise HarnessError(
            f"{path} is not a list of stand-in entries ({exc})",
            f"restore {path} from the asset copy it came with",
        ) from exc
    return tuple(s for s in standins if s.path.startswith(target.rstrip("/") + "/"))


def write_marker(
    folder: Path,
    source: AssetSource,
    origin: str,
    archive_sha256: str | None,
    standins: Sequence[StandIn],
) -> None:
    """Record provenance inside a staged folder, before it is renamed into place."""
    marker = {
        "format": MARKER_FORMAT,
        "id": source.id,
        "source": origin,
        "sha256": archive_sha256,
        "pin": source.pin,
        "installed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "standins": [vars(standin) for standin in standins],
    }
    (folder / MARKER_NAME).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")


def _read_marker(target: Path, asset_id: str) -> dict[str, Any] | None:
    try:
        marker = json.loads((target / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("id") != asset_id:
        return None
    return marker


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _marker_standins(marker: dict[str, Any]) -> tuple[StandIn, ...]:
    entries = marker.get("standins")
    if not isinstance(entries, list):
        return ()
    return tuple(
        StandIn(str(e.get("path")), str(e.get("stand_in_for")), str(e.get("what")))
        for e in entries
        if isinstance(e, dict)
    )


def asset_status(root: Path, source: AssetSource) -> AssetStatus:
    """Classify `source`'s target folder under `root` (never modifies anything)."""
    target = root / source.target
    if not target.exists():
        return AssetStatus(source.id, source.suites, target, "missing")
    if not target.is_dir():
        return AssetStatus(
            source.id, source.suites, target, "incomplete", missing_files=source.required
        )
    missing = tuple(rel for rel in source.required if not (target / rel).exists())
    if missing:
        return AssetStatus(source.id, source.suites, target, "incomplete", missing_files=missing)
    marker = _read_marker(target, source.id)
    if marker is None:
        # A hand copy of a laid-out tree may still carry its SUBSTITUTES.json at the root.
        standins = read_substitutes(root, source.target)
        return AssetStatus(source.id, source.suites, target, "unmanaged", standins=standins)
    return AssetStatus(
        source.id,
        source.suites,
        target,
        "installed",
        source=_optional_str(marker.get("source")),
        sha256=_optional_str(marker.get("sha256")),
        pin=_optional_str(marker.get("pin")),
        installed_at=_optional_str(marker.get("installed_at")),
        standins=_marker_standins(marker),
    )


def suite_asset_status(root: Path, suite: str) -> list[AssetStatus]:
    """Status of every asset `suite` needs (`all`: every asset)."""
    return [asset_status(root, source) for source in sources_for_suite(suite)]


def fetch_command(root: Path, suite: str, *, force: bool = False) -> str:
    """The exact `assets fetch` command that fills `root` for `suite`."""
    command = f"refinevla-bench assets fetch --suite {suite}"
    if root.resolve() != assets_root(None):
        command += f" --dir {shlex.quote(str(root))}"
    return command + (" --force" if force else "")


def require_suite_assets(root: Path, suite: str) -> None:
    """Fail with the fixing command before ManiSkill can find a gap and prompt on stdin."""
    not_ready = [status for status in suite_asset_status(root, suite) if not status.ready]
    if not not_ready:
        return
    gaps = ", ".join(f"{status.id} {status.state}" for status in not_ready)
    force = any(status.state == "incomplete" for status in not_ready)
    raise HarnessError(
        f"assets for suite {suite} are not ready in {root}: {gaps}",
        f"run `{fetch_command(root, suite, force=force)}` "
        "(add `--from DIR` to install from a local copy)",
    )
