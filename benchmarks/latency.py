"""Update latency per tactile frame (network included) as a run grows, against a batch re-solve.

For runs of 300, 1,000 and 3,000 steps: the iSAM2 update latency over all steps, and, as the
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, nargs="+", default=[300, 1000, 3000])
    parser.add_argument("--seed", type=int, default=7000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the network")
    parser.add_argument("--backend", default="isam2", choices=["isam2", "gn"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = TactileModel.load(None)
    config = load_estimator_config(None, {"backend": args.backend})
    name = {"isam2": "iSAM2", "gn": "GN"}[args.backend]
    rows = [f"| steps | factors | {name} p50 ms | {name} p99 ms | {name} max ms | p99 last 10 % ms | "
            "batch LM solve at final size s (iterations) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for steps in args.steps:
        (bag,) = simulated_bags("latency", ["rect"], 1, steps, args.seed)
        with tempfile.TemporaryDirectory() as tmp:
            result = replay_bag(bag, config, model, tmp)
        latency = np.array([e.update_ms for e in result.estimates])
        tail = latency[int(0.9 * len(latency)):]
        seconds, iterations = batch_solve_seconds(result.graph)
        rows.append(
            f"| {steps} | {len(result.graph)} | {np.percentile(latency, 50):.2f} | {np.percentile(latency, 99):.2f} | "
            f"{latency.max():.2f} | {np.percentile(tail, 99):.2f} | {seconds:.2f} ({iterations}) |"
        )
        print(rows[-1], flush=True)
    body = "\n".join(rows) + (
        "\n\nLatency is the wall time from a tactile frame's arrival (its end-effector pose known) to its "
        "estimate with marginal covariance: contact detection, the network, factor creation and the "
        f"{name} update; torch uses {args.threads} thread(s). Target: p99 <= 10 ms, flat as the run grows."
    )
    append_results("Update latency as the run grows (issue 2)", body)


if __name__ == "__main__":
    main()
