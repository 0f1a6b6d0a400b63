"""Update latency per tactile frame (network included) as a run grows, against a batch re-solve.

For runs of 300, 1,000 and 3,000 steps, with the camera and tactile-only (``--regime``): the iSAM2
update latency over all steps, and, as the
naive peer, one gtsam Levenberg-Marquardt solve of the whole graph from scratch at the run's
final size, which is what a batch estimator would pay at that step.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import gtsam
import numpy as np
import torch

from benchmarks.common import append_results, simulated_bags
from tactile_estimator.adapters.replay import replay_bag
from tactile_estimator.backends.isam2 import gtsam_key, to_gtsam
from tactile_estimator.config import load_estimator_config
from tactile_estimator.networks.tactile import TactileModel

REGIMES = {"camera": [], "tactile-only": ["camera"]}  # disabled factor families; the first detection still seeds o_0


def batch_solve_seconds(graph) -> tuple[float, int]:
    factors = gtsam.NonlinearFactorGraph()
    for factor in graph.factors:
        factors.add(to_gtsam(factor))
    values = gtsam.Values()
    for key, pose in graph.initial.items():
        values.insert(gtsam_key(key), gtsam.Pose2(*map(float, pose)))
    started = time.perf_counter()
    optimizer = gtsam.LevenbergMarquardtOptimizer(factors, values, gtsam.LevenbergMarquardtParams())
    optimizer.optimize()
    return time.perf_counter() - started, optimizer.iterations()


def relinearization(args: argparse.Namespace) -> None:
    """Where the tail comes from: the iSAM2 updates' time against the variables they relinearized."""
    from tactile_estimator.backends.isam2 import Isam2Backend

    records: list[tuple[float, int]] = []
    add = Isam2Backend.add

    def timed_add(self: Isam2Backend, factors, initial) -> None:
        started = time.perf_counter()
        add(self, factors, initial)
        records.append(((time.perf_counter() - started) * 1e3, self.relinearized))

    Isam2Backend.add = timed_add  # type: ignore[method-assign]
    torch.set_num_threads(args.threads)
    model = TactileModel.load(None)
    rows = ["| steps | updates | median update ms | median relinearized | slowest 8: ms (relinearized) |",
            "| --- | --- | --- | --- | --- |"]
    for steps in args.steps:
        records.clear()
        (bag,) = simulated_bags("latency", ["rect"], 1, steps, args.seed)
        with tempfile.TemporaryDirectory() as tmp:
            replay_bag(bag, load_estimator_config(), model, tmp)
        ms = np.array([r[0] for r in records])
        count = np.array([r[1] for r in records])
        slow = np.argsort(ms)[-8:][::-1]
        rows.append(f"| {steps} | {len(ms)} | {np.median(ms):.2f} | {np.median(count):.0f} | "
                    + ", ".join(f"{ms[i]:.1f} ({count[i]})" for i in slow) + " |")
        print(rows[-1], flush=True)
    Isam2Backend.add = add  # type: ignore[method-assign]
    body = "\n".join(rows) + (
        "\n\nThe iSAM2 update alone (factor conversion and gtsam's update), per tactile frame. A relinearized "
        "pose re-evaluates the Python factors on it (CustomFactor callbacks), so an update's time follows "
        "the number of variables it relinearized, and re-elimination adds to it.")
    append_results("iSAM2 latency tail: relinearization (issue 2)", body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, nargs="+", default=[300, 1000, 3000])
    parser.add_argument("--seed", type=int, default=7000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the network")
    parser.add_argument("--backend", default="isam2", choices=["isam2", "gn"])
    parser.add_argument("--regime", nargs="+", default=list(REGIMES), choices=list(REGIMES),
                        help="camera: the bag as simulated; tactile-only: camera factors off after the first pose")
    parser.add_argument("--pushing-friction", type=float, default=None, metavar="MU",
                        help="the pushing factor's friction (0: sticking contact); default: the shipped setting")
    parser.add_argument("--relinearization", action="store_true",
                        help="iSAM2: also report how many variables the slowest updates relinearized")
    args = parser.parse_args()
    if args.relinearization:
        relinearization(args)
        return
    torch.set_num_threads(args.threads)
    model = TactileModel.load(None)
    name = {"isam2": "iSAM2", "gn": "GN"}[args.backend]
    rows = [f"| regime | steps | factors | {name} p50 ms | {name} p99 ms | {name} max ms | p99 last 10 % ms | "
            "batch LM solve at final size s (iterations) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for regime in args.regime:
        overrides = {"backend": args.backend, "disabled_factors": REGIMES[regime]}
        if args.pushing_friction is not None:
            overrides["pushing_friction"] = args.pushing_friction
        config = load_estimator_config(None, overrides)
        for steps in args.steps:
            (bag,) = simulated_bags("latency", ["rect"], 1, steps, args.seed)
            with tempfile.TemporaryDirectory() as tmp:
                result = replay_bag(bag, config, model, tmp)
            latency = np.array([e.update_ms for e in result.estimates])
            tail = latency[int(0.9 * len(latency)):]
            seconds, iterations = batch_solve_seconds(result.graph)
            rows.append(
                f"| {regime} | {steps} | {len(result.graph)} | {np.percentile(latency, 50):.2f} | "
                f"{np.percentile(latency, 99):.2f} | {latency.max():.2f} | {np.percentile(tail, 99):.2f} | "
                f"{seconds:.2f} ({iterations}) |"
            )
            print(rows[-1], flush=True)
    body = "\n".join(rows) + (
        "\n\nLatency is the wall time from a tactile frame's arrival (its end-effector pose known) to its "
        "estimate with marginal covariance: contact detection, the network, factor creation and the "
        f"{name} update; torch uses {args.threads} thread(s); pushing_friction {config.pushing_friction:g}. "
        "Target: p99 <= 10 ms, flat as the run grows."
    )
    append_results("Update latency as the run grows (issue 2)", body)


if __name__ == "__main__":
    main()
