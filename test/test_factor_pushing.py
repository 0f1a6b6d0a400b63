"""The quasi-static pushing factor (factors/pushing.py): zero for a sticking push, Jacobians by differences."""

from __future__ import annotations

import numpy as np
import pytest
from test_factors import FAMILIES, MODELS, RNG, assert_jacobians_agree, random_poses, tensors, touching_ee

from tactile_estimator import geometry as se2
from tactile_estimator.factors import numerical_jacobians


def test_pushing_factor_is_zero_for_sticking_push_through_centre() -> None:
    """Pushing a disc straight through its centre: D·V = V_p holds exactly for a pure translation."""
    model = MODELS["disc"]
    o0 = np.array([0.0, 0.0, 0.3])
    e0 = touching_ee(model.shape, o0, np.pi, 0.0)  # tip on the -x side of the object, facing +x
    step = se2.transform_point(o0, np.array([0.003, 0.0])) - o0[:2]
    o1 = o0 + np.array([step[0], step[1], 0.0])
    e1 = e0 + np.array([step[0], step[1], 0.0])
    r = FAMILIES["pushing"].residual([o0[None], o1[None], e0[None], e1[None]], np.zeros((1, 0)), model)
    np.testing.assert_allclose(r, 0.0, atol=1e-9)
    # A rotation the pusher cannot explain is penalised.
    o1_rot = o1 + np.array([0.0, 0.0, 0.05])
    r_rot = FAMILIES["pushing"].residual([o0[None], o1_rot[None], e0[None], e1[None]], np.zeros((1, 0)), model)
    assert np.linalg.norm(r_rot) > 1e-3


def test_pushing_jacobians_match_fine_numerical() -> None:
    model = MODELS["rect"]
    o0 = random_poses(4)
    e0 = np.stack([touching_ee(model.shape, o, RNG.uniform(2.6, 3.6), 0.1) for o in o0])
    o1 = se2.compose(o0, random_poses(4, 0.002) * np.array([1, 1, 0.05]))
    e1 = se2.compose(e0, random_poses(4, 0.002) * np.array([1, 1, 0.05]))
    as_t, m = tensors([o0, o1, e0, e1], np.zeros((4, 0)))
    _, jac = FAMILIES["pushing"].jacobians(as_t, m, model)
    fine = numerical_jacobians(FAMILIES["pushing"].error, as_t, m, model, step=1e-7)
    for a, n in zip(jac, fine, strict=True):
        np.testing.assert_allclose(a.numpy(), n.numpy(), atol=1e-4)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # torch's jvp rules
@pytest.mark.parametrize("kind", ["rect", "disc", "ellipse"])
def test_jacobians_equal_numerical_and_torch_func(kind: str) -> None:
    """Its Jacobians are central differences (step 1e-6): torch.func agrees to their error, 1e-7."""
    assert_jacobians_agree("pushing", kind, numerical_atol=1e-12, autodiff_atol=1e-7)
