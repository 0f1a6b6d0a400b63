"""How much can tactile factors help at best? The accuracy runs with the network's predictions
replaced by the true relative sensor motion (an oracle), plus Gaussian noise of a given σ.

Variants: without tactile factors; the shipped network (its pair factor carries x and y, the
contact normal the rotation); an oracle with noise like the network's validation error; a
near-perfect oracle. The gap between "without tactile" and the near-perfect
oracle is the most any tactile model can gain in this sensor setup.

Two oracles ask what an honest sensor model can reach. The image does not show everything the
near-perfect oracle is given: sliding along a flat face leaves the imprint unchanged, and a disc looks
the same at every spin. "oracle, θ only" gives the true relative rotation alone. "oracle, episode
gain error" gives the truth times (1 + g), with g drawn once per contact episode (σ 0.25, the spread
of the network's per-run slope of predicted against true rotation): white noise of the network's size
costs little, but an error that persists through an episode is counted once per factor.
"oracle, what the image shows" is the near-perfect oracle minus what the image cannot show: its
covariance is left free (1 m) along the one direction of the measurement that the frames leave
unchanged, a disc's spin about its centre, and a rectangle's slide along the face in contact when no
corner of that face lies in the image (within half its 18 mm width of the contact). Ellipses keep
the full oracle, whose curvature makes every motion visible in principle, so the variant is an
upper bound for a model that reads only the image.

The per-frame contact-normal factor (factors/tactile_normal.py) has its own rows: the network with
only the pair factor or only the normal factor, the network with the true first pose instead of the
first detection (what the start costs), and "oracle, contact normal", whose normal readings
are the truth (σ 0.2 mrad) on the frames where the network makes one, the pair factors switched off.
``--regime tactile-only`` runs every row without camera factors after the first pose. ``--set`` takes
the runs of one of benchmarks.accuracy's sets; each row gives the final and the online RMSE.

``--pushing-scale 1 3 10`` repeats the table with the quasi-static pushing sigmas multiplied by each
factor. The pushing model's error at ground truth persists through a sliding stretch, so the graph,
which takes factors' errors as independent, counts it many times over; a tactile model that is
right about the motion then loses against it. Loosening the pushing sigmas shows how much.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile

import gtsam
import numpy as np

from benchmarks.accuracy import SETS, run_set
from benchmarks.common import append_results, simulated_bags
from benchmarks.slip import run_seed
from tactile_estimator import estimator as estimator_module
from tactile_estimator import geometry as se2
from tactile_estimator.adapters.replay import replay_bag
from tactile_estimator.backends import isam2 as isam2_module
from tactile_estimator.config import load_estimator_config
from tactile_estimator.factors import ObjectModel, relative_sensor_motion
from tactile_estimator.factors.tactile import sensor_in_object
from tactile_estimator.factors.tactile_normal import contact_normal_deviation
from tactile_estimator.learning.datasets import load_trajectory
from tactile_estimator.networks.tactile import TactileModel
from tactile_estimator.objects import DEFAULT_SIZES, Pusher, Shape, foot_point
from tactile_estimator.sim.pushing import simulate_run

# name: (σ x, y, θ; σ of the per-episode relative gain error)
ORACLES = {
    "oracle, network-like noise": ([0.0002, 0.0005, 0.02], 0.0),
    "oracle, near-perfect": ([2e-5, 2e-5, 2e-4], 0.0),
    "oracle, θ only": ([1.0, 1.0, 2e-4], 0.0),
    "oracle, episode gain error": ([0.0002, 0.0005, 0.02], 0.25),
    "oracle, what the image shows": ([2e-5, 2e-5, 2e-4], 0.0),
}
IMAGE_ONLY = "oracle, what the image shows"
NORMAL_ORACLE = "oracle, contact normal"
NORMAL_ORACLE_SIGMA = 2e-4  # rad
TACTILE_FAMILIES = ["tactile", "tactile_normal"]
# Network rows: which tactile families each switches off.
NETWORK_VARIANTS = {"network": [], "network, pair factor only": ["tactile_normal"],
                    "network, contact normal only": ["tactile"], "network, true first pose": [],
                    "network, true friction": []}
FIRST_POSE_ORACLE = "network, true first pose"  # initial_object_pose: the truth, under the first detection's σ
FRICTION_ORACLE = "network, true friction"  # pushing_friction: the run's own μ, which the simulator drew
REGIMES = {"camera": [], "tactile-only": ["camera"]}
CARRIES_NOTHING = 0.5  # an oracle σ this wide (metres or radians) stands for "not measured": no noise is added
IMAGE_HALF_WIDTH_M = 0.009  # 240 columns of 0.075 mm: a corner this close to the contact along the face is seen
UNSEEN_SIGMA = 1.0  # along the unseen direction


def unseen_direction(shape: Shape, o_i, e_i, o_j, e_j) -> np.ndarray | None:
    """The measurement's change per unit of a motion the frames at i and j do not show, or None."""
    if shape.kind == "disc":
        move = np.array([0.0, 0.0, 1.0])  # spin about the centre
    elif shape.kind == "rect":
        centre = se2.transform_point(sensor_in_object(o_j, e_j), Pusher().centre_in_ee())
        _, gx, gy, fx, fy, _ = foot_point(shape, float(centre[0]), float(centre[1]))
        half = 0.5 * np.asarray(shape.size)
        along, extent = (fy, half[1]) if abs(gx) > abs(gy) else (fx, half[0])
        if abs(gx) > 1e-9 and abs(gy) > 1e-9 or extent - abs(along) < IMAGE_HALF_WIDTH_M:
            return None  # on a corner, or a corner is in view: the slide shows
        move = np.array([0.0, 1.0, 0.0]) if abs(gx) > abs(gy) else np.array([1.0, 0.0, 0.0])
    else:
        return None
    eps = 1e-6
    base = relative_sensor_motion(o_i, e_i, o_j, e_j)
    moved = relative_sensor_motion(o_i, e_i, se2.compose(o_j, eps * move), e_j)
    return se2.log(se2.between(base, moved)) / eps


