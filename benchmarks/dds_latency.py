"""Latency of the live path over DDS: a tactile frame's publication to the receipt of its estimate.

The estimator runs as it would live (``tactile-estimator run``, its own process); this process
publishes a simulated run in real time (tactile JPEG frames at 30 or 60 Hz, end-effector poses at
``--ee-rate``, 100 Hz by default, camera detections at 2 Hz, each run simulated at those rates) and
subscribes to ``/estimator_node/object_pose``. Latency includes CDR, DDS on loopback, JPEG decoding,
the network, the graph update with marginals and the way back.

A frame's pose comes from the end-effector poses around it, so the estimator holds each frame until
the first end-effector pose at or after its stamp arrives. The table splits the latency in two:
that wait (from the publishing schedule: the releasing pose's time minus the frame's), and the rest,
from the releasing pose's publication to the estimate (the estimator's own work). Cyclone stays on
loopback.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT, append_results
from tactile_estimator.adapters import dds
from tactile_estimator.adapters.live import POSE_OUT, node_topic
from tactile_estimator.config import load_estimator_config
from tactile_estimator.io import messages
from tactile_estimator.objects import DEFAULT_SIZES, Shape
from tactile_estimator.router import tactile_topics
from tactile_estimator.sim.pushing import SimulatedRun, simulate_run

DEFAULTS = load_estimator_config()  # the topics `tactile-estimator run` subscribes to by default
TOPICS, COMPRESSED = DEFAULTS.topics, tactile_topics(DEFAULTS)[1]
POSE_TOPIC = node_topic(POSE_OUT, "estimator_node")  # run's default --node-name


def stream(run: SimulatedRun) -> list[tuple[int, str, str, object]]:
    """The run's messages, in stamp order."""
    out = [(f.stamp_ns, COMPRESSED, messages.COMPRESSED_IMAGE, messages.compressed_image_msg(f)) for f in run.tactile]
    out += [(s.stamp_ns, TOPICS.ee_pose, messages.POSE_STAMPED, messages.pose_stamped_msg(s.stamp_ns, s.pose, "world"))
            for s in run.ee_poses]
    out += [(d.stamp_ns, TOPICS.camera, messages.POSE_WITH_COVARIANCE_STAMPED,
             messages.pose_with_covariance_msg(d.stamp_ns, d.pose, d.covariance, "world")) for d in run.camera]
    return sorted(out, key=lambda item: item[0])


def releasing_stamps(run: SimulatedRun) -> dict[int, int]:
    """For each tactile frame, the stamp of the first end-effector pose at or after it (the one whose
    arrival lets the estimator interpolate the frame's pose)."""
    ee = np.array([s.stamp_ns for s in run.ee_poses])
    index = np.searchsorted(ee, [f.stamp_ns for f in run.tactile], side="left")
    return {f.stamp_ns: int(ee[min(i, len(ee) - 1)]) for f, i in zip(run.tactile, index, strict=True)}


def estimator_command(kind: str, domain: int, config: Path | None) -> tuple[list[str], dict[str, str]]:
    """``run`` (our DDS transport) or the rclpy ``estimator_node`` (under a sourced ROS 2, rmw_cyclonedds_cpp)."""
    path = os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p)  # a sourced ROS 2's too
    env = {**os.environ, "PYTHONPATH": path, "CYCLONEDDS_URI": dds.localhost_config()}
    if kind == "run":
        return [sys.executable, "-m", "tactile_estimator.cli", "run", "--domain", str(domain),
                *(["--config", str(config)] if config else [])], env
    env.update(ROS_DOMAIN_ID=str(domain), RMW_IMPLEMENTATION="rmw_cyclonedds_cpp")
    node = "import sys; from tactile_estimator.cli import estimator_node; sys.exit(estimator_node())"
    return [sys.executable, "-c", node, "--ros-args", "-p",
            f"config_file:={config or ROOT / 'config' / 'estimator.yaml'}"], env


