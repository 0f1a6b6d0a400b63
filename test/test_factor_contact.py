"""The contact factor (factors/contact.py): zero when the tip touches, Jacobians exact on every shape."""

from __future__ import annotations

import numpy as np
import pytest
from test_factors import FAMILIES, MODELS, RNG, assert_jacobians_agree, random_poses, tensors, touching_ee

from tactile_estimator import geometry as se2
from tactile_estimator.factors import numerical_jacobians

KINDS = ["rect", "disc", "ellipse"]


@pytest.mark.parametrize("kind", KINDS)
def test_contact_jacobians_match_numerical(kind: str) -> None:
    model = MODELS[kind]
    objects = random_poses(10)
    ees = np.stack([touching_ee(model.shape, o, RNG.uniform(-0.6, 0.6), 0.1) for o in objects])
    ees[:, :2] += RNG.normal(0, 0.002, (10, 2))  # off the surface, so the SDF is smooth there
    as_t, m = tensors([objects, ees], np.zeros((10, 0)))
    r, analytic = FAMILIES["contact"].jacobians(as_t, m, model)
    numeric = numerical_jacobians(FAMILIES["contact"].error, as_t, m, model)
    for a, n in zip(analytic, numeric, strict=True):
        np.testing.assert_allclose(a.numpy(), n.numpy(), atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_contact_residual_is_zero_when_tip_touches(kind: str) -> None:
    model = MODELS[kind]
    o = np.array([0.2, -0.1, 0.7])
    e = touching_ee(model.shape, o, 0.3, 0.05)
    r = FAMILIES["contact"].residual([o[None], e[None]], np.zeros((1, 0)), model)
    assert abs(r[0, 0]) < 1e-9
    e_away = se2.compose(e, np.array([-0.01, 0.0, 0.0]))
    r_away = FAMILIES["contact"].residual([o[None], e_away[None]], np.zeros((1, 0)), model)
    assert r_away[0, 0] == pytest.approx(0.01, abs=1e-3)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # torch's jvp rules
@pytest.mark.parametrize("kind", KINDS)
def test_jacobians_equal_numerical_and_torch_func(kind: str) -> None:
    assert_jacobians_agree("contact", kind, numerical_atol=1e-6, autodiff_atol=1e-9)
