"""tactile-estimator {simulate, pretrain, train, replay, info, view, run, play}: offline jobs, live path, no ROS.

Every error a user can cause ends in one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

from tactile_estimator.config import (
    FACTOR_FAMILIES,
    ConfigError,
    EstimatorConfig,
    TrainerConfig,
    load_estimator_config,
    one_line,
)
from tactile_estimator.progress import progress, say, set_quiet

log = logging.getLogger("tactile_estimator")

MAX_ERROR_CHARS = 2000  # an error line longer than this is cut; each message bounds what it quotes already


def _config(args: argparse.Namespace) -> EstimatorConfig:
    """The parameter file, then the command line: --backend replaces, --disable-factor adds."""
    overrides = {"backend": args.backend} if getattr(args, "backend", None) else {}
    config = load_estimator_config(args.config, overrides)
    config.disabled_factors = sorted(set(config.disabled_factors) | set(getattr(args, "disable_factor", [])))
    return config.validate()


def cmd_simulate(args: argparse.Namespace) -> int:
    import math

    from tactile_estimator.objects import DEFAULT_SIZES, Shape
    from tactile_estimator.sim.pushing import SensorNoise, simulate_run
    from tactile_estimator.sim.recording import camera_renderer, write_run_bag

    kinds = [k.strip() for k in args.object.split(",") if k.strip()]
    for kind in kinds:
        if kind not in DEFAULT_SIZES:
            raise ConfigError(f"--object: '{kind}' is unknown; expected rect, disc or ellipse")
    if args.steps < 1:
        raise ConfigError(f"--steps {args.steps} must be at least 1")
    if not math.isfinite(args.camera_rate) or args.camera_rate <= 0.0:
        raise ConfigError(f"--camera-rate {args.camera_rate} must be positive")
    if not 0.0 <= args.camera_dropout <= 1.0:
        raise ConfigError(f"--camera-dropout {args.camera_dropout} is a fraction in [0, 1]")
    noise = SensorNoise(camera_dropout=args.camera_dropout)
    out = _writable_out(args.out)
    for run in progress(range(args.runs), "simulate", unit="run"):
        kind = kinds[run % len(kinds)]
        seed = args.seed + run
        result = simulate_run(Shape(kind, DEFAULT_SIZES[kind]), steps=args.steps, seed=seed, noise=noise,
                              camera_rate_hz=args.camera_rate, camera_first_only=args.camera_first_only)
        path = out / f"run_{seed:04d}_{kind}"
        renderer = None if args.no_camera_images else camera_renderer(result)
        write_run_bag(result, path, storage=args.storage, ee=args.ee, camera=renderer,
                      detections=not args.no_detections)
        contact = sum(result.in_contact) / max(len(result.in_contact), 1)
        say(f"{path}  {kind}  {args.steps} steps  contact {contact:.0%}  "
            f"camera detections {len(result.camera)}")
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from tactile_estimator.learning.datasets import expand_bag_paths
    from tactile_estimator.learning.pretrain import pretrain

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = _config(args)
    if args.threads < 0:
        raise ConfigError(f"--threads {args.threads} must be 0 (torch's default) or more")
    _writable_out(args.out)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    bags = expand_bag_paths(args.bags)
    val = expand_bag_paths(args.val) if args.val else []
    if not val and len(bags) >= 4:
        n_val = max(1, len(bags) // 6)
        bags, val = bags[:-n_val], bags[-n_val:]
    command = "tactile-estimator " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    result = pretrain(bags, val, Path(args.out), config, epochs=args.epochs, seed=args.seed, command=command)
    rmse = result["validation_rmse"]
    print(f"model written to {args.out}: validation RMSE x {rmse[0] * 1e3:.2f} mm, y {rmse[1] * 1e3:.2f} mm, "
          f"theta {math.degrees(rmse[2]):.2f} deg")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from tactile_estimator.config import load_trainer_config
    from tactile_estimator.learning.checkpoint import previous_run
    from tactile_estimator.learning.datasets import expand_bag_paths
    from tactile_estimator.learning.trainer import train

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    config = _config(args)
    overrides = {k: v for k, v in (("method", args.method), ("epochs", args.epochs), ("sampler", args.sampler),
                                   ("samples", args.samples), ("seed", args.seed), ("keep", args.keep),
                                   ("threads", args.threads))
                 if v is not None}
    if args.learn:
        overrides["learn"] = [x.strip() for x in args.learn.split(",") if x.strip()]
    for name in ("poll", "settle"):
        if getattr(args, name) is not None:
            overrides[f"watch.{name}_s"] = getattr(args, name)
    trainer_config = load_trainer_config(args.trainer_config, overrides)
    if trainer_config.method == "blackbox" and args.epochs is not None:
        print(f"tactile-estimator: warning: blackbox ignores --epochs; it runs {trainer_config.blackbox.evaluations} "
              "evaluations (blackbox.evaluations in --trainer-config)", file=sys.stderr)
    if args.resume and args.overwrite:
        raise ConfigError("--resume continues the run in --out, --overwrite replaces it: give one")
    _writable_out(args.out)
    val = expand_bag_paths(args.val) if args.val else []
    if args.watch or args.once:
        return _train_watch(args, config, trainer_config, val)
    if not args.resume and not args.overwrite and (found := previous_run(Path(args.out))) is not None:
        raise ConfigError(f"--out {args.out} holds a previous run ({found.name}); --resume continues it, "
                          "--overwrite replaces it")
    bags = expand_bag_paths(args.bags)
    command = "tactile-estimator " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    result = train(bags, val, Path(args.out), config, trainer_config, init=args.init or None, resume=args.resume,
                   command=command, progress=say)
    if not result.main:
        return 0  # under torchrun, the first process reports
    if result.extra.get("finished"):
        last = result.history[-1]
        print(f"{args.out}: already finished at epoch {last['epoch']} of {trainer_config.epochs}"
              f"{'' if trainer_config.method != 'blackbox' else ' (blackbox: its evaluations budget)'}; "
              "nothing to resume (--epochs N continues to epoch N)")
        return 0
    first, kept = result.history[0], result.kept
    def figures(row: dict) -> str:
        return f"{row['val_rmse_translation_m'] * 1e3:.2f} mm / {math.degrees(row['val_rmse_rotation_rad']):.2f} deg"

    which = "" if kept is result.history[-1] else f", epoch {kept['epoch']} of {result.history[-1]['epoch']}: the best"
    print(f"model written to {args.out} ({trainer_config.method}{which}): validation RMSE {figures(kept)} "
          f"(start {figures(first)}), solver calls {result.solver_calls}, {result.wall_s:.1f} s")
    return 0


def _train_watch(args: argparse.Namespace, config: EstimatorConfig, trainer_config: TrainerConfig,
                 val: list[Path]) -> int:
    """``train --watch DIR...``: the trainer node without ROS (``--once``: one look, then exit)."""
    from tactile_estimator.learning.watch import ModelWatch

    if args.resume:
        raise ConfigError("--resume is implied by --watch: an interrupted round is resumed at the next start")
    if args.once:
        given = [flag for flag, on in (("--domain", args.domain is not None), ("--localhost", args.localhost),
                                       ("--duration", args.duration is not None)) if on]
        if given:
            raise ConfigError(f"{', '.join(given)}: --once trains once and exits without publishing on DDS; "
                              "drop --once to publish new models on /trainer_node/model_updated")
    watch = ModelWatch(args.bags, args.out, config, trainer_config, init=args.init or None, val_paths=val,
                       progress=_say)
    if args.once:
        model = watch.poll()
        _say(f"{'new model ' + str(model) if model else 'no new model'}; {watch.describe()}")
        return 0
    from tactile_estimator.adapters.dds_run import run_trainer

    _check_duration(args)
    domain, dds_config = _dds_settings(args)
    result = run_trainer(watch, domain_id=domain, dds_config=dds_config, duration_s=args.duration,
                         node_name=args.node_name, ready=_say)
    _say(f"watch {_why(result, 'duration reached')}: {len(result.published)} models published; {watch.describe()}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    import torch

    from tactile_estimator.adapters.replay import replay_bag, summary_table
    from tactile_estimator.learning.datasets import expand_bag_paths
    from tactile_estimator.networks.tactile import TactileModel

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    config = _config(args)
    out = _writable_out(args.out)
    torch.set_num_threads(config.network_threads)
    model = TactileModel.load(args.model or config.model or None)
    bags = expand_bag_paths(args.bags)
    results = []
    for bag in progress(bags, "replay", unit="bag"):
        result = replay_bag(bag, config, model, out / bag.name, write_bag=args.write_bag)
        results.append(result)
    print(summary_table(results))
    for r in results:
        extra = f"  bag: {r.written_bag}" if r.written_bag else ""
        print(f"{r.bag.name}: plot {r.plot}  metrics {r.out_dir / 'metrics.json'}{extra}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from tactile_estimator import bag_info
    from tactile_estimator.io.bags import expand_bag_paths

    config = load_estimator_config(args.config)
    summaries = [bag_info.summarise(bag, config) for bag in progress(expand_bag_paths(args.bags), "info", unit="bag")]
    if args.json:
        print(bag_info.dumps(summaries))
    else:
        print("\n\n".join(bag_info.format_summary(s) for s in summaries))
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    from tactile_estimator.view import view_bag

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    config = _config(args)
    path, count = view_bag(args.bag, args.out, config, estimates=args.estimates, model=args.model,
                           every=args.every, frames=args.frames, fps=args.fps)
    say(f"{path}: {count} pictures")
    return 0


def _writable_out(path: str) -> Path:
    """``--out``, made if missing and checked before any work (io.atomic.writable_directory)."""
    from tactile_estimator.io.atomic import writable_directory

    return writable_directory(path, "--out")


def _os_error(error: OSError) -> str:
    """An OSError as one line: the path, then what the system said (a permission, a full disk)."""
    if error.filename is None or not error.strerror:
        text = str(error) or type(error).__name__
    else:
        where = f"{error.filename} -> {error.filename2}" if error.filename2 is not None else str(error.filename)
        text = f"{where}: {error.strerror}"
    return " ".join(text.split())[:1000]


def _dds_settings(args: argparse.Namespace) -> tuple[int, str | None]:
    from tactile_estimator.adapters import dds

    domain = args.domain if args.domain is not None else int(os.environ.get("ROS_DOMAIN_ID", "0") or 0)
    if not 0 <= domain <= 232:
        raise ConfigError(f"--domain {domain} is out of range 0..232")
    return domain, dds.localhost_config() if args.localhost else None


def _say(text: str) -> None:
    say(f"tactile-estimator: {text}")


def _check_duration(args: argparse.Namespace) -> None:
    if args.duration is not None and not args.duration > 0:
        raise ConfigError(f"--duration {args.duration} must be positive")


def _why(result: Any, otherwise: str) -> str:
    """How a live command ended: the signal that stopped it, or ``otherwise``."""
    return f"stopped by {signal.Signals(result.signal).name}" if result.signal else otherwise


def cmd_run(args: argparse.Namespace) -> int:
    from tactile_estimator.adapters.dds_run import run_estimator
    from tactile_estimator.networks.tactile import TactileModel

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    config = _config(args)
    _check_duration(args)
    model = TactileModel.load(args.model or config.model or None)
    domain, dds_config = _dds_settings(args)
    result = run_estimator(config, model, domain_id=domain, dds_config=dds_config, duration_s=args.duration,
                           node_name=args.node_name, ready=_say, notify=_say)
    _say(f"run {_why(result, 'duration reached')}: {result.live.summary()}")
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    from tactile_estimator.adapters.dds_run import play_bag

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    config = load_estimator_config(args.config)
    domain, dds_config = _dds_settings(args)
    if not args.rate > 0:
        raise ConfigError(f"--rate {args.rate} must be positive")
    result = play_bag(args.bag, rate=args.rate, domain_id=domain, dds_config=dds_config,
                      latched=(config.topics.object_info,), wait_for=tuple(args.wait_for),
                      wait_timeout_s=args.wait_timeout, delay_s=args.delay, ready=_say)
    _say(f"play {_why(result, 'done')}: {result.messages} messages on {result.topics} topics in {result.seconds:.1f} s")
    return 0


def _add_dds_arguments(parser: argparse.ArgumentParser, transport: bool = True, scope: str = "") -> None:
    """The DDS options, one definition for every command on DDS (``_dds_settings`` reads them); ``scope``
    opens their help where they apply to one mode only (train: "watch mode: ")."""
    if transport:
        parser.add_argument("--transport", choices=["dds"], default="dds",
                            help="dds: Cyclone DDS speaking the ROS 2 wire protocol (no ROS install needed)")
    parser.add_argument("--domain", type=int, help=f"{scope}DDS domain id (default: ROS_DOMAIN_ID, else 0)")
    parser.add_argument("--localhost", action="store_true",
                        help=f"{scope}stay on the loopback interface, unicast discovery "
                             "(otherwise CYCLONEDDS_URI applies)")


class HelpFormatter(argparse.HelpFormatter):
    """Help with each option's default, unless the help says it already or there is none to say."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("%(default)" in text or "default" in text or default is None or default is argparse.SUPPRESS
                or default is False or default == [] or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


