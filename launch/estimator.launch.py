"""The estimator node with its parameter file: ros2 launch tactile_estimator estimator.launch.py.

``lifecycle:=true`` starts it as a managed node (configure loads the model and parameters, activate
subscribes), for a lifecycle manager such as nav2's to drive; ``autostart:=true`` configures and
activates it from the launch file instead.
"""

from pathlib import Path

import launch.events
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue
from lifecycle_msgs.msg import Transition


def generate_launch_description() -> LaunchDescription:
    share = Path(get_package_share_directory("tactile_estimator"))
    arguments = [
        DeclareLaunchArgument("config", default_value=str(share / "config" / "estimator.yaml"),
                              description="estimator parameter file (config/estimator.yaml format)"),
        DeclareLaunchArgument("model", default_value=str(share / "models"),
                              description="tactile model directory (weights.pt + model.yaml)"),
        DeclareLaunchArgument("backend", default_value="isam2", description="solver: isam2 or gn"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="follow /clock (bag replay)"),
        DeclareLaunchArgument("lifecycle", default_value="false",
                              description="a managed (lifecycle) node: configure loads, activate subscribes"),
        DeclareLaunchArgument("autostart", default_value="false",
                              description="with lifecycle: configure and activate it at launch"),
    ]
    common = dict(
        package="tactile_estimator",
        executable="estimator_node",
        name="estimator_node",
        output="screen",
        parameters=[{
            # The file is read by the package itself (empty lists are not valid ROS parameter values).
            "config_file": LaunchConfiguration("config"),
            "model": LaunchConfiguration("model"),
            "backend": LaunchConfiguration("backend"),
            "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
        }],
    )
    lifecycle = LaunchConfiguration("lifecycle")
    estimator = Node(**common, condition=UnlessCondition(lifecycle))
    managed = LifecycleNode(**common, namespace="", arguments=["--lifecycle"], condition=IfCondition(lifecycle))
    autostart = IfCondition(PythonExpression(["'", lifecycle, "'.lower() == 'true' and '",
                                              LaunchConfiguration("autostart"), "'.lower() == 'true'"]))
    is_managed = launch.events.matches_action(managed)
    configure = EmitEvent(event=ChangeState(lifecycle_node_matcher=is_managed,
                                            transition_id=Transition.TRANSITION_CONFIGURE), condition=autostart)
    activate = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=managed, start_state="configuring", goal_state="inactive",
        entities=[EmitEvent(event=ChangeState(lifecycle_node_matcher=is_managed,
                                              transition_id=Transition.TRANSITION_ACTIVATE))]),
        condition=autostart)
    return LaunchDescription([*arguments, estimator, managed, activate, configure])
