"""Suite fidelity corrections checked in the real simulator."""

from __future__ import annotations

from pathlib import Path

from tests.support import run_sim_script

EGGPLANT_SCRIPT = r"""
import json, sys
from pathlib import Path
import numpy as np
from scipy.spatial.transform import Rotation
from refinevla_bench.harness.backends.maniskill import ManiSkillBackend
from refinevla_bench.harness.suites import get_suite

suite = get_suite("widowx")
task = suite.select_tasks(["eggplant_in_basket"])[0]
backend = ManiSkillBackend(suite, Path(sys.argv[1]), "cpu")
rows = []
with backend.open_task(task) as env:
    twin = env._env.unwrapped
    for episode_id in task.episode_ids:
        env.reset([episode_id], seed=0)
        placed = twin.xyz_configs[(episode_id % 24) // 3, 0].cpu().numpy()
        pose = twin.objs[twin.source_obj_name].pose
        yaw = Rotation.from_quat(pose.q[0].cpu().numpy(), scalar_first=True).as_euler("xyz")[2]
        rows.append({
            "placed": placed[:2].round(4).tolist(),
            "drift": float(np.linalg.norm(pose.p[0].cpu().numpy()[:2] - placed[:2])),
            "yaw_deg": float(np.degrees(yaw)),
        })
print(json.dumps(rows))
"""


def test_eggplant_uses_the_upstream_grid_of_8_positions_by_3_yaws(widowx_assets: Path) -> None:
    rows = run_sim_script(EGGPLANT_SCRIPT, str(widowx_assets))
    assert len(rows) == 24
    assert len({tuple(row["placed"]) for row in rows}) == 8
    # episode i has yaw index i % 3: 0, +45, -45 degrees, as upstream
    for index, row in enumerate(rows):
        expected = (0.0, 45.0, -45.0)[index % 3]
        assert abs(row["yaw_deg"] - expected) < 4.0, (index, row)
        assert row["drift"] < 0.01, (index, row)  # it rests where it was placed
