"""What the ROS 2 package and its nodes rely on, checked without ROS: rclpy's names, signal handlers,
the installed model, package.xml's dependencies and the pytest setup on a machine with ROS sourced."""

from __future__ import annotations

import ast
import ctypes
import inspect
import os
import re
import runpy
import signal
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import setuptools

from tactile_estimator.adapters.share import installed_model_dir, share_directory
from tactile_estimator.learning.trainer import _StopRequest

ROOT = Path(__file__).resolve().parents[1]
NODES = ROOT / "tactile_estimator" / "adapters" / "ros_nodes.py"

# ------------------------------------------------------------------ the nodes and rclpy's Node

# rclpy.node.Node's attributes and methods (ros2/rclpy, rclpy/rclpy/node.py, branch jazzy, rclpy 7.1.3;
# rolling's adds none): the `self._x` its __init__ assigns, its `_x` methods, and its public names.
# A subclass that assigns one replaces rclpy's own: destroy_node() iterated our dict of publishers
# as rclpy's list and raised KeyError: 0.
RCLPY_NODE_PRIVATE_ATTRIBUTES = frozenset({
    "_allow_undeclared_parameters", "_clients", "_clock", "_context", "_default_callback_group",
    "_descriptors", "_guards", "_logger", "_logger_service", "_on_set_parameters_callbacks",
    "_parameter_event_publisher", "_parameter_overrides", "_parameter_service", "_parameters",
    "_post_set_parameters_callbacks", "_pre_set_parameters_callbacks", "_publishers", "_rate_group",
    "_services", "_subscriptions", "_time_source", "_timers", "_type_description_service",
})
RCLPY_NODE_PRIVATE_METHODS = frozenset({
    "_apply_descriptor", "_apply_descriptor_and_set", "_apply_descriptors", "_apply_floating_point_range",
    "_apply_integer_range", "_call_post_set_parameters_callback", "_call_pre_set_parameters_callback",
    "_check_undeclared_parameters", "_count_clients_or_servers", "_count_publishers_or_subscribers",
    "_declare_parameter_common", "_get_info_by_topic", "_set_parameters_atomically",
    "_set_parameters_atomically_common", "_validate_qos_or_depth_parameter", "_validate_topic_or_service_name",
    "_wake_executor",
})
RCLPY_NODE_PUBLIC = frozenset({
    "clients", "context", "default_callback_group", "executor", "guards", "handle", "publishers", "services",
    "subscriptions", "timers", "waitables",
})


def _node_classes() -> list[ast.ClassDef]:
    tree = ast.parse(NODES.read_text())
    return [c for c in tree.body if isinstance(c, ast.ClassDef)
            and any(isinstance(b, ast.Name) and b.id == "Node" for b in c.bases)]


def _assigned_self_attributes(cls: ast.ClassDef) -> set[str]:
    return {n.attr for n in ast.walk(cls) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
            and isinstance(n.value, ast.Name) and n.value.id == "self"}


def test_the_nodes_shadow_none_of_rclpy_nodes_attributes() -> None:
    classes = _node_classes()
    assert {c.name for c in classes} == {"EstimatorNode", "TrainerNode"}
    assigned = set().union(*map(_assigned_self_attributes, classes))
    assert {"_topic_publishers", "_input_subscriptions", "_model_publisher", "live"} <= assigned  # the walk sees them
    assert not assigned & (RCLPY_NODE_PRIVATE_ATTRIBUTES | RCLPY_NODE_PRIVATE_METHODS | RCLPY_NODE_PUBLIC)
    methods = {f.name for c in classes for f in c.body if isinstance(f, ast.FunctionDef)}
    assert {"_publish", "_poll"} <= methods
    assert not methods & (RCLPY_NODE_PRIVATE_METHODS | RCLPY_NODE_PRIVATE_ATTRIBUTES)


def test_spin_ends_in_one_teardown_whose_steps_each_run() -> None:
    """Both entry points start rclpy without its signal handlers (_init), spin until our flag (_spin) and
    leave through _close, which runs each of its steps under its own guard: an interrupt in the summary
    cannot skip destroy_node or the shutdown."""
    tree = ast.parse(NODES.read_text())
    functions = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    for name in ("estimator_node", "trainer_node"):
        calls = {ast.unparse(n.func) for n in ast.walk(functions[name]) if isinstance(n, ast.Call)}
        assert {"_init", "_spin"} <= calls and "rclpy.init" not in calls and "rclpy.spin" not in calls, name
        (handler,) = [n for n in ast.walk(functions[name]) if isinstance(n, ast.Try)]
        caught = {ast.unparse(h.type) for h in handler.handlers}
        assert "(KeyboardInterrupt, ExternalShutdownException)" in caught, name
        assert [ast.unparse(s) for s in handler.finalbody][0].startswith("_close(node"), name
    (init,) = [n for n in ast.walk(functions["_init"])
               if isinstance(n, ast.Call) and ast.unparse(n.func) == "rclpy.init"]
    assert {k.arg: ast.unparse(k.value) for k in init.keywords}["signal_handler_options"] == "SignalHandlerOptions.NO"
    (loop,) = [n for n in functions["_close"].body if isinstance(n, ast.For)]
    (guarded,) = [n for n in loop.body if isinstance(n, ast.Try)]
    assert ast.unparse(guarded.body[0]) == "step()"
    assert "(KeyboardInterrupt, ExternalShutdownException)" in {ast.unparse(h.type) for h in guarded.handlers}


