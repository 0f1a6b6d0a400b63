"""What every factor family shares: the factor record and batched numerical Jacobians.

A family is a residual function over a list of SE(2) pose batches (each (N, 3)) and a
measurement batch; it returns the residuals (N, d) and one Jacobian (N, d, 3) per pose, with
respect to a right perturbation ``T * Exp(delta)``. Families with a closed form give analytic
Jacobians, held to the numerical ones here by tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tactile_estimator import geometry as se2

Key = tuple[str, int]  # ("o", k) object pose at step k, ("e", k) end-effector pose at step k


def object_key(k: int) -> Key:
    return ("o", k)


def ee_key(k: int) -> Key:
    return ("e", k)


def key_order(key: Key) -> tuple[int, int]:
    """The order of every pose in a solve: by step, the object's before the end-effector's."""
    return key[1], 0 if key[0] == "o" else 1

ResidualFn = Callable[[Sequence[np.ndarray], np.ndarray, Any], np.ndarray]


@dataclass(frozen=True)
class Factor:
    """One factor of the graph: which family, which poses, what was measured, how certain."""

    family: str
    keys: tuple[Key, ...]
    measurement: np.ndarray
    sigmas: np.ndarray
    context: Any = None  # what the family needs beyond the measurement (object model)


def numerical_jacobians(
    residual: ResidualFn, poses: Sequence[np.ndarray], measurement: np.ndarray, context: Any, step: float = 1e-6
) -> list[np.ndarray]:
    """Central differences for all poses and tangent directions in one batched evaluation."""
    poses = [np.atleast_2d(np.asarray(p, dtype=float)) for p in poses]
    n = poses[0].shape[0]
    n_var = len(poses)
    deltas = np.concatenate([np.eye(3) * step, -np.eye(3) * step])  # (6, 3): +e_a then -e_a
    perturbed = []
    for index, pose in enumerate(poses):
        # Batch layout: (variable perturbed, 6 signed directions, N)
        block = np.broadcast_to(pose, (n_var, 6, n, 3)).copy()
        block[index] = se2.compose(pose[None, :, :], se2.exp(deltas)[:, None, :])
        perturbed.append(block.reshape(-1, 3))
    meas = np.broadcast_to(measurement, (n_var * 6,) + np.shape(measurement)).reshape(
        (n_var * 6 * n,) + np.shape(measurement)[1:]
    )
    values = residual(perturbed, meas, context).reshape(n_var, 6, n, -1)
    jac = (values[:, :3] - values[:, 3:]) / (2.0 * step)  # (var, direction, N, d)
    return [np.moveaxis(jac[v], 0, -1) for v in range(n_var)]
