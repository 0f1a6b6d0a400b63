"""The torch factor forms equal the numpy definitions: residuals and Jacobians, to 1e-9."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_factors import MODELS, RNG, random_poses, touching_ee

from tactile_estimator import geometry as se2
from tactile_estimator.factors import FAMILIES, torch_forms

FAMILY_KEYS = {"tactile": 4, "pushing": 4, "contact": 2, "tactile_normal": 2, "ee_prior": 1, "camera": 1,
               "first_pose": 1, "at_rest": 2, "motion_prior": 2}
SHAPED = ("contact", "pushing", "tactile_normal")  # families that read the object's shape


def poses_for(family: str, kind: str, n: int = 12) -> tuple[list[np.ndarray], np.ndarray]:
    model = MODELS[kind]
    if family in SHAPED:
        o_prev = random_poses(n)
        e_prev = np.stack([touching_ee(model.shape, o, RNG.uniform(-np.pi, np.pi), 0.1) for o in o_prev])
        e_prev[:, :2] += RNG.normal(0, 0.002, (n, 2))
        if family == "contact":
            return [o_prev, e_prev], np.zeros((n, 0))
        if family == "tactile_normal":
            return [o_prev, e_prev], RNG.normal(0, 0.1, (n, 1))
        step = np.column_stack([RNG.normal(0, 0.003, (n, 2)), RNG.normal(0, 0.02, n)])
        return [o_prev, se2.compose(o_prev, step), e_prev, se2.compose(e_prev, step)], np.zeros((n, 0))
    return [random_poses(n) for _ in range(FAMILY_KEYS[family])], random_poses(n, 0.02)


CASES = [(f, k) for f in sorted(FAMILY_KEYS) for k in (("rect", "disc", "ellipse") if f in SHAPED else ("rect",))]


@pytest.mark.parametrize(("family", "kind"), CASES)
def test_torch_residuals_and_jacobians_equal_numpy(family: str, kind: str) -> None:
    model = MODELS[kind]
    poses, measurement = poses_for(family, kind)
    r_np, jac_np = FAMILIES[family].jacobians(poses, measurement, model)
    as_t = [torch.from_numpy(p) for p in poses]
    r_t, jac_t = torch_forms.JACOBIANS[family](as_t, torch.from_numpy(measurement), model)
    np.testing.assert_allclose(r_t.numpy(), r_np, atol=1e-9)
    np.testing.assert_allclose(torch_forms.RESIDUALS[family](as_t, torch.from_numpy(measurement), model).numpy(), r_np,
                               atol=1e-9)
    # pushing is numerical in both forms: float rounding of the differences allows 1e-7
    tol = 1e-7 if family in ("pushing", "tactile_normal") else 1e-9
    for a, b in zip(jac_t, jac_np, strict=True):
        np.testing.assert_allclose(a.numpy(), b, atol=tol)


def test_torch_jacobians_match_their_own_numerical_derivatives() -> None:
    for family in ("tactile", "contact", "ee_prior", "motion_prior"):
        poses, measurement = poses_for(family, "ellipse")
        as_t = [torch.from_numpy(p) for p in poses]
        m = torch.from_numpy(measurement)
        _, analytic = torch_forms.JACOBIANS[family](as_t, m, MODELS["ellipse"])
        numeric = torch_forms.numerical_jacobians(torch_forms.RESIDUALS[family], as_t, m, MODELS["ellipse"])
        for a, b in zip(analytic, numeric, strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


@pytest.mark.parametrize("w", [0.0, 5e-5, -9e-5, 2e-4, 0.7])
def test_right_jacobian_equals_gtsam_on_both_sides_of_the_small_angle_branch(w: float) -> None:
    """Below |w| = 1e-4 a series is used; gtsam's closed form is exact there down to ~1e-5 (1e-7: its rounding)."""
    gtsam = pytest.importorskip("gtsam")
    xi = np.array([0.3, -0.2, w])
    reference = gtsam.Pose2.ExpmapDerivative(xi)
    np.testing.assert_allclose(se2.right_jacobian(xi), reference, atol=1e-7)
    np.testing.assert_allclose(torch_forms.right_jacobian_inverse(torch.from_numpy(xi)).numpy(),
                               np.linalg.inv(reference), atol=1e-7)


@pytest.mark.parametrize("w", [0.0, 3e-5, -9e-5, 2e-4, 0.7, -3.0])
def test_log_derivative_on_floats_is_the_inverse_right_jacobian(w: float) -> None:
    xi = np.array([0.3, -0.2, w])
    np.testing.assert_allclose(se2.log_derivative(*xi), se2.right_jacobian_inverse(xi), atol=1e-12)
    # And the derivative of Log itself, by central differences of Log(Exp(xi) * Exp(delta)).
    h = 1e-6
    numeric = np.stack([(se2.log(se2.compose(se2.exp(xi), se2.exp(d))) - se2.log(se2.compose(se2.exp(xi), se2.exp(-d))))
                        / (2 * h) for d in np.eye(3) * h], axis=-1)
    np.testing.assert_allclose(se2.log_derivative(*xi), numeric, atol=1e-7)