def image_only_noise(original):
    """isam2.to_gtsam, with the covariances the oracle records for its factors."""
    covariances: dict[int, np.ndarray] = {}

    def to_gtsam(factor):
        cov = covariances.get(id(factor))
        if cov is None:
            return original(factor)
        keys = [isam2_module.gtsam_key(k) for k in factor.keys]
        return gtsam.CustomFactor(gtsam.noiseModel.Gaussian.Covariance(cov), keys,
                                  isam2_module.CALLBACKS["tactile"](factor, keys))

    return to_gtsam, covariances


def with_oracle(truth, sigmas: list[float], rng: np.random.Generator, episode_gain: float = 0.0,
                covariances: dict[int, np.ndarray] | None = None, tally: dict[str, int] | None = None):
    """A _factors_for that swaps each tactile measurement for the truth, times (1 + a gain error drawn once
    per contact episode), plus white noise. With ``covariances``, each factor's covariance is recorded
    there, left free along what the image does not show (``unseen_direction``), and ``tally`` counts the
    tactile factors."""
    tally = tally if tally is not None else {}
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
                if covariances is not None:
                    tally["tactile"] = tally.get("tactile", 0) + 1
                    v = unseen_direction(truth.shape, truth.truth[i], truth.ee[i], truth.truth[j], truth.ee[j])
                    if v is not None:
                        covariances[id(f)] = np.diag(np.square(sigmas)) + UNSEEN_SIGMA ** 2 * np.outer(v, v)
            out.append(f)
        return out, initial

    return factors_for


def with_normal_oracle(truth, rng: np.random.Generator, object_model):
    """A _factors_for whose contact-normal readings are the true ones, plus white noise of NORMAL_ORACLE_SIGMA."""
    original = estimator_module.Estimator._factors_for

    def factors_for(self, step, previous):
        factors, initial = original(self, step, previous)
        out = []
        for f in factors:
            if f.family == "tactile_normal":
                j = np.searchsorted(truth.stamps, step.stamp_ns)
                true = contact_normal_deviation(truth.truth[j], truth.ee[j], object_model)
                f = dataclasses.replace(f, measurement=np.atleast_1d(true + rng.normal(0, NORMAL_ORACLE_SIGMA)),
                                        sigmas=np.array([NORMAL_ORACLE_SIGMA]))
            out.append(f)
        return out, initial

    return factors_for


