"""Factor families, one definition each (DESIGN.md, "The problem in one page").

Each family's module declares its ``Family`` (keys, residual dimension, flags, the torch definition
and its Jacobians); ``FAMILIES`` collects them, and the backends, the trainer and the configuration
iterate over it. A new family is a new module here and one entry below.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tactile_estimator.factors import contact, priors, pushing, tactile, tactile_normal
from tactile_estimator.factors.base import (
    Factor,
    Family,
    Key,
    as_tensor,
    autodiff_jacobians,
    ee_key,
    key_order,
    numerical_jacobians,
    object_key,
)
from tactile_estimator.factors.contact import ObjectModel
from tactile_estimator.factors.tactile import relative_sensor_motion

FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (tactile.FAMILY, tactile_normal.FAMILY, pushing.FAMILY, contact.FAMILY, *priors.FAMILIES)
}


def evaluate(factor: Factor, poses: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Residual (d,) and Jacobians (d, 3) of one factor at the given poses, by its family's definition."""
    family = FAMILIES[factor.family]
    batch = [as_tensor(p)[None] for p in poses]
    r, jac = family.jacobians(batch, as_tensor(factor.measurement)[None], factor.context)
    return r[0].numpy(), [j[0].numpy() for j in jac]


__all__ = [
    "FAMILIES", "Factor", "Family", "Key", "ObjectModel", "autodiff_jacobians", "ee_key", "evaluate", "key_order",
    "numerical_jacobians", "object_key", "relative_sensor_motion",
]
