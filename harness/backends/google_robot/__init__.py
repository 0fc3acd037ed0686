"""SimplerEnv's Google Robot in ManiSkill3, driven by upstream's controllers.

- `agent`: the static-base robot (URDF version, camera, initial qpos, materials);
- `controller`: the EE-align + planner control mode as a ManiSkill3 controller;
- `ik`: upstream's pinocchio IK (CPU) and a batched torch equivalent (GPU);
- `scene`: `GoogleRobotScene`, the robot on a floor, which task environments extend.

These modules import ManiSkill, whose asset folder is fixed at its first import: import them
only after `harness.backends.maniskill.import_maniskill` (importing `scene` registers the
agent and the environment).
"""