def measure(run: SimulatedRun, domain: int, warmup: int, kind: str = "run", config: Path | None = None
            ) -> dict[str, float]:
    command, env = estimator_command(kind, domain, config)
    estimator = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert estimator.stdout is not None
        if kind == "run":
            line = estimator.stdout.readline()
            if "listening" not in line:
                raise RuntimeError(f"the estimator did not start: {line!r}")
        with dds.DdsBus(domain, dds.localhost_config()) as bus:
            bus.subscribe(POSE_TOPIC, messages.POSE_WITH_COVARIANCE_STAMPED)
            info = bus.publisher(TOPICS.object_info, messages.STRING, dds.LATCHED)
            info.publish(messages.string_msg(messages.object_info_to_text(run.object_info)))
            items = stream(run)
            publishers = {(t, m): bus.publisher(t, m) for _, t, m, _ in items}
            deadline = time.monotonic() + 60
            while not all(p.matched for p in publishers.values()):
                if time.monotonic() > deadline:
                    raise RuntimeError("the estimator's subscriptions did not match")
                time.sleep(0.01)
            time.sleep(0.5)
            sent: dict[int, float] = {}
            sent_ee: dict[int, float] = {}
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
                elif msgtype == messages.POSE_STAMPED:
                    sent_ee[stamp] = time.perf_counter()
            end = time.perf_counter() + 2.0
            while time.perf_counter() < end:
                collect(0.01)
    finally:
        estimator.terminate()
        estimator.wait(30)
    frames = [s for s in sorted(sent)[warmup:] if s in received]
    release = releasing_stamps(run)
    latency = np.array([received[s] - sent[s] for s in frames]) * 1e3
    wait = np.array([(release[s] - s) * 1e-6 for s in frames])
    after = np.array([received[s] - sent_ee.get(release[s], sent[s]) for s in frames]) * 1e3
    return {"frames": len(sorted(sent)[warmup:]), "estimates": len(latency),
            "p50": float(np.percentile(latency, 50)), "p99": float(np.percentile(latency, 99)),
            "max": float(latency.max()), "wait_p99": float(np.percentile(wait, 99)),
            "after_p50": float(np.percentile(after, 50)), "after_p99": float(np.percentile(after, 99))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", type=float, nargs="+", default=[30.0, 60.0])
    parser.add_argument("--steps", type=int, default=300, help="tactile frames per rate")
    parser.add_argument("--seed", type=int, default=7100)
    parser.add_argument("--warmup", type=int, default=10, help="first frames left out (model warm-up)")
    parser.add_argument("--ee-rate", type=float, default=100.0, help="end-effector pose rate, Hz")
    parser.add_argument("--estimator", choices=["run", "rclpy"], default="run",
                        help="run: tactile-estimator run; rclpy: the estimator_node under a sourced ROS 2")
    parser.add_argument("--ee-hold", type=float, default=0.0,
                        help="the estimator's ee_hold_s: a frame this close after the newest ee pose takes it at once")
    args = parser.parse_args()
    config = None
    if args.ee_hold:
        config = Path(tempfile.mkdtemp()) / "hold.yaml"
        config.write_text(f"estimator_node:\n  ros__parameters:\n    ee_hold_s: {args.ee_hold}\n")
    rows = ["| tactile rate Hz | ee rate Hz | frames | estimates received | p50 ms | p99 ms | max ms "
            "| ee wait p99 ms | after the ee pose p50 ms | after the ee pose p99 ms |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for i, rate in enumerate(args.rates):
        run = simulate_run(Shape("rect", DEFAULT_SIZES["rect"]), steps=args.steps, seed=args.seed,
                           tactile_rate_hz=rate, ee_rate_hz=args.ee_rate)
        r = measure(run, 150 + (os.getpid() + i) % 80, args.warmup, args.estimator, config)
        rows.append(f"| {rate:g} | {args.ee_rate:g} | {r['frames']} | {r['estimates']} | {r['p50']:.2f} | "
                    f"{r['p99']:.2f} | {r['max']:.2f} | {r['wait_p99']:.2f} | {r['after_p50']:.2f} | "
                    f"{r['after_p99']:.2f} |")
        print(rows[-1], flush=True)
    body = "\n".join(rows) + (
        f"\n\nOne simulated rect run per rate ({args.steps} frames, seed {args.seed}) published in real time "
        "from this process over Cyclone DDS on loopback to "
        + ("`tactile-estimator run`" if args.estimator == "run" else "the rclpy `estimator_node` (rmw_cyclonedds_cpp)")
        + " (iSAM2, its own process); "
        "latency from a tactile frame's publication to the receipt of its `~/object_pose`, the first "
        f"{args.warmup} frames left out. The ee wait is the schedule's: the first end-effector pose at or after "
        "the frame's stamp is published that much later; \"after the ee pose\" is measured from that pose's "
        "publication. Both processes share the machine's cores."
        + (f" The estimator ran with ee_hold_s {args.ee_hold:g}: a frame at most that long after the newest "
           "end-effector pose takes it without waiting for the next, so the ee wait is not paid."
           if args.ee_hold else "")
    )
    append_results("Live latency over DDS (issue 5)", body)


if __name__ == "__main__":
    main()
