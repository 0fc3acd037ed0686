"""The pieces every adapter shares: un-normalisation, the sticky relative gripper, model
sources and the error naming a family's environment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.adapters.framework import import_framework
from refinevla_bench.policies.adapters.gripper import StickyRelativeGripper, absolute_from_openness
from refinevla_bench.policies.adapters.normalization import (
    BoundsStatistics,
    MeanStdStatistics,
    pick_statistics,
    unnormalize_bounds,
    unnormalize_mean_std,
)
from refinevla_bench.policies.adapters.sources import model_source


def test_bounds_map_minus_one_to_q01_and_one_to_q99_except_masked_dimensions() -> None:
    stats = BoundsStatistics.from_mapping(
        {"q01": [-0.5, 0.0], "q99": [0.5, 2.0], "mask": [True, False]}, dim=2
    )
    values = unnormalize_bounds([[-1.0, 0.3], [1.0, 0.7], [0.0, -1.0]], stats)
    assert values.tolist() == [[-0.5, 0.3], [0.5, 0.7], [0.0, -1.0]]


def test_mean_std_scales_then_shifts_where_the_mask_is_set() -> None:
    stats = MeanStdStatistics.from_mapping(
        {"mean": [1.0, 5.0], "std": [2.0, 3.0], "mask": [True, False]}, dim=2
    )
    assert unnormalize_mean_std([[0.5, 0.5]], stats).tolist() == [[2.0, 0.5]]
    with pytest.raises(HarnessError, match=r"'std' has shape \(1,\), expected \(2,\)"):
        MeanStdStatistics.from_mapping({"mean": [1.0, 5.0], "std": [2.0]}, dim=2)


def test_statistics_are_picked_by_name_or_alone_and_ambiguity_is_refused() -> None:
    assert pick_statistics({"bridge_orig": 1}, None, "ckpt") == ("bridge_orig", 1)
    both = {"bridge_orig": 1, "fractal20220817_data": 2}
    assert pick_statistics(both, "fractal20220817_data", "ckpt")[1] == 2
    assert pick_statistics(both, None, "ckpt", default="bridge_orig")[1] == 1
    assert pick_statistics({"kuka": 3}, None, "ckpt", default="bridge_orig") == ("kuka", 3)
    with pytest.raises(HarnessError, match="holds statistics for bridge_orig, fractal"):
        pick_statistics(both, None, "ckpt")
    with pytest.raises(HarnessError, match="no statistics 'kuka'"):
        pick_statistics(both, "kuka", "ckpt")


def test_sticky_gripper_follows_upstreams_relative_rule() -> None:
    """Upstream (OpenVLA/Octo on Google Robot): relative = previous - current openness (0 at the
    first step); a change above 0.5 is repeated for `repeat` steps, then released."""
    gripper = StickyRelativeGripper(repeat=3)
    gripper.reset(1)
    openness = [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.8, 1.0]
    sent = [float(gripper(np.array([value]))[0]) for value in openness]
    # step 3 closes (+1) and holds it 3 steps; 8 opens by 0.8 (> 0.5) and holds it
    assert sent == pytest.approx([0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, -0.8, -0.8])


def test_sticky_gripper_rows_are_independent_and_its_state_is_its_own() -> None:
    gripper = StickyRelativeGripper(repeat=2)
    gripper.reset(2)
    column = np.array([1.0, 1.0])
    gripper(column)
    column[:] = [0.0, 1.0]  # the caller reuses its array, as an action's gripper column is
    assert gripper(column).tolist() == [1.0, 0.0]
    column[:] = [0.0, 1.0]
    assert gripper(column).tolist() == [1.0, 0.0]  # held; the second row never changed
    column[:] = [0.0, 1.0]
    assert gripper(column).tolist() == [0.0, 0.0]


def test_absolute_gripper_is_binarised_at_one_half() -> None:
    assert absolute_from_openness([0.0, 0.5, 0.51, 1.0]).tolist() == [-1.0, -1.0, 1.0, 1.0]


def test_model_sources_are_local_paths_or_hub_ids(tmp_path: Path) -> None:
    assert model_source(str(tmp_path)) == str(tmp_path)
    assert model_source("openvla/openvla-7b") == "openvla/openvla-7b"
    with pytest.raises(HarnessError, match="neither an existing path nor a hub id"):
        model_source("./missing/checkpoint")


def test_a_missing_framework_names_the_family_environment() -> None:
    with pytest.raises(HarnessError, match="the 'octo' adapter needs no_such_framework") as caught:
        import_framework("no_such_framework", "octo")
    assert "docker/families/octo" in caught.value.fix
