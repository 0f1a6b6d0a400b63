"""What every factor family shares: the factor record, the family declaration and its Jacobians.

A family's definition is one torch function, batch first, float64: ``error(poses, measurement,
context)`` over a list of pose batches (each (N, 3)) and a measurement batch (N, m), returning the
residuals (N, d). Its ``jacobians`` return the residuals and one Jacobian (N, d, 3) per pose with
respect to a right perturbation ``T * Exp(delta)``: analytic where the family has a closed form,
held to central differences and torch.func by tests, else central differences of ``error``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from tactile_estimator.factors import lie
from tactile_estimator.factors.lie import torch

if TYPE_CHECKING:
    from torch import Tensor

Key = tuple[str, int]  # ("o", k) object pose at step k, ("e", k) end-effector pose at step k
Poses = Sequence["Tensor"]
Error = Callable[[Poses, "Tensor", Any], "Tensor"]
Jacobians = Callable[[Poses, "Tensor", Any], tuple["Tensor", list["Tensor"]]]
GTSAM_KINDS = ("prior", "between", "custom")  # PriorFactorPose2, BetweenFactorPose2, CustomFactor
AUTODIFF_TRANSFORMS = ("jacrev", "vmap_jacrev", "vmap_jacfwd")


def object_key(k: int) -> Key:
    return ("o", k)


def ee_key(k: int) -> Key:
    return ("e", k)


def key_order(key: Key) -> tuple[int, int]:
    """The order of every pose in a solve: by step, the object's before the end-effector's."""
    return key[1], 0 if key[0] == "o" else 1


@dataclass(frozen=True)
class Factor:
    """One factor of the graph: which family, which poses, what was measured, how certain."""

    family: str
    keys: tuple[Key, ...]
    measurement: np.ndarray
    sigmas: np.ndarray
    context: Any = None  # what the family needs beyond the measurement (object model)


@dataclass(frozen=True)
class Family:
    """One factor family, declared once in its module under factors/ and collected in ``FAMILIES``.

    ``keys`` names the kind of each pose the factor joins ("o" object, "e" end-effector), in the order
    ``error`` takes them. ``jacobians`` None: central differences of ``error``. ``gtsam`` says how the
    iSAM2 backend builds it: "prior" and "between" as gtsam's native Pose2 factors (their errors are
    Log(p̂⁻¹x) and Log(m⁻¹a⁻¹b), as ``error`` is: tests hold them equal), "custom" as a CustomFactor
    calling back into Python (backends/isam2.py: a float form where one is measured to be needed,
    else this definition). ``autodiff_from``: the batched solver's "auto" path takes torch.func for
    groups of at least this many factors (benchmarks/jacobians.py measures where it wins).
    """

    name: str
    keys: tuple[str, ...]
    dim: int
    error: Error
    jacobians: Jacobians | None = None
    switchable: bool = True  # a user may switch it off (--disable-factor, factors.<name>: false)
    learnable: bool = True  # its σ is a trainer parameter
    gtsam: str = "custom"
    autodiff_from: int | None = None
    autodiff: Jacobians = field(init=False, repr=False, compare=False)  # torch.func of ``error``

    def __post_init__(self) -> None:
        if any(kind not in ("o", "e") for kind in self.keys) or not self.keys:
            raise ValueError(f"family '{self.name}': keys {self.keys} must be a non-empty tuple of 'o' and 'e'")
        if self.gtsam not in GTSAM_KINDS:
            raise ValueError(f"family '{self.name}': gtsam '{self.gtsam}' is unknown; expected one of {GTSAM_KINDS}")
        if self.jacobians is None:
            object.__setattr__(self, "jacobians", partial(differenced, self.error))
        object.__setattr__(self, "autodiff", partial(autodiff_jacobians, self.error))

    def residual(self, poses: Sequence[np.ndarray], measurement: np.ndarray, context: Any = None) -> np.ndarray:
        """``error`` on numpy arrays and back, for numpy callers (the graph's energy, pretraining)."""
        return self.error([as_tensor(p) for p in poses], as_tensor(measurement), context).numpy()


def as_tensor(array: np.ndarray) -> Tensor:
    """A float64 tensor sharing the array's memory where it can."""
    return torch.from_numpy(np.ascontiguousarray(array, dtype=float))


def numerical_jacobians(error: Error, poses: Poses, measurement: Tensor, context: Any,
                        step: float = 1e-6) -> list[Tensor]:
    """Central differences for all poses and tangent directions in one batched evaluation."""
    n_var, n = len(poses), poses[0].shape[0]
    eye = torch.eye(3, dtype=poses[0].dtype, device=poses[0].device) * step
    deltas = lie.exp(torch.cat([eye, -eye]))  # (6, 3): +e_a then -e_a
    perturbed = []
    for index, pose in enumerate(poses):
        # Batch layout: (variable perturbed, 6 signed directions, N)
        block = pose.expand(n_var, 6, n, 3).clone()
        block[index] = lie.compose(pose[None], deltas[:, None, :].expand(6, n, 3))
        perturbed.append(block.reshape(-1, 3))
    meas = measurement.expand((n_var * 6,) + measurement.shape).reshape((n_var * 6 * n,) + measurement.shape[1:])
    values = error(perturbed, meas, context).reshape(n_var, 6, n, -1)
    jac = (values[:, :3] - values[:, 3:]) / (2.0 * step)  # (var, direction, N, d)
    return [jac[v].permute(1, 2, 0) for v in range(n_var)]


def differenced(error: Error, poses: Poses, measurement: Tensor, context: Any) -> tuple[Tensor, list[Tensor]]:
    """A family's residuals and their central-difference Jacobians."""
    return error(poses, measurement, context), numerical_jacobians(error, poses, measurement, context)


def autodiff_jacobians(error: Error, poses: Poses, measurement: Tensor, context: Any,
                       transform: str = "jacrev") -> tuple[Tensor, list[Tensor]]:
    """Residuals (N, d) and Jacobians [(N, d, 3)] of any family by torch.func: the derivative of
    ``error([pose_k * Exp(delta_k)])`` in the tangent perturbations delta at delta = 0.

    ``jacrev``: one reverse pass per residual dimension through the whole batch. Factor i's residual
    depends on factor i's poses only, so the Jacobian of the residuals summed over the batch with
    respect to all (N, n, 3) perturbations holds every factor's blocks. ``vmap_jacrev`` and
    ``vmap_jacfwd`` differentiate one factor and vmap over the batch (the same numbers, slower on CPU).
    """
    n, count = len(poses), poses[0].shape[0]
    zero = poses[0].new_zeros(count, n, 3)
    if transform == "jacrev":
        def summed(delta: Tensor) -> tuple[Tensor, Tensor]:
            r = error([lie.compose(p, lie.exp(delta[:, k])) for k, p in enumerate(poses)], measurement, context)
            return r.sum(0), r

        jac, r = torch.func.jacrev(summed, has_aux=True)(zero)  # (d, N, n, 3)
        return r, list(jac.permute(2, 1, 0, 3))
    if transform not in AUTODIFF_TRANSFORMS:
        raise ValueError(f"transform '{transform}' is unknown; expected one of {AUTODIFF_TRANSFORMS}")

    def single(pose: tuple[Tensor, ...], meas: Tensor, delta: Tensor) -> tuple[Tensor, Tensor]:
        r = error([lie.compose(p, lie.exp(delta[k]))[None] for k, p in enumerate(pose)], meas[None], context)[0]
        return r, r

    differentiate = torch.func.jacrev if transform == "vmap_jacrev" else torch.func.jacfwd
    jac, r = torch.func.vmap(differentiate(single, argnums=2, has_aux=True))(tuple(poses), measurement, zero)
    return r, [jac[:, :, k] for k in range(n)]  # jac (N, d, n, 3)
