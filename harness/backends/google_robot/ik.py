"""Inverse kinematics for the arm's end-effector target, in the robot-base frame.

Upstream (ManiSkill2_real2sim controllers/pd_ee_pose.py `compute_ik`) runs SAPIEN's pinocchio
CLIK on a model of the whole articulation (root fixed): 100 iterations from the measured qpos
of all joints, only the arm joints free, step `dt` 0.1, damping 1e-6, converged when the norm
of log6(current^-1 * target) (in the end-effector's parent-joint frame) is below 1e-4. Where
it does not converge it returns nothing and the arm keeps its measured qpos as the target.

- `PinocchioIK` (CPU simulation) is that same call on SAPIEN 3's model of the same articulation:
  same constants, start and failure rule. SAPIEN 3 on Linux without the `pinocchio` package
  runs its built-in C++ CLIK, as SAPIEN 2 did upstream (whether the two builds differ in
  detail, e.g. pinocchio's Jlog6 fix #1963, was not checked).
- `JacobianIK` (GPU simulation, batched, any torch device) runs the same damped least-squares
  iteration (dt 0.1, damping 1e-6, 100 iterations, 1e-4 threshold, best iterate kept) on
  pytorch_kinematics (ManiSkill3's GPU kinematics library), but its error is the base-frame
  [position difference, rotation vector of target * current^-1] instead of pinocchio's log6 in
  the joint frame. Both errors vanish exactly at the target pose and agree to first order,
  and the minimum-norm step does not depend on the frame, so both walk nearly the same path
  to the same redundant (7 joints, 6 constraints) solution; the threshold differs slightly
  because log6 weighs translation by the rotation. ManiSkill3's own GPU IK
  (`Kinematics.compute_ik`) takes one full Jacobian step with an Euler-angle error and no
  convergence test, which is why it is not used as is.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_kinematics as pk  # type: ignore[import-untyped]
import sapien
import torch
from torch import Tensor

from refinevla_bench.harness.backends.google_robot_control.pose import quaternion_multiply

ITERATIONS = 100
STEP = 0.1
DAMPING = 1e-6
TOLERANCE = 1e-4


@dataclass(frozen=True)
class IKResult:
    """Joint targets of the arm joints (N, A) and whether each row converged (N,)."""

    qpos: Tensor
    success: Tensor


class PinocchioIK:
    """Upstream's IK call on SAPIEN's pinocchio model of one CPU-simulated articulation."""

    def __init__(self, articulation: Any, link_name: str, arm_indices: Tensor) -> None:
        self._model = articulation.create_pinocchio_model()
        names = [link.name for link in articulation.get_links()]
        self._link_index = names.index(link_name)
        self._arm = arm_indices.cpu().numpy()
        self._mask = np.zeros(articulation.max_dof, dtype=np.int32)
        self._mask[self._arm] = 1

    def solve(self, position: Tensor, quaternion: Tensor, qpos: Tensor) -> IKResult:
        """Targets for base-frame poses (N, 3), (N, 4) wxyz from full qpos (N, dof)."""
        rows, success = [], []
        for p, q, start in zip(
            position.cpu().double().numpy(),
            quaternion.cpu().double().numpy(),
            qpos.cpu().double().numpy(),
            strict=True,
        ):
            result, converged, _error = self._model.compute_inverse_kinematics(
                self._link_index,
                sapien.Pose(p, q),
                initial_qpos=start,
                active_qmask=self._mask,
                max_iterations=ITERATIONS,
            )
            rows.append(np.asarray(result)[self._arm])
            success.append(bool(converged))
        return IKResult(
            torch.as_tensor(np.stack(rows), dtype=qpos.dtype, device=qpos.device),
            torch.as_tensor(success, device=qpos.device),
        )


def rotation_vector(quaternion: Tensor) -> Tensor:
    """(..., 4) unit quaternions wxyz -> (..., 3) rotation vectors of angle <= pi."""
    q = torch.where(quaternion[..., :1] < 0, -quaternion, quaternion)
    sin_half = torch.linalg.vector_norm(q[..., 1:], dim=-1, keepdim=True)
    angle = 2.0 * torch.atan2(sin_half, q[..., :1])
    # angle / sin(angle / 2) -> 2 as the angle -> 0
    scale = torch.where(sin_half > 1e-12, angle / sin_half.clamp_min(1e-12), 2.0)
    return q[..., 1:] * scale


def _conjugate(quaternion: Tensor) -> Tensor:
    return quaternion * quaternion.new_tensor([1.0, -1.0, -1.0, -1.0])


class JacobianIK:
    """Batched CLIK on a pytorch_kinematics chain from the URDF's root to `link_name`."""

    def __init__(
        self,
        urdf: Path,
        link_name: str,
        joint_names: list[str],
        arm_indices: Tensor,
        device: torch.device,
    ) -> None:
        # the URDF parser reports every tag it ignores (materials, contacts, jerk limits)
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            chain = pk.build_serial_chain_from_urdf(urdf.read_bytes(), end_link_name=link_name)
        self._chain = chain.to(dtype=torch.float64, device=device)
        chain_joints = self._chain.get_joint_parameter_names()
        arm = arm_indices.tolist()
        self._arm = arm_indices.to(device)
        self._chain_in_qpos = torch.tensor([joint_names.index(n) for n in chain_joints])
        self._chain_in_arm = torch.tensor(
            [arm.index(joint_names.index(n)) for n in chain_joints], device=device
        )

    def pose(self, chain_qpos: Tensor) -> tuple[Tensor, Tensor]:
        """Forward kinematics: base-frame position (N, 3) and quaternion wxyz (N, 4)."""
        matrix = self._chain.forward_kinematics(chain_qpos).get_matrix()
        return matrix[:, :3, 3], pk.matrix_to_quaternion(matrix[:, :3, :3])

    def solve(self, position: Tensor, quaternion: Tensor, qpos: Tensor) -> IKResult:
        """Targets for base-frame poses (N, 3), (N, 4) wxyz from full qpos (N, dof)."""
        target_p = position.to(torch.float64)
        target_q = quaternion.to(torch.float64)
        q = qpos.to(torch.float64)[:, self._chain_in_qpos.to(qpos.device)]
        best_q, best_error = q.clone(), torch.full_like(q[:, 0], torch.inf)
        active = torch.ones_like(best_error, dtype=torch.bool)
        eye = torch.eye(6, dtype=q.dtype, device=q.device)
        for _ in range(ITERATIONS):
            p, r = self.pose(q)
            rotation = rotation_vector(quaternion_multiply(target_q, _conjugate(r)))
            error = torch.cat([target_p - p, rotation], dim=-1)
            norm = torch.linalg.vector_norm(error, dim=-1)
            better = active & (norm < best_error)
            best_q = torch.where(better.unsqueeze(-1), q, best_q)
            best_error = torch.where(better, norm, best_error)
            active = active & (norm >= TOLERANCE)
            if not bool(active.any()):
                break
            jacobian = self._chain.jacobian(q)
            gram = jacobian @ jacobian.transpose(1, 2) + DAMPING * eye
            step = jacobian.transpose(1, 2) @ torch.linalg.solve(gram, error.unsqueeze(-1))
            q = q + STEP * step.squeeze(-1) * active.unsqueeze(-1)
        arm = qpos[:, self._arm].to(torch.float64)
        arm[:, self._chain_in_arm] = best_q
        return IKResult(arm.to(qpos.dtype), best_error < TOLERANCE)
