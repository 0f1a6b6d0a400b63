"""The batched Gauss-Newton backend against Theseus and gtsam on the tactile pushing objective.

The objective is the graph the estimator grows on a simulated rect run (all factor families).
A case (batch B, steps S) takes one S-step window of it and B copies whose initial values are
perturbed differently (σ 2 mm, 1°), so every batch element has the structure Theseus needs to
vectorise. Each solver runs 10 Gauss-Newton iterations. Every case runs in its own process, so
the peak memory (max RSS growth during the solve) is its own.

Theseus (GaussNewton + CholeskyDenseSolver, AutoDiffCostFunction over the same torch residuals)
is optional: `pip install --no-build-isolation --no-deps theseus-ai==0.2.3` and its pure-Python
dependencies (see the Makefile's bench-deps target).
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from benchmarks.common import CACHE, append_results
from tactile_estimator.factors import Factor

ITERATIONS = 10
SOURCE_STEPS = 1200


def source_graph(steps: int) -> tuple[list[Factor], dict]:
    """The estimator's graph on a simulated rect run of ``steps`` steps (cached)."""
    path = CACHE / "solver" / f"graph_{steps}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    from tactile_estimator.config import load_estimator_config
    from tactile_estimator.estimator import Estimator
    from tactile_estimator.factors import ObjectModel
    from tactile_estimator.networks.tactile import TactileModel
    from tactile_estimator.objects import DEFAULT_SIZES, Shape
    from tactile_estimator.sim.pushing import simulate_run

    run = simulate_run(Shape("rect", DEFAULT_SIZES["rect"]), steps=steps, seed=9000)
    config = load_estimator_config()
    estimator = Estimator(config, TactileModel.load(), ObjectModel.for_shape(Shape.from_info(run.object_info)))
    records = [(r.stamp_ns, i, r) for i, stream in enumerate([run.tactile, run.ee_poses, run.camera]) for r in stream]
    for _, kind, record in sorted(records, key=lambda e: (e[0], e[1])):
        (estimator.add_tactile, estimator.add_ee_pose, estimator.add_camera)[kind](record)
    estimator.flush()
    graph = (list(estimator.graph.factors), dict(estimator.graph.initial))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(graph))
    return graph


def window(graph: tuple[list[Factor], dict], start: int, steps: int) -> tuple[list[Factor], dict]:
    """Factors wholly inside steps [start, start + steps), re-indexed from 0; a first-pose prior
    from the source's initial value anchors the window."""
    factors, initial = graph
    inside = [f for f in factors if all(start <= k[1] < start + steps for k in f.keys) and f.family != "first_pose"]
    shifted = [Factor(f.family, tuple((k[0], k[1] - start) for k in f.keys), f.measurement, f.sigmas, f.context)
               for f in inside]
    anchor = Factor("first_pose", (("o", 0),), np.asarray(initial[("o", start)]), np.array([0.005, 0.005, 0.0349]))
    values = {(k[0], k[1] - start): v for k, v in initial.items() if start <= k[1] < start + steps}
    return [anchor, *shifted], values


def batch_of(base: tuple[list[Factor], dict], batch: int) -> list[tuple[list[Factor], dict]]:
    factors, initial = base
    out = []
    for b in range(batch):
        rng = np.random.default_rng(b)
        noisy = {k: v + rng.normal(0, [0.002, 0.002, 0.0175]) for k, v in initial.items()}
        out.append((factors, noisy))
    return out


