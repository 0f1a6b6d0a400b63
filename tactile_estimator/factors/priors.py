"""Pose priors: end-effector kinematics, camera detections and the first object pose (unary,
``Log(p̂⁻¹ x)``, docs/design.md "The factors"), and the relative-motion priors between consecutive
object poses (``Log(m⁻¹ a⁻¹ b)``). The same errors as gtsam's PriorFactorPose2 and
BetweenFactorPose2, which the iSAM2 backend uses for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tactile_estimator.factors import lie
from tactile_estimator.factors.base import Family, Poses

if TYPE_CHECKING:
    from torch import Tensor


def prior_error(poses: Poses, measured: Tensor, context: object = None) -> Tensor:
    return lie.log(lie.between(measured, poses[0]))


def prior_jacobians(poses: Poses, measured: Tensor, context: object = None) -> tuple[Tensor, list[Tensor]]:
    r = prior_error(poses, measured)
    return r, [lie.right_jacobian_inverse(r)]


def between_error(poses: Poses, measured: Tensor, context: object = None) -> Tensor:
    """Log(m⁻¹ a⁻¹ b): a relative-motion prior between two object poses."""
    return lie.log(lie.between(measured, lie.between(poses[0], poses[1])))


def between_jacobians(poses: Poses, measured: Tensor, context: object = None) -> tuple[Tensor, list[Tensor]]:
    a, b = poses
    r = between_error(poses, measured)
    jr_inv = lie.right_jacobian_inverse(r)
    return r, [-jr_inv @ lie.adjoint(lie.between(b, a)), jr_inv]


FAMILIES = (
    Family("ee_prior", ("e",), 3, prior_error, prior_jacobians, gtsam="prior"),
    Family("camera", ("o",), 3, prior_error, prior_jacobians, gtsam="prior"),
    Family("first_pose", ("o",), 3, prior_error, prior_jacobians, learnable=False, gtsam="prior"),
    # Not switchable: the object at rest out of contact (part of the quasi-static motion model, off
    # with "pushing"), and a weak constant-position prior that keeps the graph determinate.
    Family("at_rest", ("o", "o"), 3, between_error, between_jacobians, switchable=False, learnable=False,
           gtsam="between"),
    Family("motion_prior", ("o", "o"), 3, between_error, between_jacobians, switchable=False, learnable=False,
           gtsam="between"),
)
