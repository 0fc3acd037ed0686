"""The upstream assets each suite needs, where they come from and where they must land."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from refinevla_bench.harness.errors import HarnessError

SUITE_NAMES: tuple[str, ...] = ("widowx", "google_robot")
ALL_SUITES = "all"


@dataclass(frozen=True)
class AssetSource:
    """One upstream archive and the folder it becomes under the asset root.

    `url` is used as is unless $REFINEVLA_ASSET_MIRROR is set (see `download.resolve_url`), so
    tests and private mirrors can build their own sources. `inner_path` selects a sub-folder of
    the archive's single top-level folder; `required` lists paths (relative to `target`) whose
    absence means the install is unusable.
    """

    id: str
    url: str
    sha256: str | None
    pin: str
    inner_path: str
    target: str
    required: tuple[str, ...]
    suites: tuple[str, ...]

    @property
    def url_file_name(self) -> str:
        """The archive's name as upstream serves it (what a browser download would save)."""
        return PurePosixPath(urlsplit(self.url).path).name


ASSET_SOURCES: tuple[AssetSource, ...] = (
    AssetSource(
        id="widowx250s",
        url="https://github.com/haosulab/ManiSkill-WidowX250S/archive/refs/tags/v0.2.0.zip",
        sha256=None,
        pin="tag v0.2.0",
        inner_path="",
        target="maniskill/data/robots/widowx",
        required=("wx250s.urdf", "wx250s.srdf", "meshes_wx250s"),
        suites=("widowx",),
    ),
    AssetSource(
        id="bridge_v2_real2sim",
        url=(
            "https://huggingface.co/datasets/haosulab/ManiSkill_bridge_v2_real2sim/resolve/main/"
            "bridge_v2_real2sim_dataset.zip"
        ),
        sha256="618512a205b4528cafecdad14b1788ed1130879f3064deb406516ed5b9c5ba92",
        pin="sha256 618512a205b4",
        inner_path="",
        target="maniskill/data/tasks/bridge_v2_real2sim_dataset",
        required=(
            "custom/info_bridge_custom_v0.json",
            "custom/models",
            "real_inpainting/bridge_real_eval_1.png",
            "real_inpainting/bridge_sink.png",
        ),
        suites=("widowx",),
    ),
    AssetSource(
        id="googlerobot",
        url="https://github.com/haosulab/ManiSkill-GoogleRobot/archive/refs/tags/v0.1.0.zip",
        sha256=None,
        pin="tag v0.1.0",
        inner_path="",
        target="maniskill/data/robots/googlerobot",
        required=("google_robot_meta_sim_fix_wheel_fix_fingertip.urdf",),
        suites=("google_robot",),
    ),
    AssetSource(
        id="real2sim_data",
        url=(
            "https://github.com/simpler-env/ManiSkill2_real2sim/archive/"
            "ef7a4d4fdf4b69f2c2154db5b15b9ac8dfe10682.zip"
        ),
        sha256=None,
        pin="commit ef7a4d4",
        inner_path="data",
        target="real2sim/data",
        required=(
            "custom/info_pick_custom_v0.json",
            "custom/mk_station_recolor.urdf",
            "real_inpainting/google_coke_can_real_eval_1.png",
        ),
        suites=("google_robot",),
    ),
)


def sources_for_suite(suite: str) -> list[AssetSource]:
    """The sources a suite needs (`all`: every source), in install order."""
    if suite == ALL_SUITES:
        return list(ASSET_SOURCES)
    if suite not in SUITE_NAMES:
        choices = ", ".join((*SUITE_NAMES, ALL_SUITES))
        raise HarnessError(f"unknown suite {suite!r}", f"use --suite with one of: {choices}")
    return [source for source in ASSET_SOURCES if suite in source.suites]
