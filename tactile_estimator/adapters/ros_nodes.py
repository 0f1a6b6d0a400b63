"""The ROS 2 nodes (rclpy): parameters, subscriptions, publishers, timers and services; nothing more.

Everything a node does beyond that plumbing is in :class:`~tactile_estimator.adapters.live.LiveEstimator`,
which the Cyclone DDS runner (``tactile-estimator run``) shares, so the two behave the same.
Messages cross this layer as CDR bytes: subscriptions are raw and deserialised with the rosbags
type store, publications are serialised by it, exactly as on the DDS transport.

- ``estimator_node``: subscribes to the tactile image (sensor-data QoS), end-effector pose and
  camera detections (reliable), ``/object_info`` (latched) and the trainer's ``model_updated``;
  publishes ``~/object_pose``, ``~/object_path``, ``/tf``, ``/diagnostics`` and
  ``~/object_marker``; serves ``~/reset`` (std_srvs/Trigger: start a new graph). Parameters:
  ``config_file`` (a ``config/estimator.yaml``-format file, read by the same code as the CLI, so
  its empty lists need no ROS parameter type) and, over it, any of its keys as ROS parameters
  (dotted names, e.g. ``backend``, ``model``, ``live.stale_after_s``). An unknown or ill-typed
  one stops the node with a one-line error naming it. ``estimator_node --lifecycle`` is the same
  estimator as a managed node (``rclpy.lifecycle``; ``estimator.launch.py lifecycle:=true``).
- ``trainer_node``: the trainer's watch mode (:class:`~tactile_estimator.learning.watch.ModelWatch`,
  shared with ``tactile-estimator train --watch``). A timer looks at ``bag_dir`` every
  ``watch.poll_s`` seconds; when new bags arrived it trains a round (the executor waits meanwhile:
  the node has nothing else to serve) and publishes each accepted model directory on
  ``~/model_updated`` (std_msgs/String, reliable, transient local). Parameters: ``bag_dir``,
  ``out_dir``, ``init``, ``val_dir``, ``estimator_config``, ``config_file`` (``config/trainer.yaml``)
  and any trainer key over it. Ctrl-C during a round saves its checkpoint; the next start resumes it.

Without a ``model`` (``init`` for the trainer) parameter, as ``ros2 run`` starts them, the nodes load
the model in the package's share directory where colcon installed one (adapters.share), else the
``models/`` beside the source tree. Attributes of our own never take the name of one of rclpy Node's
(``_publishers``, ``_subscriptions``, ...: ``destroy_node`` iterates those). After spin stops, a
further SIGINT is ignored: ``ros2 launch`` forwards one beside the terminal's, and it would otherwise
interrupt the final publication or an exit handler.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.utilities import remove_ros_args
from rosidl_runtime_py.utilities import get_message
from std_srvs.srv import Trigger

from tactile_estimator.adapters import qos
from tactile_estimator.adapters.live import (
    LIFECYCLE_FLAG,
    MODEL_UPDATED,
    Input,
    LiveEstimator,
    Output,
    estimator_setup,
    inputs,
    outputs,
    watch_from_parameters,
)
from tactile_estimator.adapters.share import installed_model_dir
from tactile_estimator.config import ConfigError
from tactile_estimator.io import bags
from tactile_estimator.io.messages import STRING, TYPESTORE, string_msg
from tactile_estimator.learning.datasets import DatasetError
from tactile_estimator.learning.leo import TrainingError, TrainingInterrupted
from tactile_estimator.networks.tactile import ModelError

TICK_S = 0.05


def _qos(profile: qos.QosProfile) -> QoSProfile:
    """qos.py's profile as rclpy's."""
    return QoSProfile(depth=profile.depth, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE if profile.reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if profile.transient_local
                      else DurabilityPolicy.VOLATILE)


class EstimatorNode(Node):
    def __init__(self) -> None:
        super().__init__("estimator_node", allow_undeclared_parameters=True,
                         automatically_declare_parameters_from_overrides=True)
        self.config, self.live = self._setup()
        self._topic_publishers = {o.topic: self._publisher(o) for o in outputs(self.config)}
        self._input_subscriptions = [self._subscribe(spec, msgtype) for spec in inputs(self.config)
                                     for msgtype in spec.msgtypes]
        self.create_service(Trigger, "~/reset", self._reset)
        self.create_timer(TICK_S, lambda: self._publish(self.live.tick()))
        self.get_logger().info(f"estimating; object {self.config.object.shape}, backend {self.config.backend}")

    def _publisher(self, spec: Output) -> Any:
        return self.create_publisher(get_message(spec.msgtype), spec.topic, _qos(qos.output_profile(spec.qos)))

    def _setup(self) -> tuple[Any, LiveEstimator]:
        """The parameters -> (config, live estimator with its model); shared with the managed node."""
        params = {name: p.value for name, p in self.get_parameters_by_prefix("").items()}
        config, model = estimator_setup(params, installed_model_dir())
        clock = self.get_clock()
        live = LiveEstimator(config, model, wall_ns=lambda: clock.now().nanoseconds, node_name=self.get_name())
        return config, live

    def _subscribe(self, spec: Input, msgtype: str) -> Any:
        def callback(data: bytes) -> None:
            try:
                msg = TYPESTORE.deserialize_cdr(data, msgtype)
            except Exception as error:  # malformed CDR: count it and go on
                self.live.drop("undecodable", f"{spec.topic}: {msgtype} does not decode: {error}")
                return
            self._publish(self.live.handle(spec.topic, msgtype, msg))

        profile = _qos(qos.input_profile(spec.qos, self.config))
        return self.create_subscription(get_message(msgtype), spec.topic, callback, profile, raw=True)

    def _publish(self, out: list[tuple[str, str, Any]]) -> None:
        for topic, msgtype, msg in out:
            self._topic_publishers[topic].publish(bytes(TYPESTORE.serialize_cdr(msg, msgtype)))

    def _reset(self, request: Any, response: Any) -> Any:
        response.message = self.live.reset()
        response.success = True
        return response

    def finish(self) -> None:
        try:
            self._publish(self.live.finish())
        except Exception as error:  # the context may already be shut down by Ctrl-C
            self.get_logger().warning(f"final estimates not published: {error}")
        self.live.close()
        print(f"estimator_node: {self.live.summary()}", flush=True)


def _lifecycle_node_class() -> type:
    """The managed estimator node (rclpy.lifecycle), as nav2 systems drive theirs:

    - configure: reads the parameters and loads the model (a bad one fails the transition with its
      one-line error, and the node stays unconfigured);
    - activate: subscribes, serves ``~/reset`` and ticks; the publishers are lifecycle publishers;
    - deactivate: unsubscribes and stops ticking, so nothing is published; the graph is kept, and
      the next activate goes on with it (``~/reset`` or ``~/set_pose`` start another);
    - cleanup: drops the estimator and its publishers; shutdown publishes the final path if active.
    """
    from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn

    class EstimatorLifecycleNode(LifecycleNode):
        # the plain node's plumbing; not _publishers/_subscriptions, which are rclpy Node's own
        _setup = EstimatorNode._setup
        _subscribe = EstimatorNode._subscribe
        _publish = EstimatorNode._publish
        _reset = EstimatorNode._reset

        def __init__(self) -> None:
            super().__init__("estimator_node", allow_undeclared_parameters=True,
                             automatically_declare_parameters_from_overrides=True)
            self.live_ready = False
            self._topic_publishers = {}
            self._input_subscriptions: list[Any] = []
            self._tick_timer: Any = None
            self._reset_server: Any = None

        def on_configure(self, state: State) -> TransitionCallbackReturn:
            try:
                self.config, self.live = self._setup()
            except (ConfigError, ModelError) as error:
                self.get_logger().error(f"configure failed: {error}")
                return TransitionCallbackReturn.FAILURE
            self._topic_publishers = {
                o.topic: self.create_lifecycle_publisher(get_message(o.msgtype), o.topic,
                                                         _qos(qos.output_profile(o.qos)))
                for o in outputs(self.config)}
            self.live_ready = True
            self.get_logger().info(f"configured; object {self.config.object.shape}, backend {self.config.backend}")
            return TransitionCallbackReturn.SUCCESS

        def on_activate(self, state: State) -> TransitionCallbackReturn:
            self._input_subscriptions = [self._subscribe(spec, msgtype) for spec in inputs(self.config)
                                         for msgtype in spec.msgtypes]
            self._reset_server = self.create_service(Trigger, "~/reset", self._reset)
            self._tick_timer = self.create_timer(TICK_S, lambda: self._publish(self.live.tick()))
            self.get_logger().info("estimating")
            return super().on_activate(state)

        def on_deactivate(self, state: State) -> TransitionCallbackReturn:
            self._stop_inputs()
            return super().on_deactivate(state)

        def on_cleanup(self, state: State) -> TransitionCallbackReturn:
            self._stop_inputs()
            for publisher in self._topic_publishers.values():
                self.destroy_publisher(publisher)
            self._topic_publishers = {}
            if self.live_ready:
                self.live.close()
            self.live_ready = False
            return TransitionCallbackReturn.SUCCESS

        def on_shutdown(self, state: State) -> TransitionCallbackReturn:
            if self.live_ready and self._input_subscriptions:
                self._publish(self.live.finish())
            self._stop_inputs()
            return TransitionCallbackReturn.SUCCESS

        def _stop_inputs(self) -> None:
            for subscription in self._input_subscriptions:
                self.destroy_subscription(subscription)
            self._input_subscriptions = []
            if self._tick_timer is not None:
                self.destroy_timer(self._tick_timer)
                self._tick_timer = None
            if self._reset_server is not None:
                self.destroy_service(self._reset_server)
                self._reset_server = None

        def finish(self) -> None:
            if self.live_ready:
                self.live.close()
                print(f"estimator_node: {self.live.summary()}", flush=True)

    return EstimatorLifecycleNode


def _ignore_sigint() -> None:
    """From here on the node is stopping: a further Ctrl-C is ignored (main thread only, as Python requires)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _close(node: Any, last_words: Callable[[Any], None] | None = None) -> None:
    """Shut a node down after spin, however spin ended; a second SIGINT cannot interrupt it."""
    try:
        _ignore_sigint()
        if node is not None:
            if last_words is not None:
                last_words(node)
            node.destroy_node()
        rclpy.try_shutdown()
    except (KeyboardInterrupt, ExternalShutdownException):  # one that landed before SIGINT was ignored
        pass