# ------------------------------------------------------------------ the trainer's stop request

def _raw_handler(signum: int) -> int:
    """The process's handler address for ``signum`` (the first field of struct sigaction)."""
    action = _StopRequest._sigaction(signum)
    assert action is not None
    return ctypes.c_void_p.from_buffer_copy(action).value or 0


@pytest.fixture()
def sigint_restored():
    """Python's own SIGINT handler for the test, whatever the runner inherited (a job started with
    ``&`` from a script has SIGINT ignored), and the runner's back after it."""
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.mark.usefixtures("sigint_restored")
def test_the_stop_request_gives_back_the_python_handler_it_found() -> None:
    def sentinel(_signum: int, _frame: object) -> None:
        pass

    signal.signal(signal.SIGINT, sentinel)
    with _StopRequest():
        assert signal.getsignal(signal.SIGINT) is not sentinel
    assert signal.getsignal(signal.SIGINT) is sentinel


@pytest.mark.usefixtures("sigint_restored")
def test_a_sigint_in_the_guarded_region_requests_the_stop() -> None:
    with _StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        requested = stop.requested  # Python runs the handler before the next bytecode
    assert requested


@pytest.mark.skipif(sys.platform != "linux", reason="the test writes a sigaction by hand")
@pytest.mark.usefixtures("sigint_restored")
def test_the_stop_request_gives_back_a_handler_installed_in_c() -> None:
    """As rclpy's is: Python's signal module does not see it, so signal.signal alone would replace it."""
    found = _StopRequest._sigaction(signal.SIGINT)
    ignore = bytearray(found)
    ignore[:ctypes.sizeof(ctypes.c_void_p)] = bytes(ctypes.c_void_p(1))  # sa_handler = SIG_IGN, in C only
    _StopRequest._sigaction(signal.SIGINT, bytes(ignore))
    assert _raw_handler(signal.SIGINT) == 1 and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
    with _StopRequest():
        assert _raw_handler(signal.SIGINT) not in (0, 1)  # Python's own C handler while guarded
    assert _raw_handler(signal.SIGINT) == 1


@pytest.mark.usefixtures("sigint_restored")
def test_the_stop_request_installs_nothing_outside_the_main_thread() -> None:
    seen: list[object] = []

    def guarded() -> None:
        with _StopRequest() as stop:
            seen.append(signal.getsignal(signal.SIGINT))
            seen.append(stop.requested)

    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=guarded)
    thread.start()
    thread.join()
    assert seen == [before, False]
    assert signal.getsignal(signal.SIGINT) is before


# ------------------------------------------------------------------ the model colcon installs

def _prefix(root: Path, *, indexed: bool = True, model: bool = True) -> Path:
    if indexed:
        marker = root / "share" / "ament_index" / "resource_index" / "packages" / "tactile_estimator"
        marker.parent.mkdir(parents=True)
        marker.write_text("")
    if model:
        models = root / "share" / "tactile_estimator" / "models"
        models.mkdir(parents=True)
        (models / "model.yaml").write_text("{}\n")
    return root


def test_the_installed_model_is_found_in_the_first_prefix_that_indexes_the_package(tmp_path: Path) -> None:
    unindexed = _prefix(tmp_path / "other", indexed=False)
    installed = _prefix(tmp_path / "install")
    later = _prefix(tmp_path / "later")
    path = os.pathsep.join(map(str, (unindexed, installed, later)))
    assert share_directory("tactile_estimator", path) == installed / "share" / "tactile_estimator"
    assert installed_model_dir(path) == installed / "share" / "tactile_estimator" / "models"


def test_without_an_installed_model_the_source_trees_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_model = _prefix(tmp_path / "no_model", model=False)
    assert installed_model_dir(str(no_model)) is None
    assert installed_model_dir(str(_prefix(tmp_path / "unindexed", indexed=False))) is None
    assert installed_model_dir("") is None
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(_prefix(tmp_path / "env")))
    assert installed_model_dir() == tmp_path / "env" / "share" / "tactile_estimator" / "models"
    monkeypatch.delenv("AMENT_PREFIX_PATH")
    assert installed_model_dir() is None


def _setup_arguments(monkeypatch: pytest.MonkeyPatch) -> dict:
    captured: dict = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: captured.update(kwargs))
    monkeypatch.chdir(ROOT)
    runpy.run_path(str(ROOT / "setup.py"))
    return captured


