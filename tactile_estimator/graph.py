"""FactorGraph: every variable and factor the estimator has created, independent of the solver.

Backends receive the same factors incrementally; the graph keeps them so that the whole problem
can be re-solved in batch (the naive peer in benchmarks), its energy evaluated (LEO), or handed to
another backend.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from tactile_estimator.factors import FAMILIES, Factor, Key


class FactorGraph:
    def __init__(self) -> None:
        self.factors: list[Factor] = []
        self.initial: dict[Key, np.ndarray] = {}

    def add(self, factors: Iterable[Factor], initial: dict[Key, np.ndarray]) -> None:
        self.factors.extend(factors)
        self.initial.update(initial)

    def energy(self, values: dict[Key, np.ndarray], families: Iterable[str] | None = None) -> float:
        """½ Σ ‖r‖²_Σ over the factors (of the given families), batched per family."""
        wanted = set(families) if families is not None else None
        groups: dict[str, list[Factor]] = {}
        for factor in self.factors:
            if wanted is None or factor.family in wanted:
                groups.setdefault(factor.family, []).append(factor)
        total = 0.0
        for family, members in groups.items():
            by_context: dict[int, list[Factor]] = {}
            for f in members:
                by_context.setdefault(id(f.context), []).append(f)
            for group in by_context.values():
                poses = [np.stack([values[f.keys[i]] for f in group]) for i in range(len(group[0].keys))]
                measured = np.stack([np.asarray(f.measurement, dtype=float) for f in group])
                r = FAMILIES[family].residual(poses, measured, group[0].context)
                sigmas = np.stack([np.broadcast_to(f.sigmas, r.shape[1:]) for f in group])
                total += 0.5 * float(np.sum((r / sigmas) ** 2))
        return total

    def __len__(self) -> int:
        return len(self.factors)