def estimator_node(args: list[str] | None = None) -> int:
    """Console script ``estimator_node`` (``ros2 run tactile_estimator estimator_node``); with
    ``--lifecycle`` (before ``--ros-args``) the managed node, which waits for configure and activate."""
    argv = list(sys.argv if args is None else args)
    managed = LIFECYCLE_FLAG in remove_ros_args(argv)
    rclpy.init(args=[a for a in argv if a != LIFECYCLE_FLAG])
    node = None
    code = 0
    try:
        node = _lifecycle_node_class()() if managed else EstimatorNode()
        rclpy.spin(node)
    except (ConfigError, ModelError) as error:
        print(f"estimator_node: error: {error}", file=sys.stderr)
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        _close(node, lambda n: n.finish())
    return code


class TrainerNode(Node):
    def __init__(self) -> None:
        super().__init__("trainer_node", allow_undeclared_parameters=True,
                         automatically_declare_parameters_from_overrides=True)
        params = {name: p.value for name, p in self.get_parameters_by_prefix("").items()}
        if not params.get("init") and (installed := installed_model_dir()) is not None:
            params["init"] = str(installed)
        self.watch = watch_from_parameters(params, progress=self.get_logger().info)
        self.published = 0
        self._model_publisher = self.create_publisher(get_message(STRING), MODEL_UPDATED, _qos(qos.LATCHED))
        if self.watch.latest_model is not None:
            self._announce(self.watch.latest_model)
        self.create_timer(self.watch.config.watch.poll_s, self._poll)
        self.get_logger().info(f"watching {', '.join(map(str, self.watch.watch_dirs))}; {self.watch.describe()}")

    def _poll(self) -> None:
        model = self.watch.poll()
        if model is not None:
            self._announce(model)

    def summarise(self) -> None:
        print(f"trainer_node: {self.published} models published; {self.watch.describe()}", flush=True)

    def _announce(self, model: Any) -> None:
        path = str(model.resolve())
        self._model_publisher.publish(bytes(TYPESTORE.serialize_cdr(string_msg(path), STRING)))
        self.published += 1


def trainer_node(args: list[str] | None = None) -> int:
    """Console script ``trainer_node`` (``ros2 run tactile_estimator trainer_node``)."""
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = TrainerNode()
        rclpy.spin(node)
    except (ConfigError, ModelError, DatasetError, bags.BagError, TrainingError) as error:
        print(f"trainer_node: error: {error}", file=sys.stderr)
        code = 2
    except TrainingInterrupted as stopped:
        print(f"trainer_node: interrupted: {stopped}", file=sys.stderr)
        code = 130
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        _close(node, TrainerNode.summarise)
    return code


if __name__ == "__main__":
    sys.exit(estimator_node())
