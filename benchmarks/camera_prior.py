"""The camera prior from camera images alone against the one from the detection topic, on simulated runs.

For each shape and seed a pushing run is simulated and written twice: with the detection topic
(``/object_detection``: 2 Hz, 30 % dropped, σ 5 mm / 2°, as ``simulate`` writes it) and no images,
and with the camera's images (15 Hz PNG, ``simulate``'s default) and no detection topic. Both are
replayed with the shipped model and defaults: ``camera.source: auto`` takes the detection topic from
the first and the images from the second. Reported per run and on average: the final translation
and rotation errors (the smoothed trajectory's last tenth, RMSE), their ratio images / detections,
the camera factors used and the detector's outcomes. Target: images within 10 % of detections (a
ratio <= 1.1).

Each detection's covariance is the detector's own (σ² (JᵀJ)⁻¹ from the corners' pixels, with the
floor ``camera.floor_translation_m`` 0.5 mm / ``camera.floor_rotation_rad`` 0.3° for the extrinsics'
and the mount's calibration): on these frames it covers the error against ground truth at its 95 %
ellipsoid (benchmarks.apriltag), so it is honest; the detection topic's 5 mm / 2° is what its
simulated noise is.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import append_results
from tactile_estimator.adapters.replay import replay_bag
from tactile_estimator.config import load_estimator_config
from tactile_estimator.networks.tactile import TactileModel
from tactile_estimator.objects import DEFAULT_SIZES, SHAPES, Shape
from tactile_estimator.sim.pushing import simulate_run
from tactile_estimator.sim.recording import camera_renderer, write_run_bag


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="runs per shape")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=500)
    args = parser.parse_args()
    model = TactileModel.load()
    config = load_estimator_config()
    rows, ratios_t, ratios_r = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.runs):
            for s, kind in enumerate(SHAPES):
                seed = args.seed + r * len(SHAPES) + s
                run = simulate_run(Shape(kind, DEFAULT_SIZES[kind]), steps=args.steps, seed=seed)
                detections, images = Path(tmp) / f"{seed}_detections", Path(tmp) / f"{seed}_images"
                write_run_bag(run, detections)
                write_run_bag(run, images, camera=camera_renderer(run), detections=False)
                a = replay_bag(detections, config, model, Path(tmp) / f"{seed}_a").metrics
                b = replay_bag(images, config, model, Path(tmp) / f"{seed}_b").metrics
                ta, tb = a["final_rmse_translation_m"] * 1e3, b["final_rmse_translation_m"] * 1e3
                ra, rb = math.degrees(a["final_rmse_rotation_rad"]), math.degrees(b["final_rmse_rotation_rad"])
                ratios_t.append(tb / ta)
                ratios_r.append(rb / ra)
                events = b["events"]
                misses = sum(n for k, n in events.items() if k.startswith("camera_") and k != "camera_detections")
                rows.append(f"| {kind} | {seed} | {ta:.2f} / {ra:.2f} | {tb:.2f} / {rb:.2f} | {tb / ta:.2f} / "
                            f"{rb / ra:.2f} | {len(run.camera)} | {events.get('camera_detections', 0)} of "
                            f"{events.get('camera_detections', 0) + misses} | {sum(b['dropped_inputs'].values())} |")
                print(rows[-1], flush=True)
    body = "\n".join([
        f"{args.runs} run(s) per shape of {args.steps} steps, seeds from {args.seed}; shipped model and defaults. "
        "Errors are the final (last tenth of the smoothed trajectory) RMSE against ground truth.",
        "",
        "| shape | seed | detection topic: final mm / ° | camera images: final mm / ° | ratio images / detections "
        "(mm / °) | detections on the topic | frames detected | drops |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"Mean ratio images / detections: translation {np.mean(ratios_t):.2f}, rotation {np.mean(ratios_r):.2f}; "
        f"worst {max(ratios_t):.2f} / {max(ratios_r):.2f}. Target: <= 1.1 (within 10 %). The images' covariance "
        "is the detector's own with a 0.5 mm / 0.3° floor (honest on these frames, benchmarks.apriltag); the "
        "detection topic's is its simulated 5 mm / 2°.",
    ])
    append_results("Camera prior: images alone against the detection topic (issue 21)", body)


if __name__ == "__main__":
    main()
