"""The learned tactile factor (DESIGN.md): relative sensor-in-object motion between steps i and j.

With s = o⁻¹e the sensor pose in the object frame, the network predicts T̂_ij ≈ s_i⁻¹ s_j from
the two tactile images, and the residual is ``Log(T̂_ij⁻¹ s_i⁻¹ s_j)`` over keys (o_i, e_i, o_j, e_j).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tactile_estimator.factors import lie
from tactile_estimator.factors.base import Family, Poses, as_tensor

if TYPE_CHECKING:
    from torch import Tensor


def sensor_pose(o: Tensor, e: Tensor) -> Tensor:
    """s = o⁻¹e, the sensor's pose in the object frame."""
    return lie.between(o, e)


def sensor_motion(o_i: Tensor, e_i: Tensor, o_j: Tensor, e_j: Tensor) -> Tensor:
    """s_i⁻¹ s_j: what the tactile network predicts."""
    return lie.between(sensor_pose(o_i, e_i), sensor_pose(o_j, e_j))


def sensor_in_object(object_pose: np.ndarray, ee_pose: np.ndarray) -> np.ndarray:
    """``sensor_pose`` on numpy poses (..., 3)."""
    return sensor_pose(as_tensor(object_pose), as_tensor(ee_pose)).numpy()


def relative_sensor_motion(o_i: np.ndarray, e_i: np.ndarray, o_j: np.ndarray, e_j: np.ndarray) -> np.ndarray:
    """``sensor_motion`` on numpy poses (..., 3): the tactile network's training target."""
    return sensor_motion(as_tensor(o_i), as_tensor(e_i), as_tensor(o_j), as_tensor(e_j)).numpy()


def tactile_error(poses: Poses, predicted: Tensor, context: object = None) -> Tensor:
    return lie.log(lie.between(predicted, sensor_motion(*poses)))


def tactile_jacobians(poses: Poses, predicted: Tensor, context: object = None) -> tuple[Tensor, list[Tensor]]:
    """Analytic Jacobians by the adjoint: e_j moves the error on the right, the others through Ad."""
    o_i, e_i, o_j, e_j = poses
    s_i, s_j = sensor_pose(o_i, e_i), sensor_pose(o_j, e_j)
    r = lie.log(lie.between(predicted, lie.between(s_i, s_j)))
    jr_inv = lie.right_jacobian_inverse(r)
    ad_sj_inv = lie.adjoint(lie.inverse(s_j))
    ad_sj_inv_si = lie.adjoint(lie.between(s_j, s_i))
    return r, [jr_inv @ ad_sj_inv, -jr_inv @ ad_sj_inv_si, -jr_inv @ ad_sj_inv, jr_inv]


FAMILY = Family("tactile", ("o", "e", "o", "e"), 3, tactile_error, tactile_jacobians)
