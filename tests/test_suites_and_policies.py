"""Suite data matches the SimplerEnv protocol; the registry finds policies by entry point."""

from __future__ import annotations

import numpy as np
import pytest

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.suites import get_suite
from refinevla_bench.policies.protocol import ObservationBatch
from refinevla_bench.policies.registry import convert_options, create_policy, registered_policies


def test_widowx_suite_follows_the_protocol() -> None:
    suite = get_suite("widowx")
    assert (suite.camera.name, suite.camera.width, suite.camera.height) == (
        "3rd_view_camera",
        640,
        480,
    )
    assert suite.control_hz == 5.0
    assert [task.max_steps for task in suite.tasks] == [60, 60, 60, 120]
    assert all(task.episode_ids == tuple(range(24)) for task in suite.tasks)
    assert suite.controller.rotation == "euler_xyz"
    assert suite.controller.gripper == "absolute"
    assert {task.instruction for task in suite.tasks} == {
        "put the spoon on the towel",
        "put carrot on plate",
        "stack the green block on the yellow block",
        "put eggplant into yellow basket",
    }


def test_unknown_suite_and_task_name_the_fix() -> None:
    with pytest.raises(HarnessError, match="unknown suite 'nope'") as caught:
        get_suite("nope")
    assert "widowx" in caught.value.fix
    with pytest.raises(HarnessError, match="no task") as caught_task:
        get_suite("widowx").select_tasks(["carrot_on_plate", "fly"])
    assert "spoon_on_towel" in caught_task.value.fix


def test_task_selection_keeps_suite_order() -> None:
    chosen = get_suite("widowx").select_tasks(["eggplant_in_basket", "spoon_on_towel"])
    assert [task.name for task in chosen] == ["spoon_on_towel", "eggplant_in_basket"]


def test_zero_policy_is_registered_through_its_entry_point() -> None:
    entry = registered_policies()["zero"]
    assert entry.target == "refinevla_bench.policies.zero:ZeroPolicy"
    policy = create_policy("zero")
    policy.reset(["put carrot on plate"] * 2)
    batch = ObservationBatch(np.zeros((2, 480, 640, 3), dtype=np.uint8), ("a", "b"))
    actions = policy.act(batch)
    assert actions.shape == (2, 7)
    assert not actions.any()


def test_unknown_policy_points_at_the_list_command() -> None:
    with pytest.raises(HarnessError, match="unknown policy 'gpt-robot'") as caught:
        create_policy("gpt-robot")
    assert "refinevla-bench policies list" in caught.value.fix


class _OptionalOptions:
    def __init__(self, batch_size: int | None = None, scale: float = 1.0) -> None:
        self.batch_size, self.scale = batch_size, scale


def test_optional_options_are_typed_by_their_non_none_member() -> None:
    converted = convert_options("p", _OptionalOptions, {"batch_size": "3", "scale": "2"})
    assert converted == {"batch_size": 3, "scale": 2.0}
    with pytest.raises(HarnessError, match="not a valid int"):
        convert_options("p", _OptionalOptions, {"batch_size": "many"})