def test_setup_installs_the_model_and_the_index_marker_the_lookup_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    data_files = dict(_setup_arguments(monkeypatch)["data_files"])
    assert {"models/model.yaml", "models/weights.pt"} <= set(data_files["share/tactile_estimator/models"])
    assert data_files["share/ament_index/resource_index/packages"] == ["resource/tactile_estimator"]


# ------------------------------------------------------------------ package.xml

# Where a dependency is used without an import: replay.launch.py runs `ros2 bag play` (ros2bag)
# on the MCAP bags write_run_bag makes by default (rosbag2_storage_mcap).
USED_WITHOUT_IMPORT = {"ros2bag", "rosbag2_storage_mcap"}
PYTHON_KEYS = {"python3-numpy": "numpy", "python3-scipy": "scipy", "python3-opencv": "cv2",
               "python3-matplotlib": "matplotlib", "python3-yaml": "yaml", "python3-torch": "torch",
               "python3-rosbags-pip": "rosbags", "python3-pytest": "pytest"}


def _declared() -> set[str]:
    root = ET.parse(ROOT / "package.xml").getroot()
    tags = ("depend", "exec_depend", "build_depend", "build_export_depend", "test_depend")
    return {e.text.strip() for tag in tags for e in root.iter(tag)}


def _python_sources() -> list[Path]:
    return [*sorted((ROOT / "tactile_estimator").rglob("*.py")), *sorted((ROOT / "launch").glob("*.py"))]


def _imported_modules(paths: list[Path]) -> set[str]:
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


def _message_packages() -> set[str]:
    """Packages of the message types the nodes publish and subscribe (get_message resolves them)."""
    from tactile_estimator.adapters.live import inputs, outputs
    from tactile_estimator.config import load_estimator_config
    from tactile_estimator.io.messages import STRING

    config = load_estimator_config(None)
    types = {t for spec in inputs(config) for t in spec.msgtypes} | {o.msgtype for o in outputs(config)} | {STRING}
    return {t.split("/")[0] for t in types}


def test_package_xml_declares_what_is_used_and_nothing_else() -> None:
    declared = _declared()
    imported = _imported_modules(_python_sources())
    messages = _message_packages()
    ros = {d for d in declared if not d.startswith("python3-")}
    assert not ros - imported - messages - USED_WITHOUT_IMPORT  # each one is used
    ros_imported = {"rclpy", "rosidl_runtime_py", "std_srvs", "launch", "launch_ros", "ament_index_python"}
    assert ros_imported <= imported and ros_imported | messages <= declared  # each use is declared
    assert "tf2_ros" not in declared and "tf2_ros" not in imported
    assert {PYTHON_KEYS[d] for d in declared if d.startswith("python3-")} <= imported | {"pytest"}


def test_the_dependencies_used_without_an_import_are_used() -> None:
    from tactile_estimator.sim.recording import write_run_bag

    replay = (ROOT / "launch" / "replay.launch.py").read_text()
    assert re.search(r'"ros2", "bag", "play"', replay)
    assert inspect.signature(write_run_bag).parameters["storage"].default == "mcap"


# ------------------------------------------------------------------ pytest where ROS is sourced

def _fake_ros_plugins(site: Path) -> None:
    """launch_testing's and launch_testing_ros's pytest11 entry points, with hooks of the same signatures."""
    plugins = {
        "launch_testing": ("launch_testing", "fake_launch_testing_hooks",
                           "def pytest_pycollect_makemodule(path, parent):\n    return None\n"),
        "launch_testing_ros": ("launch_ros", "fake_launch_testing_ros_entrypoint",
                               "def pytest_launch_collect_makemodule(path, parent, entrypoint):\n    return None\n"),
    }
    for dist, (entry_point, module, source) in plugins.items():
        info = site / f"{dist}-0.0.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.0\n")
        (info / "entry_points.txt").write_text(f"[pytest11]\n{entry_point} = {module}\n")
        (site / f"{module}.py").write_text(source)


def _pytest(ini: Path, site: Path, tests: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-c", str(ini), "--rootdir", str(tests),
                           "-p", "no:cacheprovider", str(tests)], env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_pytest_setup_runs_where_ros_2_is_sourced(tmp_path: Path) -> None:
    site, tests = tmp_path / "site", tmp_path / "tests"
    _fake_ros_plugins(site)
    tests.mkdir()
    (tests / "test_one.py").write_text("def test_one():\n    assert True\n")
    bare = tmp_path / "bare.ini"
    bare.write_text("[pytest]\n")
    clash = _pytest(bare, site, tests)
    assert clash.returncode != 0 and "PluginValidationError" in clash.stdout + clash.stderr  # the fakes clash
    ours = _pytest(ROOT / "pytest.ini", site, tests)
    assert ours.returncode == 0, ours.stdout + ours.stderr
    assert "1 passed" in ours.stdout


def test_this_run_uses_the_projects_pytest_configuration(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.inipath == ROOT / "pytest.ini"
    assert {"launch_testing", "launch_ros"} <= {
        a[3:] for a in pytestconfig.getini("addopts") if a.startswith("no:")}
