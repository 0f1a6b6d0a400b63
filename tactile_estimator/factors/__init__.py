"""Factor families, one definition each (DESIGN.md, "The problem in one page")."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tactile_estimator.factors.base import Factor, Key, ee_key, key_order, numerical_jacobians, object_key
from tactile_estimator.factors.contact import ObjectModel, contact_jacobians, contact_residual
from tactile_estimator.factors.priors import between_jacobians, between_residual, prior_jacobians, prior_residual
from tactile_estimator.factors.pushing import pushing_jacobians, pushing_residual
from tactile_estimator.factors.tactile import relative_sensor_motion, tactile_jacobians, tactile_residual
from tactile_estimator.factors.tactile_normal import tactile_normal_jacobians, tactile_normal_residual


@dataclass(frozen=True)
class Family:
    dim: int
    residual: Callable[..., np.ndarray]
    jacobians: Callable[..., tuple[np.ndarray, list[np.ndarray]]]
    switchable: bool = True  # a user may switch it off (--disable-factor, factors.<name>: false)
    learnable: bool = True  # its σ is a trainer parameter


FAMILIES: dict[str, Family] = {
    "tactile": Family(3, tactile_residual, tactile_jacobians),
    "tactile_normal": Family(1, tactile_normal_residual, tactile_normal_jacobians),
    "pushing": Family(3, pushing_residual, pushing_jacobians),
    "contact": Family(1, contact_residual, contact_jacobians),
    "ee_prior": Family(3, prior_residual, prior_jacobians),
    "camera": Family(3, prior_residual, prior_jacobians),
    "first_pose": Family(3, prior_residual, prior_jacobians, learnable=False),
    # Not switchable: the object at rest out of contact (part of the quasi-static motion model, off
    # with "pushing"), and a weak constant-position prior that keeps the graph determinate.
    "at_rest": Family(3, between_residual, between_jacobians, switchable=False, learnable=False),
    "motion_prior": Family(3, between_residual, between_jacobians, switchable=False, learnable=False),
}


def evaluate(factor: Factor, poses: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Residual (d,) and Jacobians (d, 3) of one factor at the given poses."""
    family = FAMILIES[factor.family]
    batch = [np.asarray(p, dtype=float)[None] for p in poses]
    r, jac = family.jacobians(batch, np.asarray(factor.measurement)[None], factor.context)
    return r[0], [j[0] for j in jac]


__all__ = [
    "FAMILIES", "Factor", "Family", "Key", "ObjectModel", "ee_key", "evaluate", "key_order", "numerical_jacobians",
    "object_key", "relative_sensor_motion",
]
