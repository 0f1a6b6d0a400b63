"""The learned tactile factor (factors/tactile.py): zero at ground truth, Jacobians exact."""

from __future__ import annotations

import numpy as np
from test_factors import FAMILIES, assert_jacobians_agree, random_poses, tensors

from tactile_estimator import geometry as se2
from tactile_estimator.factors import numerical_jacobians, relative_sensor_motion
from tactile_estimator.factors.tactile import sensor_in_object


def test_tactile_factor_is_zero_at_ground_truth() -> None:
    o_i, e_i, o_j, e_j = (random_poses(5) for _ in range(4))
    measured = relative_sensor_motion(o_i, e_i, o_j, e_j)
    r = FAMILIES["tactile"].residual([o_i, e_i, o_j, e_j], measured, None)
    np.testing.assert_allclose(r, 0.0, atol=1e-12)


def test_training_target_is_the_relative_sensor_motion_of_the_numpy_library() -> None:
    o_i, e_i, o_j, e_j = (random_poses(20) for _ in range(4))
    expected = se2.between(se2.between(o_i, e_i), se2.between(o_j, e_j))
    np.testing.assert_allclose(relative_sensor_motion(o_i, e_i, o_j, e_j), expected, atol=1e-12)
    np.testing.assert_allclose(sensor_in_object(o_i[0], e_i[0]), se2.between(o_i[0], e_i[0]), atol=1e-12)


def test_pose_factor_jacobians_match_numerical() -> None:
    fam = FAMILIES["tactile"]
    poses = [random_poses(20) for _ in range(4)]
    measurement = random_poses(20, 0.02)
    as_t, m = tensors(poses, measurement)
    r, analytic = fam.jacobians(as_t, m, None)
    numeric = numerical_jacobians(fam.error, as_t, m, None)
    assert r.shape == (20, 3)
    for a, n in zip(analytic, numeric, strict=True):
        np.testing.assert_allclose(a.numpy(), n.numpy(), atol=1e-6)


def test_jacobians_equal_numerical_and_torch_func() -> None:
    assert_jacobians_agree("tactile", "rect", numerical_atol=1e-6, autodiff_atol=1e-9)
    assert_jacobians_agree("tactile", "ellipse", numerical_atol=1e-6, autodiff_atol=1e-9)
