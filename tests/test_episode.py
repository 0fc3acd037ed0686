"""Real rendered WidowX episodes on the CPU: the simulator, the runner and the CLI together."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import run_cli, run_sim_script

EPISODE_SCRIPT = r'''
import json, sys
from pathlib import Path
import numpy as np
from refinevla_bench.harness.backends.maniskill import ManiSkillBackend
from refinevla_bench.harness.runner import run_task
from refinevla_bench.harness.suites import get_suite
from refinevla_bench.policies.protocol import PolicyConventions
from refinevla_bench.policies.zero import ZeroPolicy


class Recording(ZeroPolicy):
    """Zero actions, but remembers every image it was shown."""
    def __init__(self):
        self.images = []
        self.instructions = []
    def reset(self, instructions):
        self.instructions.append(list(instructions))
    def act(self, observation):
        self.images.append(observation.images.copy())
        return super().act(observation)


class Broken(ZeroPolicy):
    def __init__(self, mode):
        self.mode = mode
    def act(self, observation):
        if self.mode == "nan":
            return np.full((1, 7), np.nan)
        if self.mode == "shape":
            return np.zeros((1, 5))
        raise KeyError("model exploded")


suite = get_suite("widowx")
task = suite.select_tasks(["carrot_on_plate"])[0]
backend = ManiSkillBackend(suite, Path(sys.argv[1]), "cpu")
recording = Recording()
out = {}
with backend.open_task(task) as env:
    records = list(run_task(env, suite, recording, [0, 5], seed=0))
    out["records"] = [r.to_json() for r in records]
    first, last = recording.images[0][0], recording.images[59][0]
    out["shape"] = list(first.shape)
    out["dtype"] = str(first.dtype)
    out["std"] = float(first.std())
    out["distinct_colours"] = int(len(np.unique(first.reshape(-1, 3), axis=0)))
    out["episode_images_differ"] = bool((recording.images[0][0] != recording.images[60][0]).any())
    out["instructions"] = recording.instructions
    broken = []
    for mode in ("nan", "shape", "raise"):
        broken.extend(r.to_json() for r in run_task(env, suite, Broken(mode), [1], seed=0))
    out["broken"] = broken
    out["after_errors"] = run_task(env, suite, recording, [2], seed=0).__next__().to_json()
    from PIL import Image
    Image.fromarray(first).save(sys.argv[2])
print(json.dumps(out))
'''


def test_rendered_episode_reuses_the_env_and_survives_bad_policies(
    widowx_assets: Path, tmp_path: Path
) -> None:
    frame = tmp_path / "frame.png"
    out = run_sim_script(EPISODE_SCRIPT, str(widowx_assets), str(frame))
    assert out["shape"] == [480, 640, 3] and out["dtype"] == "uint8"
    # a real render over the green-screen photo: many colours, not a blank or constant frame
    assert out["std"] > 20 and out["distinct_colours"] > 5000
    assert out["episode_images_differ"]  # episode 5 places the objects elsewhere than episode 0
    assert out["instructions"][:2] == [["put carrot on plate"], ["put carrot on plate"]]
    for record, episode_id in zip(out["records"], [0, 5], strict=True):
        assert record["episode_id"] == episode_id
        assert record["steps"] == 60 and record["termination"] == "max_steps"
        assert record["success"] is False and record["error"] is None
    reasons = [record["error"] for record in out["broken"]]
    assert all(
        record["termination"] == "error" and record["success"] is False for record in out["broken"]
    )
    assert "NaN" in reasons[0] and "shape" in reasons[1] and "KeyError" in reasons[2]
    assert out["after_errors"]["termination"] == "max_steps"
    assert frame.stat().st_size > 50_000


def test_cli_smoke_run_prints_a_result_line(widowx_assets: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["run", "--policy", "zero", "--episodes", "1", "--seeds", "0", "--tasks", "stack_block"]
    completed = run_cli([*args, "--out", str(out)], assets=widowx_assets)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = [line for line in completed.stdout.splitlines() if line.startswith("result: ")]
    assert len(result) == 1
    assert "suite=widowx policy=zero success_mode=truncation episodes=1/1 success=0/1" in result[0]
    assert "stack_block: success 0/1" in completed.stderr
    assert "| zero† |" in completed.stdout  # the paper-layout table, stand-in assets marked
    record = json.loads((out / "episodes.jsonl").read_text())
    assert (record["task"], record["episode_id"], record["seed"], record["steps"]) == (
        "stack_block",
        0,
        0,
        60,
    )