def run_ours(elements, device: str) -> tuple[float, np.ndarray]:
    from tactile_estimator.backends.gauss_newton import Problem

    problem = Problem(elements, device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    problem.solve(ITERATIONS, tolerance=-1.0, min_step=0.0)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - started, problem.cost().cpu().numpy()


def run_gtsam(elements) -> tuple[float, np.ndarray]:
    import gtsam

    from tactile_estimator.backends.isam2 import gtsam_key, to_gtsam

    seconds, costs = 0.0, []
    for factors, initial in elements:
        graph = gtsam.NonlinearFactorGraph()
        for f in factors:
            graph.add(to_gtsam(f))
        values = gtsam.Values()
        for k, v in initial.items():
            values.insert(gtsam_key(k), gtsam.Pose2(*map(float, v)))
        params = gtsam.GaussNewtonParams()
        params.setMaxIterations(ITERATIONS)
        params.setRelativeErrorTol(0.0)
        params.setAbsoluteErrorTol(0.0)
        started = time.perf_counter()
        result = gtsam.GaussNewtonOptimizer(graph, values, params).optimize()
        seconds += time.perf_counter() - started
        costs.append(graph.error(result))
    return seconds, np.array(costs)


def run_theseus(elements, device: str) -> tuple[float, np.ndarray]:
    import theseus as th

    from tactile_estimator.backends.gauss_newton import Problem
    from tactile_estimator.factors import FAMILIES

    factors, _ = elements[0]
    keys = sorted(elements[0][1], key=lambda k: (k[1], k[0] != "o"))
    batch = len(elements)
    dtype = torch.float64
    variables = {
        k: th.SE2(x_y_theta=torch.tensor(np.stack([e[1][k] for e in elements]), dtype=dtype, device=device),
                  name=f"{k[0]}{k[1]}")
        for k in keys
    }

    def as_xyt(pose) -> torch.Tensor:
        t = pose.tensor
        return torch.stack([t[:, 0], t[:, 1], torch.atan2(t[:, 3], t[:, 2])], -1)

    objective = th.Objective(dtype=dtype)
    for i, f in enumerate(factors):
        family, model = f.family, f.context
        measurement = th.Variable(torch.tensor(np.asarray(f.measurement, dtype=float).reshape(1, -1), dtype=dtype,
                                               device=device).expand(batch, -1).contiguous(), name=f"m{i}")

        def error(optim_vars, aux_vars, family=family, model=model):
            return FAMILIES[family].error([as_xyt(v) for v in optim_vars], aux_vars[0].tensor, model)

        weight = th.DiagonalCostWeight(torch.tensor(1.0 / np.asarray(f.sigmas, dtype=float), dtype=dtype,
                                                    device=device).reshape(1, -1))
        objective.add(th.AutoDiffCostFunction([variables[k] for k in f.keys], error, len(np.atleast_1d(f.sigmas)),
                                              weight, aux_vars=[measurement], name=f"f{i}"))
    optimizer = th.GaussNewton(objective, th.CholeskyDenseSolver, max_iterations=ITERATIONS, step_size=1.0,
                               vectorize=True, abs_err_tolerance=0.0, rel_err_tolerance=0.0)
    layer = th.TheseusLayer(optimizer).to(device)
    with torch.no_grad():
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        solution, _ = layer.forward(optimizer_kwargs={"verbose": False, "track_best_solution": False})
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    final = [(factors, {k: as_xyt(variables[k])[b].cpu().numpy() for k in keys}) for b in range(batch)]
    return seconds, Problem(final).cost().numpy()


def one_case(method: str, batch: int, steps: int, device: str) -> dict:
    elements = batch_of(window(source_graph(max(SOURCE_STEPS, steps + 40)), 40, steps), batch)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    runner = {"ours": lambda: run_ours(elements, device), "gtsam": lambda: run_gtsam(elements),
              "theseus": lambda: run_theseus(elements, device)}[method]
    seconds, costs = runner()
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024.0
    if device.startswith("cuda"):
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    return {"seconds": seconds, "costs": costs.tolist(), "peak_mb": peak_mb}


def measure(method: str, batch: int, steps: int, device: str, timeout: float) -> dict | None:
    command = [sys.executable, "-m", "benchmarks.solver", "--one", method, str(batch), str(steps), "--device", device]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return None
    except subprocess.CalledProcessError as error:
        print(error.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--one", nargs=3, metavar=("METHOD", "BATCH", "STEPS"), help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--steps", type=int, nargs="+", default=[25, 100, 300])
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per case before it is reported as such")
    parser.add_argument("--scale", action="store_true", help="also 10,000 steps x 1 and 1,024 x 25 steps (ours)")
    args = parser.parse_args()
    if args.one:
        method, batch, steps = args.one
        print(json.dumps(one_case(method, int(batch), int(steps), args.device)))
        return
    threads = torch.get_num_threads()  # what each case's process uses (building the graph sets 1 here)
    source_graph(SOURCE_STEPS)
    rows = ["| batch | steps | ours s | ours peak MB | Theseus s | Theseus peak MB | speed-up | "
            "max rel. objective gap | gtsam GN s (sequential) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for steps in args.steps:
        for batch in args.batches:
            ours = measure("ours", batch, steps, args.device, args.timeout)
            theirs = measure("theseus", batch, steps, args.device, args.timeout)
            peer = measure("gtsam", batch, steps, "cpu", args.timeout) if batch <= 16 else None
            if theirs:
                gap = np.max(np.abs(np.array(theirs["costs"]) - ours["costs"]) / np.array(ours["costs"]))
                speedup = theirs["seconds"] / ours["seconds"]
                th_cols = f"{theirs['seconds']:.3f} | {theirs['peak_mb']:.0f} | {speedup:.1f}x | {gap:.1e}"
            else:
                th_cols = f"over {args.timeout:.0f} s or not installed | - | - | -"
            gt = f"{peer['seconds']:.3f}" if peer else "-"
            rows.append(f"| {batch} | {steps} | {ours['seconds']:.3f} | {ours['peak_mb']:.0f} | {th_cols} | {gt} |")
            print(rows[-1], flush=True)
    if args.scale:
        for batch, steps in ((1, 10_000), (1024, 25)):
            source_graph(max(SOURCE_STEPS, steps + 40))
            result = measure("ours", batch, steps, args.device, args.timeout)
            rows.append(f"| {batch} | {steps} | {result['seconds']:.3f} | {result['peak_mb']:.0f} | - | - | - | - | - |"
                        if result else f"| {batch} | {steps} | over {args.timeout:.0f} s | - | - | - | - | - | - |")
            print(rows[-1], flush=True)
    body = "\n".join(rows) + (
        f"\n\nDevice: {args.device}; torch {torch.__version__} with {threads} threads; "
        f"{ITERATIONS} Gauss-Newton iterations per solve, float64. Time is the solve alone (the problem built). "
        "Objective gap: |cost_Theseus − cost_ours| / cost_ours at the end, worst element. gtsam: "
        "GaussNewtonOptimizer, one graph after another (only for batch <= 16)."
    )
    append_results(f"Batched Gauss-Newton against Theseus and gtsam (issue 4, {args.device})", body)


if __name__ == "__main__":
    main()
