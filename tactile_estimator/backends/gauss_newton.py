"""Batched Gauss-Newton (and Levenberg-Marquardt) in torch, on CPU or CUDA, in float64.

Many graphs are solved at once, the batch dimension first. Variables are ordered by step (o_k, e_k),
and every factor joins variables at most ``span`` apart (the tactile window), so the normal
equations H δ = -g are block-banded. Grouping the variables into chunks of ``span + 1`` makes H
block-tridiagonal over chunks, and a block-tridiagonal Cholesky costs O(chunks · (3C)³): linear
in the number of steps, where a dense Cholesky is cubic. Marginal covariances and joint samples
come from the same factor by triangular solves, never from a dense inverse.

The factors are their families' torch definitions (factors/, ``FAMILIES``), the same ones the
iSAM2 backend's callbacks are held to. A batch element whose input is not finite, or whose system is
indeterminate, is reported in ``failed`` and ``reasons`` and does not touch the others.

Jacobians (``jacobians=``): "analytic" takes each family's ``Family.jacobians`` (closed forms; central
differences for pushing, 24 residual evaluations per factor), "autodiff" torch.func for every family
(``Family.autodiff``, jacrev of the batch-summed residual), and "auto", the default, the faster of
the two as measured by benchmarks/jacobians.py (float64, CPU, one thread): analytic for prior,
between, tactile and contact, where torch.func is slower at every batch size measured; for a family
with ``Family.autodiff_from`` (pushing), its Jacobians below that many factors in a group and
torch.func from there. The two paths agree to 1e-9 (1e-7 for pushing, the error of the differences)
except at the rare pose where the residual has a kink within the difference step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tactile_estimator.backends import BackendError, BatchSolution, Graph
from tactile_estimator.factors import FAMILIES, Factor, Key, key_order, lie

Tensor = torch.Tensor
BACKTRACK_HALVINGS = 4  # a Gauss-Newton step that raises the cost is halved up to this many times
_FIXED_WEIGHT = 1e12  # diagonal added to held variables: their step is ~0, then set to exactly 0
JACOBIAN_PATHS = ("auto", "analytic", "autodiff")


def jacobian_function(family: str, factors: int, jacobians: str = "auto") -> Callable:
    """The Jacobian function of a group of ``factors`` factors of ``family`` under a ``jacobians`` path."""
    if jacobians not in JACOBIAN_PATHS:
        raise ValueError(f"jacobians '{jacobians}' is unknown; expected one of {JACOBIAN_PATHS}")
    declared = FAMILIES[family]
    threshold = declared.autodiff_from
    if jacobians == "autodiff" or (jacobians == "auto" and threshold is not None and factors >= threshold):
        return declared.autodiff
    return declared.jacobians


@dataclass
class _Group:
    """All factors of one family (and object model) across the batch, padded to the longest."""

    family: str
    model: object
    jacobian: Callable  # (poses, measurement, model) -> (r, [J]): analytic, numerical or torch.func
    index: Tensor  # (B, F, n) variable indices
    measurement: Tensor  # (B, F, m)
    inv_sigma: Tensor  # (B, F, d)
    mask: Tensor  # (B, F) 1.0 for real factors, 0.0 for padding
    grad_index: Tensor  # (B, F, n, 3) flat positions in the gradient
    hess_index: Tensor  # (K,) flat positions in the band storage of the kept Hessian entries
    hess_keep: Tensor  # (B, F, n, n, 3, 3) bool: entries that belong to the stored lower band


@dataclass
class SolveReport:
    cost: Tensor  # (B,) final ½‖r‖² per element
    iterations: Tensor  # (B,) iterations used
    converged: Tensor  # (B,) bool
    failed: Tensor  # (B,) bool
    reasons: list[str | None]


class Problem:
    """A batch of graphs as tensors: values (B, V, 3), factor groups, and the band layout."""

    def __init__(self, graphs: Sequence[Graph], device: str | torch.device = "cpu",
                 fixed: Sequence[Iterable[Key]] | None = None, dtype: torch.dtype = torch.float64,
                 jacobians: str = "auto") -> None:
        if jacobians not in JACOBIAN_PATHS:
            raise ValueError(f"jacobians '{jacobians}' is unknown; expected one of {JACOBIAN_PATHS}")
        self.device, self.dtype = torch.device(device), dtype
        self.jacobians = jacobians
        self.batch = len(graphs)
        self.reasons: list[str | None] = [None] * self.batch
        self.keys: list[list[Key]] = []
        index_of: list[dict[Key, int]] = []
        for b, (factors, initial) in enumerate(graphs):
            keys = sorted({k for f in factors for k in f.keys} | set(initial), key=key_order)
            missing = [k for k in keys if k not in initial]
            if missing:
                self.reasons[b] = f"no initial value for {missing[0]}"
            elif not all(np.all(np.isfinite(initial[k])) for k in keys):
                self.reasons[b] = "an initial value is not finite"
            elif any(not (np.all(np.isfinite(f.measurement)) and np.all(np.isfinite(f.sigmas))
                          and np.all(np.asarray(f.sigmas) > 0)) for f in factors):
                self.reasons[b] = "a factor's measurement or sigma is not finite and positive"
            self.keys.append(keys)
            index_of.append({k: i for i, k in enumerate(keys)})
        span = max((max(index_of[b][k] for k in f.keys) - min(index_of[b][k] for k in f.keys)
                    for b, (factors, _) in enumerate(graphs) for f in factors), default=0)
        self.chunk = span + 1  # variables per chunk: a factor spans at most two neighbouring chunks
        longest = max((len(k) for k in self.keys), default=1)
        self.chunks = max(1, math.ceil(longest / self.chunk))
        self.variables = self.chunks * self.chunk
        values = np.zeros((self.batch, self.variables, 3))
        valid = np.zeros((self.batch, self.variables), dtype=bool)
        held = np.zeros((self.batch, self.variables), dtype=bool)
        for b, (_, initial) in enumerate(graphs):
            if self.reasons[b] is None:
                for i, k in enumerate(self.keys[b]):
                    values[b, i] = initial[k]
                valid[b, : len(self.keys[b])] = True
            if fixed is not None:
                for k in fixed[b]:
                    if k in index_of[b]:
                        held[b, index_of[b][k]] = True
        self.values = torch.as_tensor(values, dtype=dtype, device=self.device)
        self.valid = torch.as_tensor(valid, device=self.device)
        self.held = torch.as_tensor(held, device=self.device) & self.valid
        self.groups = self._groups(graphs, index_of)
        self._linearized: tuple[Tensor | None, Tensor | None] = (None, None)  # (values, band) from solve()

    # ------------------------------------------------------------------------------- layout
    def _groups(self, graphs: Sequence[Graph], index_of: list[dict[Key, int]]) -> list[_Group]:
        buckets: dict[tuple[str, int], list[list[Factor]]] = {}
        models: dict[tuple[str, int], object] = {}
        for b, (factors, _) in enumerate(graphs):
            if self.reasons[b] is not None:
                continue
            for f in factors:
                key = (f.family, id(f.context) if f.context is not None else 0)
                buckets.setdefault(key, [[] for _ in graphs])[b].append(f)
                models[key] = f.context
        groups = []
        for key, per_graph in buckets.items():
            width = max(len(fs) for fs in per_graph)
            sample = next(f for fs in per_graph for f in fs)
            n, m, d = len(sample.keys), np.size(sample.measurement), np.size(sample.sigmas)
            index = np.zeros((self.batch, width, n), dtype=np.int64)
            measurement = np.zeros((self.batch, width, m))
            inv_sigma = np.zeros((self.batch, width, d))
            mask = np.zeros((self.batch, width))
            for b, fs in enumerate(per_graph):
                for i, f in enumerate(fs):
                    index[b, i] = [index_of[b][k] for k in f.keys]
                    measurement[b, i] = np.asarray(f.measurement, dtype=float).reshape(m)
                    inv_sigma[b, i] = 1.0 / np.asarray(f.sigmas, dtype=float).reshape(d)
                    mask[b, i] = 1.0
            groups.append(self._group(key[0], models[key], index, measurement, inv_sigma, mask))
        return groups

    def _group(self, family: str, model: object, index: np.ndarray, measurement: np.ndarray,
               inv_sigma: np.ndarray, mask: np.ndarray) -> _Group:
        B, F, n = index.shape
        C3 = 3 * self.chunk
        t = torch.as_tensor(index, device=self.device)
        batch = torch.arange(B, device=self.device).view(B, 1, 1)
        comp = torch.arange(3, device=self.device)
        grad_index = ((batch * self.variables + t)[..., None] * 3 + comp)  # (B, F, n, 3)
        chunk, local = t // self.chunk, t % self.chunk
        ca, cc = chunk[..., :, None], chunk[..., None, :]  # (B, F, n, n): row slot a, column slot c
        la, lc = local[..., :, None], local[..., None, :]
        same, lower = ca == cc, ca == cc + 1
        column = torch.where(same, C3 + 3 * lc, 3 * lc)
        row_base = ((batch[..., None] * self.chunks + ca) * C3 + 3 * la) * (2 * C3) + column  # (B, F, n, n)
        flat = row_base[..., None, None] + comp.view(3, 1) * (2 * C3) + comp.view(1, 3)  # (B, F, n, n, 3, 3)
        real = torch.as_tensor(mask, device=self.device).bool()
        keep = ((same | lower) & real[..., None, None])[..., None, None].expand(flat.shape)
        return _Group(
            family, model, jacobian_function(family, B * F, self.jacobians), t,
            torch.as_tensor(measurement, dtype=self.dtype, device=self.device),
            torch.as_tensor(inv_sigma, dtype=self.dtype, device=self.device),
            torch.as_tensor(mask, dtype=self.dtype, device=self.device),
            grad_index, flat[keep], keep,
        )

    # ---------------------------------------------------------------------------- evaluation
    def _poses(self, values: Tensor, group: _Group) -> list[Tensor]:
        B, F, n = group.index.shape
        gathered = torch.gather(values, 1, group.index.reshape(B, F * n, 1).expand(B, F * n, 3))
        gathered = gathered.reshape(B, F, n, 3)
        return [gathered[:, :, a].reshape(B * F, 3) for a in range(n)]

    def cost(self, values: Tensor | None = None) -> Tensor:
        """½‖r‖²_Σ per batch element (B,)."""
        values = self.values if values is None else values
        total = torch.zeros(self.batch, dtype=self.dtype, device=self.device)
        for g in self.groups:
            B, F, _ = g.index.shape
            r = FAMILIES[g.family].error(self._poses(values, g), g.measurement.reshape(B * F, -1), g.model)
            rw = r.reshape(B, F, -1) * g.inv_sigma * g.mask[..., None]
            total = total + 0.5 * rw.square().sum((1, 2))
        return total

    def linearize(self, values: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Cost (B,), gradient (B, V*3) and the lower block band of H: (B, chunks, 3C, 6C), where
        [..., :3C] is the block (c, c-1) and [..., 3C:] the block (c, c)."""
        values = self.values if values is None else values
        C3 = 3 * self.chunk
        band = torch.zeros(self.batch * self.chunks * C3 * 2 * C3, dtype=self.dtype, device=self.device)
        grad = torch.zeros(self.batch * self.variables * 3, dtype=self.dtype, device=self.device)
        cost = torch.zeros(self.batch, dtype=self.dtype, device=self.device)
        for g in self.groups:
            B, F, n = g.index.shape
            r, jac = g.jacobian(self._poses(values, g), g.measurement.reshape(B * F, -1), g.model)
            weight = g.inv_sigma * g.mask[..., None]  # (B, F, d)
            rw = r.reshape(B, F, -1) * weight
            jw = torch.stack(jac, 1).reshape(B, F, n, -1, 3) * weight[:, :, None, :, None]  # (B, F, n, d, 3)
            cost = cost + 0.5 * rw.square().sum((1, 2))
            grad.index_add_(0, g.grad_index.reshape(-1), torch.einsum("bfndi,bfd->bfni", jw, rw).reshape(-1))
            blocks = torch.einsum("bfadi,bfcdj->bfacij", jw, jw)
            band.index_add_(0, g.hess_index, blocks[g.hess_keep])
        return cost, grad.view(self.batch, -1), band.view(self.batch, self.chunks, C3, 2 * C3)

    def _condition(self, band: Tensor, damping: Tensor | None) -> Tensor:
        """Padding and failed elements get an identity block; held variables a huge diagonal."""
        C3 = 3 * self.chunk
        diagonal = torch.diagonal(band[..., C3:], dim1=-2, dim2=-1)  # (B, chunks, 3C), a view
        ok = torch.tensor([r is None for r in self.reasons], device=self.device)
        live = (self.valid & ok[:, None]).repeat_interleave(3, 1).view(self.batch, self.chunks, C3)
        held = self.held.repeat_interleave(3, 1).view(self.batch, self.chunks, C3)
        if damping is not None:
            diagonal.add_(damping.view(-1, 1, 1) * diagonal.clamp(min=1e-9))
        diagonal.add_(held.to(self.dtype) * _FIXED_WEIGHT)
        band[..., C3:] = torch.where(live[..., None], band[..., C3:], torch.zeros_like(band[..., C3:]))
        band[..., :C3] = torch.where(live[..., None], band[..., :C3], torch.zeros_like(band[..., :C3]))
        diagonal.add_((~live).to(self.dtype))
        return band

    # ---------------------------------------------------------------------------------- solve
    def solve(self, iterations: int = 10, damping: float | None = None, tolerance: float = 1e-12,
              min_step: float = 1e-10) -> SolveReport:
        """Gauss-Newton (damping None) or Levenberg-Marquardt from the current values; per element
        convergence: a relative cost decrease below ``tolerance``, no step component above ``min_step``,
        or (Gauss-Newton) no cost decrease along the step even after halving it."""
        B = self.batch
        failed = torch.tensor([r is not None for r in self.reasons], device=self.device)
        done = failed.clone()
        used = torch.zeros(B, dtype=torch.long, device=self.device)
        lam = None if damping is None else torch.full((B,), damping, dtype=self.dtype, device=self.device)
        cost, grad, band = self.linearize()
        for _ in range(iterations):
            if bool(done.all()):
                break
            factor = BandCholesky(self._condition(band.clone(), lam), self.chunk)
            newly = factor.failed & ~done
            for b in torch.nonzero(newly).flatten().tolist():
                self.reasons[b] = "indeterminate system: a pose is not constrained"
            failed |= factor.failed
            done |= factor.failed
            step = -factor.solve(grad[..., None])[..., 0].view(B, self.variables, 3)
            step = step * (self.valid & ~self.held & ~done[:, None])[..., None]
            trial = lie.compose(self.values, lie.exp(step))
            new_cost = self.cost(trial)
            if lam is None:
                trial, new_cost, step = self._backtrack(step, trial, new_cost, cost, done)
                accept = ~done & (new_cost <= cost)
                stuck = ~done & ~accept  # no step along the Gauss-Newton direction lowers the cost
            else:
                accept = ~done & torch.isfinite(new_cost) & (new_cost <= cost)
                lam = torch.where(accept, lam * 0.1, lam * 10.0).clamp(1e-12, 1e12)
                stuck = torch.zeros_like(done)
            used += (~done).long()
            self.values = torch.where(accept[:, None, None], trial, self.values)
            small = (cost - new_cost).abs() <= tolerance * cost.clamp(min=1e-300)
            small |= step.abs().flatten(1).amax(1) < min_step
            done |= (accept & small) | stuck
            cost, grad, band = self.linearize()
        self._linearized = (self.values, band)  # H at the final values: factorize() need not linearize again
        return SolveReport(cost, used, done & ~failed, failed, list(self.reasons))

    def _backtrack(self, step: Tensor, trial: Tensor, new_cost: Tensor, cost: Tensor,
                   done: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Halve the step of each element whose cost rose, up to BACKTRACK_HALVINGS times. Where pieces
        of the object's boundary meet (a rectangle's corners), the full step can overshoot and cycle."""
        for _ in range(BACKTRACK_HALVINGS):
            worse = ~done & ~(new_cost <= cost)
            if not bool(worse.any()):
                break
            step = torch.where(worse[:, None, None], step * 0.5, step)
            retry = lie.compose(self.values, lie.exp(step))
            retry_cost = self.cost(retry)
            trial = torch.where(worse[:, None, None], retry, trial)
            new_cost = torch.where(worse, retry_cost, new_cost)
        return trial, new_cost, step

    def factorize(self) -> BandCholesky:
        """Cholesky of H at the current values (no damping), for marginals and samples."""
        values, band = self._linearized
        if values is not self.values:
            _, _, band = self.linearize()
        self._linearized = None, None
        return BandCholesky(self._condition(band, None), self.chunk)

    def marginals(self, factor: BandCholesky, wanted: Sequence[Sequence[Key]]) -> Tensor:
        """Marginal covariances (B, q, 3, 3) of the wanted keys of each element (q per element)."""
        q = len(wanted[0])
        rhs = torch.zeros(self.batch, self.variables * 3, 3 * q, dtype=self.dtype, device=self.device)
        positions = []
        for b, keys in enumerate(wanted):
            index = {k: i for i, k in enumerate(self.keys[b])}
            rows = [3 * index[k] + c for k in keys for c in range(3)]
            rhs[b, rows, torch.arange(3 * q)] = 1.0
            positions.append(rows)
        x = factor.solve(rhs)  # H⁻¹ E
        picked = torch.stack([x[b, rows] for b, rows in enumerate(positions)])  # (B, 3q, 3q)
        return torch.stack([picked[:, 3 * i: 3 * i + 3, 3 * i: 3 * i + 3] for i in range(q)], 1)

    def sample(self, factor: BandCholesky, n: int, generator: torch.Generator | Sequence[torch.Generator] | None = None
               ) -> Tensor:
        """Joint samples (B, n, V, 3) of the Laplace approximation: x * Exp(δ), δ = L⁻ᵀ z.

        One generator per batch element makes each element's samples independent of its batch-mates.
        """
        shape = (self.variables * 3, n)
        if isinstance(generator, Sequence):
            z = torch.stack([torch.randn(shape, dtype=self.dtype, device=self.device, generator=g) for g in generator])
        else:
            z = torch.randn((self.batch, *shape), dtype=self.dtype, device=self.device, generator=generator)
        delta = factor.solve_upper(z).permute(0, 2, 1).reshape(self.batch, n, self.variables, 3)
        delta = delta * (self.valid & ~self.held)[:, None, :, None]
        return lie.compose(self.values[:, None].expand_as(delta), lie.exp(delta))

    def values_of(self, b: int) -> dict[Key, np.ndarray]:
        values = self.values[b].detach().cpu().numpy()
        return {k: values[i] for i, k in enumerate(self.keys[b])}


class BandCholesky:
    """L Lᵀ = H for H block-tridiagonal over chunks; per element failure in ``failed``."""

    def __init__(self, band: Tensor, chunk: int) -> None:
        B, n_chunks, C3, _ = band.shape
        self.diag: list[Tensor] = []
        self.off: list[Tensor] = []  # off[c] is L's block (c+1, c)
        self.failed = torch.zeros(B, dtype=torch.bool, device=band.device)
        eye = torch.eye(C3, dtype=band.dtype, device=band.device)
        previous = None
        for c in range(n_chunks):
            block = band[:, c, :, C3:]
            if previous is not None:
                lower = torch.linalg.solve_triangular(previous.mT, band[:, c, :, :C3], upper=True, left=False)
                self.off.append(lower)
                block = block - lower @ lower.mT
            chol, info = torch.linalg.cholesky_ex(block)
            bad = info != 0
            if bool(bad.any()):
                self.failed |= bad
                chol = torch.where(bad[:, None, None], eye, chol)
            self.diag.append(chol)
            previous = chol

    def solve_lower(self, rhs: Tensor) -> Tensor:
        B, _, k = rhs.shape
        C3 = self.diag[0].shape[-1]
        parts = rhs.view(B, len(self.diag), C3, k)
        out, y = [], None
        for c, chol in enumerate(self.diag):
            b = parts[:, c] if y is None else parts[:, c] - self.off[c - 1] @ y
            y = torch.linalg.solve_triangular(chol, b, upper=False)
            out.append(y)
        return torch.stack(out, 1).view(B, -1, k)

    def solve_upper(self, rhs: Tensor) -> Tensor:
        B, _, k = rhs.shape
        C3 = self.diag[0].shape[-1]
        parts = rhs.view(B, len(self.diag), C3, k)
        out, x = [None] * len(self.diag), None
        for c in range(len(self.diag) - 1, -1, -1):
            b = parts[:, c] if x is None else parts[:, c] - self.off[c].mT @ x
            x = torch.linalg.solve_triangular(self.diag[c].mT, b, upper=True)
            out[c] = x
        return torch.stack(out, 1).view(B, -1, k)

    def solve(self, rhs: Tensor) -> Tensor:
        """H⁻¹ rhs for rhs (B, V*3, k)."""
        return self.solve_upper(self.solve_lower(rhs))


class GaussNewtonBackend:
    """The estimator's interface (add, estimate, marginals, sample) over the batched solver.

    Live use keeps latency flat with a fixed-lag window: each step re-solves, warm-started, the
    poses of the last ``window`` steps; older poses are held at their values (conditioned on, not
    marginalised), and factors that reach into the window from outside still count.
    ``sample`` and ``solve_all`` work on the whole graph.
    """

    def __init__(self, window: int = 50, iterations: int = 3, device: str = "cpu", jacobians: str = "auto") -> None:
        self.window, self.iterations, self.device, self.jacobians = window, iterations, device, jacobians
        self._factors: list[Factor] = []
        self._by_step: dict[int, list[int]] = {}
        self._values: dict[Key, np.ndarray] = {}
        self._last: tuple[Problem, BandCholesky] | None = None

    def add(self, factors: Iterable[Factor], initial: dict[Key, np.ndarray]) -> None:
        for f in factors:
            for step in {k[1] for k in f.keys}:
                self._by_step.setdefault(step, []).append(len(self._factors))
            self._factors.append(f)
        self._values.update({k: np.asarray(v, dtype=float) for k, v in initial.items()})
        if not self._values:
            return
        newest = max(k[1] for k in self._values)
        first = newest - self.window + 1
        chosen = sorted({i for s in range(max(first, 0), newest + 1) for i in self._by_step.get(s, [])})
        factors = [self._factors[i] for i in chosen]
        keys = {k for f in factors for k in f.keys} | {k for k in initial}
        held = [k for k in keys if k[1] < first]
        problem = Problem([(factors, {k: self._values[k] for k in keys})], self.device, fixed=[held],
                          jacobians=self.jacobians)
        report = problem.solve(self.iterations)
        if bool(report.failed[0]):
            raise BackendError(report.reasons[0] or "the system cannot be solved")
        self._values.update(problem.values_of(0))
        self._last = (problem, problem.factorize())

    def estimate(self, keys: Sequence[Key] | None = None) -> dict[Key, np.ndarray]:
        keys = list(self._values) if keys is None else keys
        try:
            return {k: self._values[k] for k in keys}
        except KeyError as error:
            raise BackendError(f"no estimate for {error.args[0]}") from None

    def marginals(self, keys: Sequence[Key]) -> dict[Key, np.ndarray]:
        if self._last is None:
            raise BackendError("nothing solved yet")
        problem, factor = self._last
        if any(k not in problem.keys[0] or k[1] < max(k2[1] for k2 in problem.keys[0]) - self.window + 1
               for k in keys):
            raise BackendError("marginals are kept for the poses of the current window only")
        covariance = problem.marginals(factor, [list(keys)])[0].cpu().numpy()
        return {k: covariance[i] for i, k in enumerate(keys)}

    def solve_all(self, iterations: int = 20) -> Problem:
        problem = Problem([(self._factors, dict(self._values))], self.device, jacobians=self.jacobians)
        report = problem.solve(iterations)
        if bool(report.failed[0]):
            raise BackendError(report.reasons[0] or "the system cannot be solved")
        self._values.update(problem.values_of(0))
        return problem

    def sample(self, n: int, keys: Sequence[Key], rng: np.random.Generator) -> np.ndarray:
        problem = Problem([(self._factors, dict(self._values))], self.device, jacobians=self.jacobians)
        generator = torch.Generator(device=self.device).manual_seed(int(rng.integers(2**62)))
        samples = problem.sample(problem.factorize(), n, generator)[0].cpu().numpy()  # (n, V, 3)
        index = {k: i for i, k in enumerate(problem.keys[0])}
        return samples[:, [index[k] for k in keys]]


def solve_batch(graphs: Sequence[Graph], keys: Sequence[Sequence[Key]], iterations: int, samples: int = 0,
                seeds: Sequence[int] = (), device: str = "cpu") -> list[BatchSolution]:
    """backends.solve_batch by one batched Problem over all graphs; graph b's samples come from its own
    generator, so they do not depend on its batch-mates."""
    problem = Problem(list(graphs), device)
    report = problem.solve(iterations=iterations)
    for b, reason in enumerate(report.reasons):
        if reason is not None:
            raise BackendError(reason, graph=b)
    drawn = None
    if samples:
        generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
        drawn = problem.sample(problem.factorize(), samples, generators).cpu().numpy()
    out = []
    for b, wanted in enumerate(keys):
        index = {k: i for i, k in enumerate(problem.keys[b])}
        order = [index[k] for k in wanted]
        out.append(BatchSolution(problem.values[b, order].cpu().numpy().copy(),
                                 None if drawn is None else drawn[b][:, order].copy()))
    return out
