"""The learned tactile factor (DESIGN.md): relative sensor-in-object motion between steps i and j.

With s = o⁻¹e the sensor pose in the object frame, the network predicts T̂_ij ≈ s_i⁻¹ s_j from
the two tactile images, and the residual is ``Log(T̂_ij⁻¹ s_i⁻¹ s_j)`` over keys (o_i, e_i, o_j, e_j).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tactile_estimator import geometry as se2


def sensor_in_object(object_pose: np.ndarray, ee_pose: np.ndarray) -> np.ndarray:
    return se2.between(object_pose, ee_pose)


def relative_sensor_motion(o_i: np.ndarray, e_i: np.ndarray, o_j: np.ndarray, e_j: np.ndarray) -> np.ndarray:
    """s_i⁻¹ s_j: what the tactile network learns to predict (its training target)."""
    return se2.between(sensor_in_object(o_i, e_i), sensor_in_object(o_j, e_j))


def tactile_residual(poses: Sequence[np.ndarray], predicted: np.ndarray, context: object = None) -> np.ndarray:
    o_i, e_i, o_j, e_j = poses
    return se2.log(se2.between(predicted, relative_sensor_motion(o_i, e_i, o_j, e_j)))


def tactile_jacobians(
    poses: Sequence[np.ndarray], predicted: np.ndarray, context: object = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Analytic Jacobians by the adjoint: e_j moves the error on the right, the others through Ad."""
    o_i, e_i, o_j, e_j = poses
    s_i, s_j = sensor_in_object(o_i, e_i), sensor_in_object(o_j, e_j)
    r = se2.log(se2.between(predicted, se2.between(s_i, s_j)))
    jr_inv = se2.right_jacobian_inverse(r)
    ad_sj_inv = se2.adjoint(se2.inverse(s_j))
    ad_sj_inv_si = se2.adjoint(se2.between(s_j, s_i))
    j_e_j = jr_inv
    j_o_j = -jr_inv @ ad_sj_inv
    j_e_i = -jr_inv @ ad_sj_inv_si
    j_o_i = jr_inv @ ad_sj_inv
    return r, [j_o_i, j_e_i, j_o_j, j_e_j]
