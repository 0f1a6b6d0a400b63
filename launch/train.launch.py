"""The trainer node in watch mode:

    ros2 launch tactile_estimator train.launch.py bag_dir:=/data/bags out_dir:=/data/models

It retrains whenever new bags appear in bag_dir and publishes each accepted model on
/trainer_node/model_updated, which estimator.launch.py's node follows. Add
`estimator:=true` to start the estimator next to it with the trainer's latest model.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    share = Path(get_package_share_directory("tactile_estimator"))
    arguments = [
        DeclareLaunchArgument("bag_dir", description="directory the trainer watches for new bags (with ground truth)"),
        DeclareLaunchArgument("out_dir", description="directory for the model directories, one per round"),
        DeclareLaunchArgument("trainer_config", default_value=str(share / "config" / "trainer.yaml"),
                              description="trainer parameter file (config/trainer.yaml format)"),
        DeclareLaunchArgument("estimator_config", default_value=str(share / "config" / "estimator.yaml"),
                              description="estimator parameter file: topics and factors of the graphs trained"),
        DeclareLaunchArgument("init", default_value=str(share / "models"),
                              description="the first round's starting model"),
        DeclareLaunchArgument("val_dir", default_value="", description="validation bags (default: the training bags)"),
        DeclareLaunchArgument("estimator", default_value="false", description="also launch the estimator node"),
    ]
    trainer = Node(
        package="tactile_estimator",
        executable="trainer_node",
        name="trainer_node",
        output="screen",
        parameters=[{
            "config_file": LaunchConfiguration("trainer_config"),
            "estimator_config": LaunchConfiguration("estimator_config"),
            "bag_dir": LaunchConfiguration("bag_dir"),
            "out_dir": LaunchConfiguration("out_dir"),
            "init": LaunchConfiguration("init"),
            "val_dir": LaunchConfiguration("val_dir"),
        }],
    )
    estimator = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(share / "launch" / "estimator.launch.py")),
        launch_arguments={"config": LaunchConfiguration("estimator_config"),
                          "model": LaunchConfiguration("init")}.items(),
        condition=IfCondition(LaunchConfiguration("estimator")),
    )
    return LaunchDescription([*arguments, trainer, estimator])
