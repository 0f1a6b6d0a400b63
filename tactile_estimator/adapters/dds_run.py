"""``tactile-estimator run`` and ``play`` over Cyclone DDS: the live estimator and a bag player.

``run`` is the ROS 2 node without rclpy: the same subscriptions, publications and QoS
(:mod:`tactile_estimator.adapters.live` decides what, :mod:`tactile_estimator.adapters.dds` how).
``play`` publishes a bag's messages as ``ros2 bag play`` does: each at its log time, scaled by
the rate, as the CDR bytes the bag holds. Both stop cleanly on SIGINT or SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from tactile_estimator.adapters import dds
from tactile_estimator.adapters.qos import LATCHED, RELIABLE, TF_STATIC, input_profile, output_profile
from tactile_estimator.config import EstimatorConfig
from tactile_estimator.io import bags, messages

if TYPE_CHECKING:  # torch comes with these: run and the trainer import them, play does not
    from tactile_estimator.adapters.live import LiveEstimator
    from tactile_estimator.learning.watch import ModelWatch
    from tactile_estimator.networks.tactile import TactileModel

log = logging.getLogger(__name__)

POLL_S = 0.1  # longest a loop sleeps: how quickly a signal is noticed
STATIC_TF_TOPICS = ("/tf_static",)  # latched by every tf2 static broadcaster: play publishes them so too


class StopOnSignals:
    """SIGINT and SIGTERM set ``event`` (and wake a DDS wait) instead of raising; restored on exit."""

    def __init__(self, bus: dds.DdsBus | None = None) -> None:
        self.event = threading.Event()
        self.signal: int | None = None
        self._bus = bus
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signal = signum
        self.event.set()
        if self._bus is not None:
            self._bus.wake()

    def __enter__(self) -> StopOnSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


@dataclass
class RunResult:
    live: LiveEstimator
    signal: int | None
    seconds: float


def run_estimator(
    config: EstimatorConfig,
    model: TactileModel,
    *,
    domain_id: int = 0,
    dds_config: str | None = None,
    duration_s: float | None = None,
    node_name: str = "estimator_node",
    ready: Callable[[str], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> RunResult:
    """Run the live estimator on a DDS domain until a signal, or for ``duration_s`` seconds.

    ``notify`` gets one line for each model reloaded from ``~/model_updated`` (default: the log).
    """
    from tactile_estimator.adapters.live import LiveEstimator, inputs, node_topic, outputs

    live = LiveEstimator(config, model, node_name=node_name, notify=notify)
    started = time.monotonic()
    deadline = started + duration_s if duration_s else float("inf")
    with dds.DdsBus(domain_id, dds_config) as bus, StopOnSignals(bus) as stop:
        publishers = {o.topic: bus.publisher(node_topic(o.topic, node_name), o.msgtype, output_profile(o.qos))
                      for o in outputs(config)}
        subscribed = []
        for spec in inputs(config):
            topic = node_topic(spec.topic, node_name)  # ~/set_pose, ~/reset: the node's private topics
            for msgtype in spec.msgtypes:
                bus.subscribe(topic, msgtype, input_profile(spec.qos, config))
            subscribed.append(topic)

        def publish(out: list[tuple[str, str, Any]]) -> None:
            for topic, _, msg in out:
                publishers[topic].publish(msg)

        if ready is not None:
            ready(f"listening on DDS domain {domain_id}: {', '.join(subscribed)}; publishing "
                  f"{', '.join(node_topic(o.topic, node_name) for o in outputs(config))}")
        while not stop.event.is_set():
            now = time.monotonic()
            if now >= deadline:
                break
            bus.wait(min(POLL_S, deadline - now))
            for message in bus.take():
                if message.error is not None:
                    live.drop("undecodable", f"{message.topic}: {message.msgtype} does not decode: {message.error}")
                    continue
                publish(live.handle(message.topic, message.msgtype, message.msg))
            for key, topic, msgtype in bus.publications():
                live.note_publisher(key, topic, msgtype)
            publish(live.tick())
        publish(live.finish())
        live.close()
        for publisher in publishers.values():
            publisher.wait_for_acks(0.5)
    return RunResult(live, stop.signal, time.monotonic() - started)


@dataclass
class PlayResult:
    messages: int
    topics: int
    seconds: float
    signal: int | None


def play_bag(
    bag: str | Path,
    *,
    rate: float = 1.0,
    domain_id: int = 0,
    dds_config: str | None = None,
    latched: tuple[str, ...] = ("/object_info",),
    wait_for: tuple[str, ...] = (),
    wait_timeout_s: float = 10.0,
    delay_s: float = 0.0,
    ready: Callable[[str], None] | None = None,
) -> PlayResult:
    """Publish a bag's messages live with their original spacing divided by ``rate``.

    Topics in ``latched`` are published reliable and transient local (late subscribers get the
    last message), ``/tf_static`` as tf2's static broadcasters publish it (transient local, keep
    the last 100: tf2's listener and ours ask for transient local), the rest reliable keep-last-10,
    which best-effort and reliable subscribers both accept. With ``wait_for``, playing starts once
    each of those topics has a subscriber.
    """
    if not rate > 0:
        raise ValueError(f"--rate {rate} must be positive")
    path = bags.resolve_bag(bag)
    topics = bags.bag_topics(path)
    mixed = [topic for topic, msgtype in topics.items() if " | " in msgtype]
    if mixed:
        raise bags.BagError(f"bag {path}: topics {', '.join(mixed)} carry several types; play one type per topic")
    missing = [topic for topic in wait_for if topic not in topics]
    if missing:
        raise bags.BagError(f"bag {path} has no {', '.join(missing)} to wait for; it has {', '.join(topics)}")
    started = time.monotonic()
    count = 0
    with dds.DdsBus(domain_id, dds_config) as bus, StopOnSignals(bus) as stop:
        publishers = {
            topic: bus.publisher(topic, msgtype, LATCHED if topic in latched else
                                 TF_STATIC if topic in STATIC_TF_TOPICS else RELIABLE)
            for topic, msgtype in topics.items() if msgtype in bus.typestore.types
        }
        _wait_for_subscribers([publishers[t] for t in wait_for], wait_timeout_s, stop.event)
        if ready is not None:
            ready(f"playing {path} at rate {rate} on DDS domain {domain_id}: {', '.join(publishers)}")
        if delay_s > 0:
            stop.event.wait(delay_s)
        first: int | None = None
        wall0 = time.monotonic()
        for topic, _, log_time, data in bags.read_raw(path, list(publishers)):
            if stop.event.is_set():
                break
            first = log_time if first is None else first
            due = wall0 + (log_time - first) * 1e-9 / rate
            while not stop.event.is_set() and (left := due - time.monotonic()) > 0:
                stop.event.wait(min(left, POLL_S))
            if stop.event.is_set():
                break
            publishers[topic].publish_cdr(data)
            count += 1
        for publisher in publishers.values():
            publisher.wait_for_acks(1.0)
    return PlayResult(count, len(publishers), time.monotonic() - started, stop.signal)


def _wait_for_subscribers(publishers: list[dds.Publisher], timeout_s: float, stop: threading.Event) -> None:
    deadline = time.monotonic() + timeout_s
    while not stop.is_set():
        waiting = [p.topic for p in publishers if p.matched == 0]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise dds.DdsError(f"no subscriber on {', '.join(waiting)} after {timeout_s:g} s")
        stop.wait(0.02)


@dataclass
class TrainerRunResult:
    published: list[str]
    signal: int | None
    seconds: float


def run_trainer(
    watch: ModelWatch,
    *,
    domain_id: int = 0,
    dds_config: str | None = None,
    duration_s: float | None = None,
    node_name: str = "trainer_node",
    ready: Callable[[str], None] | None = None,
) -> TrainerRunResult:
    """The trainer node without rclpy: poll the bag directories, train, publish each accepted model.

    ``/<node_name>/model_updated`` (std_msgs/String, the model directory's absolute path) is
    reliable and transient local, so an estimator that subscribes late still gets the last model.
    An interrupted round raises the trainer's ``TrainingInterrupted`` with its checkpoint saved;
    the next start resumes it.
    """
    from tactile_estimator.adapters.live import MODEL_UPDATED, node_topic

    started = time.monotonic()
    deadline = started + duration_s if duration_s else float("inf")
    published: list[str] = []
    topic = node_topic(MODEL_UPDATED, node_name)
    with dds.DdsBus(domain_id, dds_config) as bus, StopOnSignals(bus) as stop:
        publisher = bus.publisher(topic, messages.STRING, LATCHED)

        def publish(model: Path) -> None:
            path = str(model.resolve())
            publisher.publish(messages.string_msg(path))
            published.append(path)
            log.info("published %s on %s", path, topic)

        if watch.latest_model is not None:
            publish(watch.latest_model)
        if ready is not None:
            ready(f"watching {', '.join(str(d) for d in watch.watch_dirs)} every {watch.config.watch.poll_s:g} s; "
                  f"new models on {topic} (DDS domain {domain_id}); {watch.describe()}")
        while not stop.event.is_set() and time.monotonic() < deadline:
            model = watch.poll()
            if model is not None:
                publish(model)
            stop.event.wait(max(0.0, min(watch.config.watch.poll_s, deadline - time.monotonic())))
        publisher.wait_for_acks(1.0)
    return TrainerRunResult(published, stop.signal, time.monotonic() - started)
