"""Solvers behind one small interface (docs/design.md, "Two solver backends").

Online: ``add``, ``estimate``, ``marginals``, ``sample``. Batch: ``solve_batch`` solves whole graphs
from a warm start with every factor relinearized at each iteration, and can draw joint posterior
samples; the estimator's final re-solve and the trainer use it, never a backend class by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tactile_estimator.factors import Factor, Key


class BackendError(RuntimeError):
    """The solver could not use what it was given (an indeterminate system, say). ``graph`` is the
    index of the failing graph in a ``solve_batch`` call (None elsewhere)."""

    def __init__(self, message: str, graph: int | None = None) -> None:
        super().__init__(message)
        self.graph = graph


Graph = tuple[Sequence[Factor], dict[Key, np.ndarray]]  # factors and the initial value of every key


@dataclass
class BatchSolution:
    values: np.ndarray  # (V, 3) the solved poses, in the order of the keys asked for
    samples: np.ndarray | None  # (S, V, 3) joint samples of the Laplace approximation, same order


class Backend(Protocol):
    def add(self, factors: Iterable[Factor], initial: dict[Key, np.ndarray]) -> None: ...

    def estimate(self, keys: Sequence[Key] | None = None) -> dict[Key, np.ndarray]: ...

    def marginals(self, keys: Sequence[Key]) -> dict[Key, np.ndarray]: ...

    def sample(self, n: int, keys: Sequence[Key], rng: np.random.Generator) -> np.ndarray: ...


class BatchSolver(Protocol):
    def __call__(self, graphs: Sequence[Graph], keys: Sequence[Sequence[Key]], iterations: int, samples: int = 0,
                 seeds: Sequence[int] = ()) -> list[BatchSolution]: ...


def make_backend(name: str, **options: object) -> Backend:
    if name == "isam2":
        from tactile_estimator.backends.isam2 import Isam2Backend

        return Isam2Backend(**options)
    if name == "gn":
        from tactile_estimator.backends.gauss_newton import GaussNewtonBackend

        return GaussNewtonBackend(**options)
    raise ValueError(f"backend '{name}' is unknown; expected isam2 or gn")


def solve_batch(name: str, graphs: Sequence[Graph], keys: Sequence[Sequence[Key]], iterations: int,
                samples: int = 0, seeds: Sequence[int] = ()) -> list[BatchSolution]:
    """Solve each graph from its initial values with ``iterations`` Gauss-Newton iterations, every
    factor relinearized at each, and draw ``samples`` joint posterior samples of graph b with seed
    ``seeds[b]``. Raises BackendError with ``graph`` set to the first graph that cannot be solved."""
    if name == "isam2":
        from tactile_estimator.backends.isam2 import solve_batch as solver
    elif name == "gn":
        from tactile_estimator.backends.gauss_newton import solve_batch as solver
    else:
        raise ValueError(f"backend '{name}' is unknown; expected isam2 or gn")
    return solver(graphs, keys, iterations, samples, seeds)
