"""Latency of the live path over DDS: a tactile frame's publication to the receipt of its estimate.

The estimator runs as it would live (``tactile-estimator run``, its own process); this process
publishes a simulated run in real time (tactile JPEG frames at 30 or 60 Hz, end-effector poses at
100 Hz, camera detections at 2 Hz, re-stamped to the rate) and subscribes to
``/estimator_node/object_pose``. Latency includes CDR, DDS on loopback, JPEG decoding, the
network, the graph update with marginals and the way back. Cyclone stays on loopback.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

from benchmarks.common import ROOT, append_results
from tactile_estimator.adapters import dds
from tactile_estimator.adapters.live import POSE_OUT, node_topic
from tactile_estimator.adapters.router import tactile_topics
from tactile_estimator.config import load_estimator_config
from tactile_estimator.io import messages
from tactile_estimator.objects import DEFAULT_SIZES, Shape
from tactile_estimator.sim.pushing import SimulatedRun, simulate_run

DEFAULTS = load_estimator_config()  # the topics `tactile-estimator run` subscribes to by default
TOPICS, COMPRESSED = DEFAULTS.topics, tactile_topics(DEFAULTS)[1]
POSE_TOPIC = node_topic(POSE_OUT, "estimator_node")  # run's default --node-name


def stream(run: SimulatedRun, rate_hz: float) -> list[tuple[int, str, str, object]]:
    """The run's messages re-stamped so that tactile frames come at rate_hz, in stamp order."""
    t0 = run.tactile[0].stamp_ns
    scale = (run.tactile[1].stamp_ns - t0) * rate_hz / 1e9

    def at(stamp: int) -> int:
        return t0 + round((stamp - t0) * scale)

    out = []
    for f in run.tactile:
        frame = type(f)(at(f.stamp_ns), f.image, f.frame_id)
        out.append((frame.stamp_ns, COMPRESSED, messages.COMPRESSED_IMAGE,
                    messages.compressed_image_msg(frame)))
    out += [(at(s.stamp_ns), TOPICS.ee_pose, messages.POSE_STAMPED,
             messages.pose_stamped_msg(at(s.stamp_ns), s.pose, "world")) for s in run.ee_poses]
    out += [(at(d.stamp_ns), TOPICS.camera, messages.POSE_WITH_COVARIANCE_STAMPED,
             messages.pose_with_covariance_msg(at(d.stamp_ns), d.pose, d.covariance, "world")) for d in run.camera]
    return sorted(out, key=lambda item: item[0])


def measure(run: SimulatedRun, rate_hz: float, domain: int, warmup: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CYCLONEDDS_URI": dds.localhost_config()}
    estimator = subprocess.Popen([sys.executable, "-m", "tactile_estimator.cli", "run", "--domain", str(domain)],
                                 env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert estimator.stdout is not None
        line = estimator.stdout.readline()
        if "listening" not in line:
            raise RuntimeError(f"the estimator did not start: {line!r}")
        with dds.DdsBus(domain, dds.localhost_config()) as bus:
            bus.subscribe(POSE_TOPIC, messages.POSE_WITH_COVARIANCE_STAMPED)
            info = bus.publisher(TOPICS.object_info, messages.STRING, dds.LATCHED)
            info.publish(messages.string_msg(messages.object_info_to_text(run.object_info)))
            items = stream(run, rate_hz)
            publishers = {(t, m): bus.publisher(t, m) for _, t, m, _ in items}
            deadline = time.monotonic() + 30
            while not all(p.matched for p in publishers.values()):
                if time.monotonic() > deadline:
                    raise RuntimeError("the estimator's subscriptions did not match")
                time.sleep(0.01)
            time.sleep(0.5)
            sent: dict[int, float] = {}
            received: dict[int, float] = {}

            def collect(timeout: float) -> None:
                bus.wait(timeout)
                now = time.perf_counter()
                for m in bus.take():
                    received.setdefault(messages.stamp_to_ns(m.msg.header.stamp), now)

            start, first = time.perf_counter(), items[0][0]
            for stamp, topic, msgtype, msg in items:
                while (due := start + (stamp - first) * 1e-9 - time.perf_counter()) > 0:
                    collect(min(due, 0.002))
                publishers[(topic, msgtype)].publish(msg)
                if msgtype == messages.COMPRESSED_IMAGE:
                    sent[stamp] = time.perf_counter()
            end = time.perf_counter() + 2.0
            while time.perf_counter() < end:
                collect(0.01)
    finally:
        estimator.terminate()
        estimator.wait(30)
    frames = sorted(sent)[warmup:]
    latency = np.array([received[s] - sent[s] for s in frames if s in received]) * 1e3
    return {"frames": len(frames), "estimates": len(latency), "p50": float(np.percentile(latency, 50)),
            "p99": float(np.percentile(latency, 99)), "max": float(latency.max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", type=float, nargs="+", default=[30.0, 60.0])
    parser.add_argument("--steps", type=int, default=300, help="tactile frames per rate")
    parser.add_argument("--seed", type=int, default=7100)
    parser.add_argument("--warmup", type=int, default=10, help="first frames left out (model warm-up)")
    args = parser.parse_args()
    run = simulate_run(Shape("rect", DEFAULT_SIZES["rect"]), steps=args.steps, seed=args.seed)
    rows = ["| tactile rate Hz | frames | estimates received | p50 ms | p99 ms | max ms |",
            "| --- | --- | --- | --- | --- | --- |"]
    for i, rate in enumerate(args.rates):
        r = measure(run, rate, 150 + (os.getpid() + i) % 80, args.warmup)
        rows.append(f"| {rate:g} | {r['frames']} | {r['estimates']} | {r['p50']:.2f} | {r['p99']:.2f} | "
                    f"{r['max']:.2f} |")
        print(rows[-1], flush=True)
    body = "\n".join(rows) + (
        f"\n\nOne simulated rect run ({args.steps} frames, seed {args.seed}) published in real time from this "
        "process over Cyclone DDS on loopback to `tactile-estimator run` (iSAM2, its own process); latency "
        "from a tactile frame's publication to the receipt of its `~/object_pose`, the first "
        f"{args.warmup} frames left out. Both processes share the machine's cores."
    )
    append_results("Live latency over DDS (issue 5)", body)


if __name__ == "__main__":
    main()
