"""Unary priors: end-effector kinematics, camera detections and the first object pose.

Residual ``Log(p̂⁻¹ x)`` (docs/design.md, "The factors"), the same as gtsam's PriorFactorPose2.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tactile_estimator import geometry as se2


def prior_residual(poses: Sequence[np.ndarray], measured: np.ndarray, context: object = None) -> np.ndarray:
    return se2.log(se2.between(measured, poses[0]))


def prior_jacobians(
    poses: Sequence[np.ndarray], measured: np.ndarray, context: object = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    r = prior_residual(poses, measured)
    return r, [se2.right_jacobian_inverse(r)]


def between_residual(poses: Sequence[np.ndarray], measured: np.ndarray, context: object = None) -> np.ndarray:
    """Log(m⁻¹ a⁻¹ b): a relative-motion prior between two object poses."""
    a, b = poses
    return se2.log(se2.between(measured, se2.between(a, b)))


def between_jacobians(
    poses: Sequence[np.ndarray], measured: np.ndarray, context: object = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    a, b = poses
    r = between_residual(poses, measured)
    jr_inv = se2.right_jacobian_inverse(r)
    return r, [-jr_inv @ se2.adjoint(se2.between(b, a)), jr_inv]
