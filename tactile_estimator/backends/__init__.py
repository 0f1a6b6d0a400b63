"""Solvers behind one small interface (docs/design.md, "Two solver backends"): add, estimate, marginals, sample."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

from tactile_estimator.factors import Factor, Key


class BackendError(RuntimeError):
    """The solver could not use what it was given (an indeterminate system, say)."""


class Backend(Protocol):
    def add(self, factors: Iterable[Factor], initial: dict[Key, np.ndarray]) -> None: ...

    def estimate(self, keys: Sequence[Key] | None = None) -> dict[Key, np.ndarray]: ...

    def marginals(self, keys: Sequence[Key]) -> dict[Key, np.ndarray]: ...

    def sample(self, n: int, keys: Sequence[Key], rng: np.random.Generator) -> np.ndarray: ...


def make_backend(name: str, **options: object) -> Backend:
    if name == "isam2":
        from tactile_estimator.backends.isam2 import Isam2Backend

        return Isam2Backend(**options)
    if name == "gn":
        from tactile_estimator.backends.gauss_newton import GaussNewtonBackend

        return GaussNewtonBackend(**options)
    raise ValueError(f"backend '{name}' is unknown; expected isam2 or gn")
