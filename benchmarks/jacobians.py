"""Jacobians of the torch factor forms: the current ones (analytic; central differences for pushing)
against torch.func, per family and batch size, then one full ``Problem.linearize()`` per path.

torch.func differentiates ``residual([pose_k * Exp(delta_k)])`` in delta at delta = 0, the right
perturbation the analytic forms use, three ways (tactile_estimator.factors.base.autodiff_jacobians):
``jacrev`` of the residuals summed over the batch (one forward pass, one reverse pass per residual
dimension), and ``vmap`` over the factors of ``jacrev`` or ``jacfwd`` of one factor. Inputs are
random poses; for contact and pushing the end-effector touches the object (tip 0-2 mm off the surface),
as in a run. Times are medians over repeats, float64 on CPU, torch with one thread.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch

from benchmarks.common import append_results
from tactile_estimator.factors import FAMILIES, ObjectModel, lie
from tactile_estimator.factors.base import AUTODIFF_TRANSFORMS, autodiff_jacobians
from tactile_estimator.objects import DEFAULT_SIZES, Shape, sdf

SIZES = (64, 1024, 16384)
CROSSOVER_SIZES = (256, 512, 1024, 2048, 4096, 8192)
# (label, family in FAMILIES, object shape for the families that need one)
CASES = [("prior", "ee_prior", None), ("between", "motion_prior", None), ("tactile", "tactile", None),
         ("contact", "contact", "rect"), ("contact", "contact", "ellipse"),
         ("pushing", "pushing", "rect"), ("pushing", "pushing", "ellipse")]
KEYS = {"ee_prior": 1, "motion_prior": 2, "tactile": 4, "contact": 2, "pushing": 4}
TRANSFORMS = AUTODIFF_TRANSFORMS


def random_poses(generator: torch.Generator, n: int, scale: float = 0.1) -> torch.Tensor:
    xy = torch.randn(n, 2, generator=generator, dtype=torch.float64) * scale
    theta = (torch.rand(n, 1, generator=generator, dtype=torch.float64) * 2.0 - 1.0) * torch.pi
    return torch.cat([xy, theta], 1)


def touching(generator: torch.Generator, model: ObjectModel, objects: torch.Tensor) -> torch.Tensor:
    """End-effector poses whose tip circle touches the object, tilted up to 0.3 rad, then 0-2 mm off."""
    n = objects.shape[0]
    angle = (torch.rand(n, generator=generator, dtype=torch.float64) * 2.0 - 1.0) * torch.pi
    direction = torch.stack([torch.cos(angle), torch.sin(angle)], -1)
    lo, hi = torch.zeros(n, dtype=torch.float64), torch.ones(n, dtype=torch.float64)
    for _ in range(60):  # along the ray from the centre until the SDF equals the tip radius
        mid = 0.5 * (lo + hi)
        inside = sdf(model.shape, mid[:, None] * direction)[0] < model.pusher.radius
        lo, hi = torch.where(inside, mid, lo), torch.where(inside, hi, mid)
    centre = lo[:, None] * direction
    centre = centre + torch.rand(n, 1, generator=generator, dtype=torch.float64) * 0.002 * direction
    yaw = angle + torch.pi + (torch.rand(n, generator=generator, dtype=torch.float64) - 0.5) * 0.6
    offset = torch.tensor(model.pusher.centre_in_ee(), dtype=torch.float64)
    c, s = torch.cos(yaw), torch.sin(yaw)
    position = centre - torch.stack([c * offset[0] - s * offset[1], s * offset[0] + c * offset[1]], -1)
    return lie.compose(objects, torch.cat([position, yaw[:, None]], 1))


def inputs(family: str, model: ObjectModel | None, n: int, seed: int = 0) -> tuple[list[torch.Tensor], torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    if family in ("contact", "pushing"):
        o_prev = random_poses(generator, n)
        e_prev = touching(generator, model, o_prev)
        if family == "contact":
            return [o_prev, e_prev], torch.zeros(n, 0, dtype=torch.float64)
        step = torch.cat([torch.randn(n, 2, generator=generator, dtype=torch.float64) * 0.003,
                          torch.randn(n, 1, generator=generator, dtype=torch.float64) * 0.02], 1)
        no_measurement = torch.zeros(n, 0, dtype=torch.float64)
        return [o_prev, lie.compose(o_prev, step), e_prev, lie.compose(e_prev, step)], no_measurement
    return [random_poses(generator, n) for _ in range(KEYS[family])], random_poses(generator, n, 0.02)


def at_kink(family: str, poses: list[torch.Tensor], measurement: torch.Tensor, model: ObjectModel | None,
            autodiff: list[torch.Tensor], step: float = 1e-6) -> torch.Tensor:
    """Per factor: its forward and backward differences disagree (by > 1e-3) and torch.func equals one
    of them (to 1e-4), i.e. the residual has a kink within ``step`` and either derivative is valid."""
    residual = FAMILIES[family].error
    r0 = residual(poses, measurement, model)
    kink = torch.zeros(r0.shape[0], dtype=torch.bool)
    for k, pose in enumerate(poses):
        for j in range(3):
            delta = torch.zeros(3, dtype=pose.dtype)
            delta[j] = step
            one_sided = []
            for sign in (1.0, -1.0):
                moved = [lie.compose(p, lie.exp(sign * delta).expand_as(p)) if i == k else p
                         for i, p in enumerate(poses)]
                one_sided.append(sign * (residual(moved, measurement, model) - r0) / step)
            forward, backward = one_sided
            column = autodiff[k][..., j]
            disagree = (forward - backward).abs().amax(-1) > 1e-3
            matches = torch.minimum((column - forward).abs().amax(-1), (column - backward).abs().amax(-1)) < 1e-4
            kink |= disagree & matches
    return kink


def median_seconds(functions: dict[str, Callable[[], object]], budget: float = 1.0, most: int = 25,
                   least: int = 5) -> dict[str, float]:
    """Median wall time of each function after one warm-up call. The functions take turns, one call
    each per round, so that load from other processes falls on all of them alike; rounds go on until
    each has had ``least`` calls and the slowest about ``budget`` seconds (at most ``most`` calls)."""
    for function in functions.values():
        function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    while True:
        for name, function in functions.items():
            started = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - started)
        rounds = len(times[name])
        if rounds >= most or (rounds >= least and max(sum(t) for t in times.values()) >= budget):
            return {name: statistics.median(t) for name, t in times.items()}


def family_rows(sizes: tuple[int, ...], budget: float) -> list[str]:
    rows = ["| family | object | N | current ms | jacrev ms | vmap(jacrev) ms | vmap(jacfwd) ms | "
            "current / best torch.func | max abs diff | factors off by > 1e-6 (at a kink) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, family, kind in CASES:
        model = ObjectModel.for_shape(Shape(kind, DEFAULT_SIZES[kind])) if kind else None
        for n in sizes:
            poses, measurement = inputs(family, model, n)
            calls = {"current": partial(FAMILIES[family].jacobians, poses, measurement, model)}
            calls.update({t: partial(autodiff_jacobians, FAMILIES[family].error, poses, measurement,
                                     model, t)
                          for t in TRANSFORMS})
            _, reference = calls["current"]()
            per_factor = torch.zeros(n, dtype=torch.float64)
            for transform in TRANSFORMS:
                _, jac = calls[transform]()
                for a, b in zip(jac, reference, strict=True):
                    per_factor = torch.maximum(per_factor, (a - b).abs().amax((1, 2)))
            off = per_factor > 1e-6
            kinks = int((off & at_kink(family, poses, measurement, model, jac)).sum())
            seconds = median_seconds(calls, budget)
            best = min(seconds[t] for t in TRANSFORMS)
            rows.append(f"| {label} | {kind or '-'} | {n} | {1e3 * seconds['current']:.2f} | "
                        + " | ".join(f"{1e3 * seconds[t]:.2f}" for t in TRANSFORMS)
                        + f" | {seconds['current'] / best:.2f} | {float(per_factor.max()):.1e} | "
                        f"{int(off.sum())} ({kinks}) |")
            print(rows[-1], flush=True)
    return rows


def crossover_rows(sizes: tuple[int, ...], budget: float) -> list[str]:
    """Pushing only, current against torch.func jacrev, between the sizes of the main table."""
    rows = ["| object | N | current ms | jacrev ms | current / jacrev |", "| --- | --- | --- | --- | --- |"]
    for kind in ("rect", "ellipse"):
        model = ObjectModel.for_shape(Shape(kind, DEFAULT_SIZES[kind]))
        for n in sizes:
            poses, measurement = inputs("pushing", model, n)
            seconds = median_seconds({"current": partial(FAMILIES["pushing"].jacobians, poses, measurement, model),
                                      "jacrev": partial(FAMILIES["pushing"].autodiff, poses, measurement,
                                                        model)},
                                     budget)
            current, autodiff = seconds["current"], seconds["jacrev"]
            rows.append(f"| {kind} | {n} | {1e3 * current:.2f} | {1e3 * autodiff:.2f} | {current / autodiff:.2f} |")
            print(rows[-1], flush=True)
    return rows


def linearize_rows(steps: int, batches: tuple[int, ...], budget: float) -> list[str]:
    """One Problem.linearize() of the estimator's graph on a simulated run, per Jacobian path."""
    from benchmarks.solver import batch_of, source_graph
    from tactile_estimator.backends.gauss_newton import Problem

    graph = source_graph(steps)
    torch.set_num_threads(1)  # building the graph may have changed it
    counts: dict[str, int] = {}
    for f in graph[0]:
        counts[f.family] = counts.get(f.family, 0) + 1
    print("factors per family:", counts, flush=True)
    paths = ("analytic", "autodiff", "auto")
    rows = [f"| graphs x steps | pushing factors | {' | '.join(f'{p} ms' for p in paths)} | "
            "max rel. gradient diff (autodiff vs analytic) |", "| --- | --- | --- | --- | --- | --- |"]
    for batch in batches:
        elements = batch_of(graph, batch) if batch > 1 else [graph]
        problems = {path: Problem(elements, jacobians=path) for path in paths}
        seconds = median_seconds({path: problem.linearize for path, problem in problems.items()}, budget, most=15)
        grads = {path: problem.linearize()[1] for path, problem in problems.items()}
        ref = grads["analytic"]
        gap = float((grads["autodiff"] - ref).abs().max() / ref.abs().max())
        rows.append(f"| {batch} x {steps} | {batch * counts.get('pushing', 0)} | "
                    + " | ".join(f"{1e3 * seconds[p]:.1f}" for p in paths) + f" | {gap:.1e} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--crossover", type=int, nargs="*", default=list(CROSSOVER_SIZES),
                        help="pushing sizes for the crossover table (none: skip it)")
    parser.add_argument("--steps", type=int, default=300, help="steps of the simulated run for linearize()")
    parser.add_argument("--batches", type=int, nargs="*", default=[1, 16], help="graphs per linearize() (none: skip)")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds of repeats per timing (at least 5 runs)")
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    sections = ["Per family, N factors in one call:", "", *family_rows(tuple(args.sizes), args.budget)]
    if args.crossover:
        sections += ["", "Pushing between those sizes:", "", *crossover_rows(tuple(args.crossover), args.budget)]
    if args.batches:
        sections += ["", f"One `Problem.linearize()` of the estimator's graph on a simulated {args.steps}-step "
                     "rect run (benchmarks/solver.py's source graph; batches are perturbed copies):", "",
                     *linearize_rows(args.steps, tuple(args.batches), args.budget)]
    wall = time.perf_counter() - started
    sections += ["", f"torch {torch.__version__}, 1 thread, float64, CPU; median over repeats (≥ 5, about "
                 f"{args.budget:g} s for the slowest; the candidates take turns). Ratio > 1: torch.func is faster. "
                 "max abs diff: the largest entry of |J_current − J_torch.func| over the three transforms. At a kink: "
                 "the factor's forward and backward differences disagree (> 1e-3) and torch.func equals one of "
                 "them (1e-4); the residual is not differentiable within the step there (for pushing on the rect, "
                 "the tip centre next to a corner region, where the closest point's derivative jumps), so central "
                 "differences average the two sides and torch.func takes one. "
                 f"Wall time of the run: {wall:.0f} s."]
    body = "\n".join(sections)
    if args.no_append:
        print(body)
    else:
        append_results("Jacobians: analytic against torch.func (issue 4)", body)


if __name__ == "__main__":
    main()
