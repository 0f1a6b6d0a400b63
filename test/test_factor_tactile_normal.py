"""The contact-normal factor (factors/tactile_normal.py): what it reads and what it is blind to."""

from __future__ import annotations

import numpy as np
import pytest
from test_factors import FAMILIES, MODELS, assert_jacobians_agree, random_poses, touching_ee

from tactile_estimator import geometry as se2
from tactile_estimator.factors import ObjectModel
from tactile_estimator.factors.tactile_normal import at_corner, contact_normal_deviation, symmetry


@pytest.mark.parametrize("kind", ["rect", "disc", "ellipse"])
def test_tactile_normal_reads_the_sensors_tilt_against_the_surface(kind: str) -> None:
    """Pushing at boundary direction 0.3 with the sensor tilted by t from the inward normal: the
    normal in the sensor frame deviates by -t (on a disc and on a face; an ellipse's normal at that
    point is not radial, so only the residual at the measured value is checked there)."""
    model = MODELS[kind]
    o = np.array([0.2, -0.1, 0.7])
    tilts = np.array([-0.2, 0.0, 0.15])
    ees = np.stack([touching_ee(model.shape, o, 0.0 if kind == "rect" else 0.3, t) for t in tilts])
    objects = np.repeat(o[None], 3, 0)
    deviation = FAMILIES["tactile_normal"].residual([objects, ees], np.zeros((3, 1)), model)[:, 0]
    if kind != "ellipse":
        np.testing.assert_allclose(deviation, -tilts, atol=1e-9)
    r = FAMILIES["tactile_normal"].residual([objects, ees], deviation[:, None], model)
    np.testing.assert_allclose(r, 0.0, atol=1e-12)
    # The training target is the same deviation.
    np.testing.assert_allclose(contact_normal_deviation(objects, ees, model), deviation, atol=1e-12)


def test_tactile_normal_is_blind_to_what_the_image_cannot_show() -> None:
    """Sliding along a face and a disc's spin about its centre leave the measurement unchanged;
    turning the object against the sensor does not."""
    o = np.array([0.2, -0.1, 0.7])
    rect, disc = MODELS["rect"], MODELS["disc"]
    e = touching_ee(rect.shape, o, 0.0, 0.1)
    slid = se2.compose(e, np.array([0.0, 0.01, 0.0]))  # along the +x face: the sensor's y is near the face
    spun = se2.compose(o, np.array([0.0, 0.0, 0.5]))
    e_disc = touching_ee(disc.shape, o, 0.3, 0.1)
    turned = se2.compose(o, np.array([0.0, 0.0, 0.05]))

    def normal(model: ObjectModel, obj: np.ndarray, ee: np.ndarray) -> float:
        return float(FAMILIES["tactile_normal"].residual([obj[None], ee[None]], np.zeros((1, 1)), model)[0, 0])

    slide_direction = se2.between(e, slid)
    assert abs(slide_direction[2]) < 1e-12
    assert normal(rect, o, slid) == pytest.approx(normal(rect, o, e), abs=1e-3)  # slide ⟂ to the sensor's x only
    assert normal(disc, spun, e_disc) == pytest.approx(normal(disc, o, e_disc), abs=1e-12)
    assert abs(normal(rect, turned, e) - normal(rect, o, e)) == pytest.approx(0.05, abs=1e-9)


def test_a_rectangles_corner_is_where_the_tip_is_beyond_both_faces() -> None:
    rect = MODELS["rect"]
    o = random_poses(1)[0]
    face, corner = touching_ee(rect.shape, o, 0.0, 0.0), touching_ee(rect.shape, o, np.arctan2(0.04, 0.05), 0.0)
    assert at_corner(np.stack([o, o]), np.stack([face, corner]), rect).tolist() == [False, True]
    assert not at_corner(o, corner, MODELS["disc"]).any()
    assert (symmetry("rect"), symmetry("disc"), symmetry("ellipse")) == (4, 1, 1)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # torch's jvp rules
@pytest.mark.parametrize("kind", ["rect", "disc", "ellipse"])
def test_jacobians_equal_numerical_and_torch_func(kind: str) -> None:
    """Central differences: the normal turns by 1/d (d ≈ 12 mm) per metre, so they carry ~1e-7 of rounding."""
    assert_jacobians_agree("tactile_normal", kind, numerical_atol=1e-12, autodiff_atol=1e-6)
