"""How much can tactile factors help at best? The accuracy runs with the network's predictions
replaced by the true relative sensor motion (an oracle), plus Gaussian noise of a given σ.

Variants: without tactile factors; the shipped network; the network on θ alone (its x and y
sigmas made 1 m wide); an oracle with noise like the network's
validation error; a near-perfect oracle. The gap between "without tactile" and the near-perfect
oracle is the most any tactile model can gain in this sensor setup.

Two oracles ask what an honest sensor model can reach. The image does not show everything the
near-perfect oracle is given: sliding along a flat face leaves the imprint unchanged, and a disc looks
the same at every spin. "oracle, θ only" gives the true relative rotation alone. "oracle, episode
gain error" gives the truth times (1 + g), with g drawn once per contact episode (σ 0.25, the spread
of the network's per-run slope of predicted against true rotation): white noise of the network's size
costs little, but an error that persists through an episode is counted once per factor.

``--pushing-scale 1 3 10`` repeats the table with the quasi-static pushing sigmas multiplied by each
factor. The pushing model's error at ground truth persists through a sliding stretch, so the graph,
which takes factors' errors as independent, counts it many times over; a tactile model that is
right about the motion then loses against it. Loosening the pushing sigmas shows how much.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile

import numpy as np

from benchmarks.common import append_results, simulated_bags
from tactile_estimator import estimator as estimator_module
from tactile_estimator.adapters.replay import replay_bag
from tactile_estimator.config import load_estimator_config
from tactile_estimator.factors import relative_sensor_motion
from tactile_estimator.learning.datasets import load_trajectory
from tactile_estimator.networks.tactile import TactileModel

# name: (σ x, y, θ; σ of the per-episode relative gain error)
ORACLES = {
    "oracle, network-like noise": ([0.0002, 0.0005, 0.02], 0.0),
    "oracle, near-perfect": ([2e-5, 2e-5, 2e-4], 0.0),
    "oracle, θ only": ([1.0, 1.0, 2e-4], 0.0),
    "oracle, episode gain error": ([0.0002, 0.0005, 0.02], 0.25),
}
CARRIES_NOTHING = 0.5  # an oracle σ this wide (metres or radians) stands for "not measured": no noise is added


def with_oracle(truth, sigmas: list[float], rng: np.random.Generator, episode_gain: float = 0.0):
    """A _factors_for that swaps each tactile measurement for the truth, times (1 + a gain error drawn once
    per contact episode), plus white noise."""
    original = estimator_module.Estimator._factors_for
    noise = np.where(np.asarray(sigmas) < CARRIES_NOTHING, sigmas, 0.0)
    gains: dict[int | None, float] = {}

    def factors_for(self, step, previous):
        factors, initial = original(self, step, previous)
        out = []
        for f in factors:
            if f.family == "tactile":
                i = np.searchsorted(truth.stamps, self.steps[f.keys[0][1]].stamp_ns)
                j = np.searchsorted(truth.stamps, step.stamp_ns)
                true = relative_sensor_motion(truth.truth[i], truth.ee[i], truth.truth[j], truth.ee[j]).reshape(3)
                if step.episode not in gains:
                    gains[step.episode] = 1.0 + episode_gain * rng.normal() if episode_gain else 1.0
                f = dataclasses.replace(f, measurement=true * gains[step.episode] + rng.normal(0, noise),
                                        sigmas=np.asarray(sigmas))
            out.append(f)
        return out, initial

    return factors_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs-per-shape", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=5000)
    parser.add_argument("--pushing-scale", type=float, nargs="+", default=[1.0],
                        help="multiply the shipped pushing sigmas by each of these (one table row group each)")
    args = parser.parse_args()
    bags = simulated_bags("accuracy", ["rect", "disc", "ellipse"], args.runs_per_shape, args.steps, args.seed)
    model = TactileModel.load(None)
    shipped_pushing = list(model.weights.pushing)
    rows = ["| pushing σ | tactile factors | final RMSE mm | final RMSE deg | gain translation | gain rotation |",
            "| --- | --- | --- | --- | --- | --- |"]
    original = estimator_module.Estimator._factors_for
    truths = {bag: load_trajectory(bag, load_estimator_config(), model.arch) for bag in bags}  # the oracles' truth
    with tempfile.TemporaryDirectory() as tmp:
        for scale in args.pushing_scale:
            model.weights.pushing = [scale * s for s in shipped_pushing]
            results: dict[str, list[tuple[float, float]]] = {}
            for variant in ["without tactile", "network", "network, θ only", *ORACLES]:
                config = load_estimator_config(None, {"disabled_factors": ["tactile"] if variant == "without tactile"
                                                      else []})
                for bag in bags:
                    if variant in ORACLES:
                        sigmas, gain = ORACLES[variant]
                        estimator_module.Estimator._factors_for = with_oracle(truths[bag], sigmas,
                                                                              np.random.default_rng(0), gain)
                    shipped_tactile = list(model.weights.tactile)
                    if variant == "network, θ only":  # x and y sigmas so wide they carry nothing
                        model.weights.tactile = [1.0, 1.0, shipped_tactile[2]]
                    try:
                        m = replay_bag(bag, config, model, f"{tmp}/{variant}/{bag.name}").metrics
                    finally:
                        estimator_module.Estimator._factors_for = original
                        model.weights.tactile = shipped_tactile
                    results.setdefault(variant, []).append((m["final_rmse_translation_m"],
                                                            m["final_rmse_rotation_rad"]))
            base = np.mean(results["without tactile"], axis=0)
            for variant, values in results.items():
                mean = np.mean(values, axis=0)
                rows.append(f"| ×{scale:g} | {variant} | {mean[0] * 1e3:.2f} | {np.degrees(mean[1]):.2f} | "
                            f"{1 - mean[0] / base[0]:.0%} | {1 - mean[1] / base[1]:.0%} |")
                print(rows[-1], flush=True)
    model.weights.pushing = shipped_pushing
    body = "\n".join(rows) + (
        f"\n\n{len(bags)} runs ({args.runs_per_shape} per object, {args.steps} steps, seeds {args.seed}+), iSAM2, "
        "mean over runs; gains against the same pushing σ without tactile factors. Oracle σ (x, y, θ): "
        + "; ".join(f"{k}: {v}" + (f", per-episode gain σ {g}" if g else "") for k, (v, g) in ORACLES.items())
        + ". Pushing σ ×1 is the shipped model's: "
        + ", ".join(f"{s:.2g}" for s in shipped_pushing) + "."
    )
    append_results("Tactile ceiling: the network against a ground-truth oracle (issue 2)", body)


if __name__ == "__main__":
    main()
