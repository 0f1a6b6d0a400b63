"""The ROS 2 package surface that can be checked without ROS: package.xml, setup.py, entry points."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

from catkin_pkg.package import parse_package

ROOT = Path(__file__).resolve().parents[1]


def test_package_xml_is_valid_format_3() -> None:
    package = parse_package(ROOT / "package.xml")
    package.validate()
    assert package.package_format == 3
    assert package.name == "tactile_estimator"
    assert package.get_build_type() == "ament_python"
    run_deps = {d.name for d in package.exec_depends}
    assert {"rclpy", "sensor_msgs", "geometry_msgs", "nav_msgs", "std_msgs"} <= run_deps


def test_setup_installs_share_files_and_the_cli() -> None:
    tree = ast.parse((ROOT / "setup.py").read_text())
    text = ast.unparse(tree)
    for folder in ("launch", "config", "models"):
        assert f"share/{{PACKAGE}}/{folder}" in text
    assert "tactile-estimator = tactile_estimator.cli:main" in text
    assert (ROOT / "resource" / "tactile_estimator").exists()
    assert (ROOT / "models" / "model.yaml").exists() and (ROOT / "models" / "weights.pt").exists()


def test_core_never_imports_ros() -> None:
    core = [p for p in (ROOT / "tactile_estimator").rglob("*.py") if "adapters" not in p.parts or p.name == "replay.py"]
    for path in core:
        source = path.read_text()
        for name in ("rclpy", "tf_transformations", "cyclonedds"):
            assert f"import {name}" not in source and f"from {name}" not in source, f"{path} imports {name}"


def _console_scripts() -> set[str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "console_scripts" and isinstance(value, ast.List):
                    names |= {item.value.split("=")[0].strip() for item in value.elts if isinstance(item, ast.Constant)}
    return names


def _launch_files() -> list[Path]:
    return sorted((ROOT / "launch").glob("*.launch.py"))


def test_launch_files_parse_and_name_only_declared_executables() -> None:
    files = {p.name for p in _launch_files()}
    assert {"estimator.launch.py", "replay.launch.py", "train.launch.py"} <= files
    scripts = _console_scripts()
    assert {"estimator_node", "trainer_node"} <= scripts
    for path in _launch_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body), path
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            for kw in call.keywords:
                if kw.arg == "package":
                    assert isinstance(kw.value, ast.Constant) and kw.value.value == "tactile_estimator", path
                if kw.arg == "executable":
                    assert isinstance(kw.value, ast.Constant), f"{path}: executable is not a literal"
                    assert kw.value.value in scripts, f"{path} runs {kw.value.value}, which setup.py does not declare"
    estimator = (ROOT / "launch" / "estimator.launch.py").read_text()
    for argument in ("config", "model", "backend", "use_sim_time"):
        assert f'DeclareLaunchArgument("{argument}"' in estimator
    replay = (ROOT / "launch" / "replay.launch.py").read_text()
    assert '"ros2", "bag", "play"' in replay and '"--clock"' in replay and '"use_sim_time": "true"' in replay
    train = (ROOT / "launch" / "train.launch.py").read_text()
    for argument in ("bag_dir", "out_dir", "trainer_config", "estimator_config", "init", "val_dir"):
        assert f'DeclareLaunchArgument("{argument}"' in train
    # the parameters the launch file gives the trainer node are the ones it knows
    from tactile_estimator.adapters.live import TRAINER_NODE_PARAMETERS

    block = train.split("parameters=[{", 1)[1].split("}]", 1)[0]
    given = set(re.findall(r'"(\w+)": LaunchConfiguration', block))
    assert given and given <= set(TRAINER_NODE_PARAMETERS), given - set(TRAINER_NODE_PARAMETERS)


def test_package_xml_lists_the_run_dependencies_of_nodes_and_launch_files() -> None:
    run_deps = {d.name for d in parse_package(ROOT / "package.xml").exec_depends}
    assert {"rclpy", "tf2_msgs", "diagnostic_msgs", "std_srvs", "visualization_msgs", "launch",
            "launch_ros", "ros2bag", "rosidl_runtime_py", "ament_index_python"} <= run_deps
    sources = "\n".join(p.read_text() for p in [ROOT / "tactile_estimator" / "adapters" / "ros_nodes.py",
                                                 *_launch_files()])
    for module in {m.split(".")[0] for m in re.findall(r"^(?:from|import) (\w+)", sources, re.MULTILINE)}:
        if module in ("rclpy", "launch", "launch_ros", "std_srvs", "rosidl_runtime_py", "ament_index_python"):
            assert module in run_deps, f"{module} is imported but not in package.xml"


def test_pip_install_puts_launch_config_and_models_under_share(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy: building in the checkout would leave build/ and egg-info behind
    source.mkdir()
    for name in ("setup.py", "setup.cfg", "package.xml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("tactile_estimator", "launch", "config", "models", "resource"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    prefix = tmp_path / "prefix"
    # --ignore-installed: otherwise pip uninstalls the checkout's own editable install from .venv first
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                             "--ignore-installed", "--no-compile", "--prefix", str(prefix), str(source)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    share = prefix / "share" / "tactile_estimator"
    assert {p.name for p in (share / "launch").iterdir()} == {p.name for p in _launch_files()}
    assert (share / "config" / "estimator.yaml").is_file()
    assert (share / "models" / "model.yaml").is_file() and (share / "models" / "weights.pt").is_file()
    assert (share / "package.xml").is_file()
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "tactile_estimator").is_file()
    assert (prefix / "bin" / "estimator_node").is_file() and (prefix / "bin" / "tactile-estimator").is_file()
    # colcon installs with setup.py, where setup.cfg moves the scripts to lib/<package>, where ros2 run looks
    assert "install_scripts=$base/lib/tactile_estimator" in (ROOT / "setup.cfg").read_text()


def test_only_the_transports_import_a_middleware() -> None:
    """dds.py (Cyclone) and ros_nodes.py (rclpy) are the only modules that import a middleware."""
    allowed = {"cyclonedds": {"dds.py"}, "rclpy": {"ros_nodes.py"}}
    for path in (ROOT / "tactile_estimator").rglob("*.py"):
        source = path.read_text()
        for name, files in allowed.items():
            if re.search(rf"^\s*(from|import) {name}\b", source, re.MULTILINE):
                assert path.name in files and path.parent.name == "adapters", f"{path} imports {name}"


def test_the_node_scripts_without_rclpy_say_so_in_one_line() -> None:
    scripts = (ROOT / "setup.py").read_text()
    for name in ("estimator_node", "trainer_node"):
        assert f"{name} = tactile_estimator.cli:{name}" in scripts
        if shutil.which("ros2") is not None:
            continue  # rclpy is there: the node starts
        done = subprocess.run([sys.executable, "-c", f"import sys; from tactile_estimator import cli; "
                               f"sys.exit(cli.{name}())"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.count("\n") == 1 and "rclpy is needed" in done.stderr and "tactile-estimator " in done.stderr
