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
(``_publishers``, ``_subscriptions``, ...: ``destroy_node`` iterates those).

Ctrl-C (SIGINT, and SIGTERM) is the nodes' own: rclpy is started without its signal handlers, whose
first act is to shut the context down, so that nothing could be published after it. Here a signal
sets a flag that the spin loop reads every ``SPIN_S``; then the estimator publishes its final path,
each node prints its summary, and the node is destroyed and rclpy shut down, each step on its own
so that one failing cannot skip the next. Further signals (``ros2 launch`` forwards one beside the
terminal's) only set the flag again. During a training round the trainer's own stop request takes
them (it saves a checkpoint), and gives them back after.

The configuration is read when the node starts (the managed node: at configure). Its keys are
declared with the values in force, so ``ros2 param get`` shows them; ``ros2 param set`` of one is
refused with the reason (the managed node takes them while unconfigured, for its next configure).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rclpy.utilities import remove_ros_args
from rosidl_runtime_py.utilities import get_message
from std_srvs.srv import Trigger

from tactile_estimator.adapters import qos
from tactile_estimator.adapters.live import (
    LIFECYCLE_FLAG,
    MODEL_UPDATED,
    ROS_ONLY_PARAMETERS,
    Input,
    LiveEstimator,
    Output,
    estimator_setup,
    inputs,
    outputs,
    parameters_in_force,
    runtime_set_refusal,
    watch_from_parameters,
)
from tactile_estimator.adapters.share import installed_model_dir
from tactile_estimator.config import ConfigError
from tactile_estimator.io import bags
from tactile_estimator.io.messages import STRING, TYPESTORE, string_msg
from tactile_estimator.learning.checkpoint import TrainingError, TrainingInterrupted
from tactile_estimator.learning.datasets import DatasetError
from tactile_estimator.networks.tactile import ModelError

TICK_S = 0.05
SPIN_S = 0.1  # the spin loop looks at the stop flag this often: Ctrl-C is answered within it


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
        self._in_force: set[str] = set()  # keys declared from the config, not set by the user
        self.config, self.live = self._setup()
        self._declare_in_force()
        self.add_on_set_parameters_callback(self._on_set_parameters)
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
        params = {name: p.value for name, p in self.get_parameters_by_prefix("").items()
                  if name not in self._in_force}
        config, model = estimator_setup(params, installed_model_dir())
        clock = self.get_clock()
        live = LiveEstimator(config, model, wall_ns=lambda: clock.now().nanoseconds, node_name=self.get_name())
        return config, live

    def _declare_in_force(self) -> None:
        """Declare each config key not given as a parameter with the value in force (``ros2 param get``)."""
        for name, value in parameters_in_force(self.config).items():
            if not self.has_parameter(name):
                self.declare_parameter(name, value)
                self._in_force.add(name)

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Refuse a runtime change of a key the estimator read at start: it would change nothing."""
        ours = [p.name for p in parameters if not p.name.startswith(ROS_ONLY_PARAMETERS)]
        if ours and not self._accepts_parameters():
            return SetParametersResult(successful=False, reason=runtime_set_refusal(
                ours[0], self.get_name(), self._parameters_read_at))
        self._in_force.difference_update(ours)  # the user's now: read at the next configure
        return SetParametersResult(successful=True)

    _parameters_read_at = "at start"

    def _accepts_parameters(self) -> bool:
        return False

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
        _declare_in_force = EstimatorNode._declare_in_force
        _on_set_parameters = EstimatorNode._on_set_parameters
        _parameters_read_at = "at configure"

        def __init__(self) -> None:
            super().__init__("estimator_node", allow_undeclared_parameters=True,
                             automatically_declare_parameters_from_overrides=True)
            self._in_force: set[str] = set()
            self.add_on_set_parameters_callback(self._on_set_parameters)
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
            self._declare_in_force()
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

        def _accepts_parameters(self) -> bool:
            return not self.live_ready  # unconfigured: read at the next configure

        def finish(self) -> None:
            if self.live_ready:
                if self._input_subscriptions:  # active: the final path, as on_shutdown publishes it
                    try:
                        self._publish(self.live.finish())
                    except Exception as error:
                        self.get_logger().warning(f"final estimates not published: {error}")
                self.live.close()
                print(f"estimator_node: {self.live.summary()}", flush=True)

    return EstimatorLifecycleNode


class _Stop:
    """SIGINT/SIGTERM set a flag that :func:`_spin` reads (installed in the main thread only, as Python requires)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        self.signal = signum


def _init(args: list[str] | None) -> _Stop:
    """rclpy without its signal handlers (they shut the context down before the final publication), and ours."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    return _Stop()


def _spin(node: Any, stop: _Stop) -> None:
    """rclpy.spin until a signal (or a shutdown) stops it."""
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while stop.signal is None and executor.context.ok():
            executor.spin_once(timeout_sec=SPIN_S)
    finally:
        executor.remove_node(node)


def _close(node: Any, last_words: Callable[[Any], None] | None = None) -> None:
    """Shut a node down after spin, however spin ended: its last words, destroy_node, rclpy's shutdown.

    Each step runs whatever the one before did: an interrupt or an error in one (reported on one
    line) does not skip the next.
    """
    steps: list[tuple[str, Callable[[], Any]]] = []
    if node is not None:
        if last_words is not None:
            steps.append(("the summary", lambda: last_words(node)))
        steps.append(("destroy_node", node.destroy_node))
    steps.append(("shutdown", rclpy.try_shutdown))
    for what, step in steps:
        try:
            step()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except Exception as error:  # noqa: BLE001 - on the way out: say what failed, then go on
            print(f"warning: {what} failed while stopping: {error}", file=sys.stderr, flush=True)


def estimator_node(args: list[str] | None = None) -> int:
    """Console script ``estimator_node`` (``ros2 run tactile_estimator estimator_node``); with
    ``--lifecycle`` (before ``--ros-args``) the managed node, which waits for configure and activate."""
    argv = list(sys.argv if args is None else args)
    managed = LIFECYCLE_FLAG in remove_ros_args(argv)
    stop = _init([a for a in argv if a != LIFECYCLE_FLAG])
    node = None
    code = 0
    try:
        node = _lifecycle_node_class()() if managed else EstimatorNode()
        _spin(node, stop)
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
    stop = _init(args)
    node = None
    code = 0
    try:
        node = TrainerNode()
        _spin(node, stop)
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