def disabled_for(variant: str) -> list[str]:
    """The tactile families a row switches off."""
    if variant == "without tactile":
        return TACTILE_FAMILIES
    if variant == NORMAL_ORACLE:
        return ["tactile"]
    if variant in NETWORK_VARIANTS:
        return NETWORK_VARIANTS[variant]
    return ["tactile_normal"]  # the relative-motion oracles replace the pair factor alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs-per-shape", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=5000)
    parser.add_argument("--pushing-scale", type=float, nargs="+", default=[1.0],
                        help="multiply the shipped pushing sigmas by each of these (one table row group each)")
    parser.add_argument("--variants", nargs="+", help="the rows to run, by name (default: all)")
    parser.add_argument("--set", choices=SETS, default=None,
                        help="the runs of a set of benchmarks.accuracy instead of --seed and --runs-per-shape "
                             "(a ceiling chooses nothing, so held-out sets are allowed)")
    parser.add_argument("--regime", choices=list(REGIMES), default="camera")
    parser.add_argument("--objects", nargs="+", choices=["rect", "disc", "ellipse"], default=None,
                        help="replay only these objects' runs (the seeds stay those of all three)")
    args = parser.parse_args()
    variants = ["without tactile", *NETWORK_VARIANTS, *ORACLES, NORMAL_ORACLE]
    if args.variants:
        variants = ["without tactile"] + [v for v in args.variants if v != "without tactile"]
        unknown = set(variants) - {"without tactile", *NETWORK_VARIANTS, *ORACLES, NORMAL_ORACLE}
        if unknown:
            parser.error(f"--variants: unknown {sorted(unknown)}")
    freed = {"factors": 0, "free": 0}
    if args.set:
        runs = run_set(args.set, None, args.steps)
        bags, args.seed, args.runs_per_shape = runs.bags, runs.seed, runs.runs_per_shape
    else:
        bags = simulated_bags("accuracy", ["rect", "disc", "ellipse"], args.runs_per_shape, args.steps, args.seed)
    bags = [b for b in bags if args.objects is None or any(f"_{kind}_" in b.name for kind in args.objects)]
    model = TactileModel.load(None)
    shipped_pushing = list(model.weights.pushing)
    rows = ["| pushing σ | tactile factors | final RMSE mm | final RMSE deg | gain translation | gain rotation | "
            "online RMSE mm | online RMSE deg |", "|" + " --- |" * 8]
    original = estimator_module.Estimator._factors_for
    original_to_gtsam = isam2_module.to_gtsam
    truths = {bag: load_trajectory(bag, load_estimator_config(), model.arch) for bag in bags}  # the oracles' truth
    with tempfile.TemporaryDirectory() as tmp:
        for scale in args.pushing_scale:
            model.weights.pushing = [scale * s for s in shipped_pushing]
            results: dict[str, list[tuple[float, float]]] = {}
            for variant in variants:
                overrides = {"disabled_factors": disabled_for(variant) + REGIMES[args.regime]}
                for bag in bags:
                    if variant == FIRST_POSE_ORACLE:
                        overrides["initial_object_pose"] = [float(v) for v in truths[bag].truth[0]]
                    if variant == FRICTION_ORACLE:
                        seed, kind = run_seed(bag.name)
                        overrides["pushing_friction"] = float(simulate_run(
                            Shape(kind, DEFAULT_SIZES[kind]), steps=args.steps, seed=seed).params["mu"])
                    config = load_estimator_config(None, overrides)
                    if variant == NORMAL_ORACLE:
                        estimator_module.Estimator._factors_for = with_normal_oracle(
                            truths[bag], np.random.default_rng(0), ObjectModel.for_shape(truths[bag].shape))
                    if variant in ORACLES:
                        sigmas, gain = ORACLES[variant]
                        covariances, tally = None, {}
                        if variant == IMAGE_ONLY:
                            isam2_module.to_gtsam, covariances = image_only_noise(original_to_gtsam)
                        estimator_module.Estimator._factors_for = with_oracle(truths[bag], sigmas,
                                                                              np.random.default_rng(0), gain,
                                                                              covariances, tally)
                    try:
                        m = replay_bag(bag, config, model, f"{tmp}/{variant}/{bag.name}").metrics
                    finally:
                        estimator_module.Estimator._factors_for = original
                        isam2_module.to_gtsam = original_to_gtsam
                    if variant == IMAGE_ONLY:
                        freed["factors"] += tally.get("tactile", 0)
                        freed["free"] += len(covariances)
                    results.setdefault(variant, []).append((m["final_rmse_translation_m"],
                                                            m["final_rmse_rotation_rad"],
                                                            m["rmse_translation_m"], m["rmse_rotation_rad"]))
            base = np.mean(results["without tactile"], axis=0)
            for variant, values in results.items():
                mean = np.mean(values, axis=0)
                rows.append(f"| ×{scale:g} | {variant} | {mean[0] * 1e3:.2f} | {np.degrees(mean[1]):.2f} | "
                            f"{1 - mean[0] / base[0]:.0%} | {1 - mean[1] / base[1]:.0%} | "
                            f"{mean[2] * 1e3:.2f} | {np.degrees(mean[3]):.2f} |")
                print(rows[-1], flush=True)
    model.weights.pushing = shipped_pushing
    body = "\n".join(rows) + (
        f"\n\n{len(bags)} runs ({args.runs_per_shape} per object, {args.steps} steps, seeds {args.seed}+"
        + (f", {', '.join(args.objects)} only" if args.objects else "") + "), "
        f"regime {args.regime}, iSAM2, mean over runs; gains against the same pushing σ without tactile factors. "
        "Oracle σ (x, y, θ): "
        + "; ".join(f"{k}: {v}" + (f", per-episode gain σ {g}" if g else "") for k, (v, g) in ORACLES.items())
        + ". Pushing σ ×1 is the shipped model's: "
        + ", ".join(f"{s:.2g}" for s in shipped_pushing) + "."
    )
    if freed["factors"]:
        body += (f" {IMAGE_ONLY}: free along the unseen direction on {freed['free']} of {freed['factors']} tactile "
                 "factors (per pushing σ scale, summed over runs).")
    append_results("Tactile ceiling: the network against a ground-truth oracle (issue 2)", body)


if __name__ == "__main__":
    main()