def version() -> str:
    """The installed package's version (setup.py's), as pip and colcon record it."""
    from importlib import metadata

    try:
        return metadata.version("tactile_estimator")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


class _Version(argparse.Action):
    """``--version``, read from the package metadata only when asked (importlib.metadata is slow to import)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(f"tactile-estimator {version()}")
        parser.exit()


def _add_quiet(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="no progress bars (they are drawn only when stderr is a terminal)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tactile-estimator", description=__doc__.splitlines()[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    _add_quiet(parser, False)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_parser = sub.add_parser

    def add_parser(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        child = _add_parser(name, formatter_class=HelpFormatter, **kwargs)
        _add_quiet(child, argparse.SUPPRESS)  # after the command too; SUPPRESS keeps one given before it
        return child

    sub.add_parser = add_parser  # type: ignore[method-assign]

    sim = sub.add_parser("simulate", help="write simulated pushing runs as rosbag2 recordings")
    sim.add_argument("--out", required=True, help="directory for one bag per run")
    sim.add_argument("--runs", type=int, default=1, help="runs to simulate, one bag each")
    sim.add_argument("--steps", type=int, default=300, help="tactile frames per run (30 Hz)")
    sim.add_argument("--object", default="rect", help="rect, disc, ellipse, or a comma list used in turn")
    sim.add_argument("--seed", type=int, default=0, help="run i uses seed + i")
    sim.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap", help="rosbag2 storage format")
    sim.add_argument("--camera-rate", type=float, default=2.0, metavar="HZ", help="camera frame rate")
    sim.add_argument("--camera-dropout", type=float, default=0.3, help="least fraction of camera frames lost")
    sim.add_argument("--camera-first-only", action="store_true",
                     help="first detection only: every later one is lost, as when the arm occludes the object "
                          "for the whole run (tactile-only pushing)")
    sim.add_argument("--ee", choices=["pose", "tf", "both"], default="pose",
                     help="the end-effector as /ee_pose, as /tf + /tf_static (world -> ee -> digit_gel, as "
                          "robot_state_publisher writes an arm; replay with ee_source: tf, frames.sensor: digit_gel), "
                          "or both")
    sim.add_argument("--no-camera-images", action="store_true",
                     help="no camera images: leave out /camera/image_raw/compressed (15 Hz PNG of the object's "
                          "AprilTag), /camera/camera_info and the camera on /tf_static")
    sim.add_argument("--no-detections", action="store_true",
                     help="no detection topic (/object_detection): the camera prior then comes from the images")
    sim.set_defaults(func=cmd_simulate)

    pre = sub.add_parser("pretrain", help="train the tactile network from bags with ground truth")
    pre.add_argument("bags", nargs="+", help="bag directories, .mcap/.db3 files, or directories of bags")
    pre.add_argument("--out", required=True, help="model directory to write")
    pre.add_argument("--val", nargs="*", default=[], help="validation bags (default: the last sixth)")
    pre.add_argument("--epochs", type=int, default=30, help="passes over the training bags")
    pre.add_argument("--seed", type=int, default=0, help="fixes the initial weights and the batch order")
    pre.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's own choice, one per core)")
    pre.add_argument("--config", help="estimator parameter file (topics, offsets)")
    pre.set_defaults(func=cmd_pretrain)

    tr = sub.add_parser("train", help="learn the factor weights from bags with ground truth (LEO or a baseline)")
    tr.add_argument("bags", nargs="+", help="bag directories, .mcap/.db3 files, or directories of bags")
    tr.add_argument("--out", required=True, help="model directory to write (with checkpoint, log and curves)")
    tr.add_argument("--init", help="starting model directory (default: the shipped models/)")
    tr.add_argument("--method", choices=["leo", "supervised", "blackbox", "unroll"],
                    help="what is learned and how (default: the trainer config's method, leo)")
    tr.add_argument("--epochs", type=int, help="blackbox ignores it (default: the trainer config's epochs, 10)")
    tr.add_argument("--sampler", choices=["isam2", "gn"],
                    help="posterior samples from iSAM2 or batched Gauss-Newton "
                         "(default: the trainer config's sampler, gn)")
    tr.add_argument("--samples", type=int,
                    help="posterior samples per trajectory and update (default: the trainer config's samples, 10)")
    tr.add_argument("--learn", help="comma list: tactile_head, tactile_encoder, tactile, pushing, contact, ...; "
                    "family:axes learns those of x, y, z (θ) only, e.g. tactile:xy "
                    "(default: the trainer config's learn, tactile_head,tactile:xy,pushing)")
    tr.add_argument("--seed", type=int,
                    help="fixes the run order and the samples (default: the trainer config's seed, 0)")
    tr.add_argument("--threads", type=int, help="torch threads (default: the trainer config's threads, 1)")
    tr.add_argument("--keep", choices=["best", "last"],
                    help="write the model of the best validation epoch or of the last one "
                         "(default: the trainer config's keep, best)")
    tr.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    tr.add_argument("--overwrite", action="store_true", help="replace a previous run in --out (refused otherwise)")
    tr.add_argument("--val", nargs="*", default=[], help="validation bags (default: the training bags)")
    tr.add_argument("--config", help="estimator parameter file (topics, offsets, noise)")
    tr.add_argument("--trainer-config", help="trainer parameter file (config/trainer.yaml format)")
    tr.add_argument("--watch", action="store_true",
                    help="watch mode: BAGS are directories; retrain whenever new bags appear and publish each "
                         "accepted model on /<node-name>/model_updated (/trainer_node/model_updated) over DDS "
                         "(the trainer node without ROS)")
    tr.add_argument("--once", action="store_true", help="watch mode, one look: train if new bags are there, exit")
    tr.add_argument("--poll", type=float, help="watch mode: seconds between looks (default: the config's watch.poll_s)")
    tr.add_argument("--settle", type=float, help="watch mode: seconds a bare bag file must stay unchanged "
                    "(default: the config's watch.settle_s)")
    tr.add_argument("--duration", type=float, help="watch mode: stop after this many seconds (default: on SIGINT)")
    tr.add_argument("--node-name", default="trainer_node", help="watch mode: name in front of /model_updated")
    _add_dds_arguments(tr, transport=False, scope="watch mode: ")
    tr.set_defaults(func=cmd_train)

    rep = sub.add_parser("replay", help="run the estimator over bags and report errors, latency and plots")
    rep.add_argument("bags", nargs="+", help="bag directories, .mcap/.db3 files, or directories of bags")
    rep.add_argument("--model", help="model directory (default: the shipped models/)")
    rep.add_argument("--config", help="estimator parameter file (config/estimator.yaml format)")
    rep.add_argument("--backend", choices=["isam2", "gn"],
                     help="solver backend (gn: batched Gauss-Newton in torch; default: the config's, isam2)")
    rep.add_argument("--disable-factor", action="append", choices=FACTOR_FAMILIES, default=[],
                     help="switch a factor family off (repeatable)")
    rep.add_argument("--out", default="replay_out", help="output directory, one folder per bag")
    rep.add_argument("--write-bag", action="store_true", help="also write a copy of each bag with the estimates")
    rep.set_defaults(func=cmd_replay)

    info = sub.add_parser("info", help="what a bag holds (topics, types, counts, rates, the object) and whether "
                          "replay and train can use it")
    info.add_argument("bags", nargs="+", metavar="BAG", help="rosbag2 directories or .mcap/.db3 files")
    info.add_argument("--config", help="estimator parameter file: the topics and object looked for")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.set_defaults(func=cmd_info)

    view = sub.add_parser("view", help="tactile frames beside the contact state and the estimate, as a GIF, "
                          "a PNG strip or an mp4")
    view.add_argument("bag", help="rosbag2 directory or .mcap/.db3 file")
    view.add_argument("--out", required=True, help="FILE.gif (animation), FILE.png (a strip) or FILE.mp4")
    view.add_argument("--estimates", help="a replay's estimates.csv or its folder (otherwise the estimator is run)")
    view.add_argument("--model", help="model directory when the estimator is run (default: the shipped models/)")
    view.add_argument("--config", help="estimator parameter file (topics, object, contact detection)")
    view.add_argument("--backend", choices=["isam2", "gn"], help="solver backend (default: the config's, isam2)")
    view.add_argument("--every", type=int, default=1, help="GIF and mp4: every N-th tactile frame")
    view.add_argument("--frames", type=int, default=6, help="PNG: pictures in the strip, evenly spaced")
    view.add_argument("--fps", type=float, default=10.0, help="GIF and mp4: pictures per second")
    view.set_defaults(func=cmd_view)

    run = sub.add_parser("run", help="run the estimator live: ROS 2 topics in, estimates and diagnostics out")
    _add_dds_arguments(run)
    run.add_argument("--config", help="estimator parameter file (config/estimator.yaml format)")
    run.add_argument("--model", help="model directory (default: the config's, else the shipped models/)")
    run.add_argument("--backend", choices=["isam2", "gn"], help="solver backend (default: the config's, isam2)")
    run.add_argument("--duration", type=float, help="stop after this many seconds (default: until SIGINT/SIGTERM)")
    run.add_argument("--node-name", default="estimator_node", help="name in front of the private ~/ topics")
    run.set_defaults(func=cmd_run)

    play = sub.add_parser("play", help="publish a bag's messages live with their original timing")
    play.add_argument("bag", help="rosbag2 directory or .mcap/.db3 file")
    _add_dds_arguments(play)
    play.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    play.add_argument("--config", help="estimator parameter file: its topics.object_info is published latched")
    play.add_argument("--wait-for", action="append", default=[], metavar="TOPIC",
                      help="start once TOPIC has a subscriber (repeatable)")
    play.add_argument("--wait-timeout", type=float, default=10.0, help="seconds --wait-for waits at most")
    play.add_argument("--delay", type=float, default=0.0, help="seconds to sleep before playing")
    play.set_defaults(func=cmd_play)
    return parser


# The errors a user can cause, by module: a module never imported raised none of them, so main
# looks only at those imported (``--help`` and ``simulate`` never import torch).
USER_ERRORS = (
    ("tactile_estimator.io.atomic", "OutputError"),
    ("tactile_estimator.io.bags", "BagError"),
    ("tactile_estimator.learning.datasets", "DatasetError"),
    ("tactile_estimator.learning.checkpoint", "TrainingError"),
    ("tactile_estimator.networks.tactile", "ModelError"),
    ("tactile_estimator.adapters.dds", "DdsError"),
)


def _user_errors() -> tuple[type[Exception], ...]:
    found = [getattr(sys.modules[name], cls) for name, cls in USER_ERRORS if name in sys.modules]
    return (ConfigError, *found)


def _interrupted(error: BaseException) -> bool:
    checkpoint = sys.modules.get("tactile_estimator.learning.checkpoint")
    return checkpoint is not None and isinstance(error, checkpoint.TrainingInterrupted)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_quiet(args.quiet)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("tactile-estimator: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if isinstance(error, _user_errors()):
            print(f"tactile-estimator: error: {one_line(str(error), MAX_ERROR_CHARS)}", file=sys.stderr)
            return 2
        if isinstance(error, OSError):  # a file or directory the system refused (no permission, a full disk)
            print(f"tactile-estimator: error: {_os_error(error)}", file=sys.stderr)
            return 2
        if _interrupted(error):
            print(f"tactile-estimator: interrupted: {error}", file=sys.stderr)
            return 130
        raise


def _ros_node(name: str) -> int:
    """A ROS 2 node's console script: one line and exit 2 where rclpy cannot be imported."""
    import importlib.util

    if importlib.util.find_spec("rclpy") is None:
        print(f"{name}: error: rclpy is needed (source a ROS 2 setup, e.g. /opt/ros/jazzy/setup.bash); "
              f"without ROS 2, use `tactile-estimator {'run' if name == 'estimator_node' else 'train --watch'}`",
              file=sys.stderr)
        return 2
    from tactile_estimator.adapters import ros_nodes

    return getattr(ros_nodes, name)()


def estimator_node() -> int:
    """Console script ``estimator_node`` (``ros2 run tactile_estimator estimator_node``)."""
    return _ros_node("estimator_node")


def trainer_node() -> int:
    """Console script ``trainer_node`` (``ros2 run tactile_estimator trainer_node``)."""
    return _ros_node("trainer_node")


if __name__ == "__main__":
    sys.exit(main())
