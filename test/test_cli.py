"""The CLI as a newcomer meets it: help without torch, refusals in one line."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

HELP_WITHOUT_TORCH = """
import runpy, sys
sys.argv = ["tactile-estimator", *sys.argv[1:]]
try:
    runpy.run_module("tactile_estimator.cli", run_name="__main__")
except SystemExit as done:
    print("exit", done.code)
print("torch imported:", "torch" in sys.modules)
"""


@pytest.mark.parametrize("argv", [["--help"], ["simulate", "--help"], ["play", "--help"], ["train", "--help"]])
def test_help_does_not_import_torch(argv: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", HELP_WITHOUT_TORCH, *argv], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage: tactile-estimator" in done.stdout
    assert done.stdout.splitlines()[-2:] == ["exit 0", "torch imported: False"]


def test_play_of_a_missing_bag_is_one_line_without_torch(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", HELP_WITHOUT_TORCH, "play", str(tmp_path / "missing")],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines()[-2:] == ["exit 2", "torch imported: False"]
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("tactile-estimator: error: ")


def test_blackbox_warns_once_that_it_ignores_epochs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tactile_estimator import cli

    argv = ["train", str(tmp_path / "missing"), "--out", str(tmp_path / "out"), "--method", "blackbox"]
    assert cli.main([*argv, "--epochs", "3"]) == 2  # the missing bag
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("tactile-estimator: warning: blackbox ignores --epochs")
    assert "evaluations" in lines[0] and lines[1].startswith("tactile-estimator: error: ")
    assert cli.main(argv) == 2
    assert "warning" not in capsys.readouterr().err


ROOT = Path(__file__).resolve().parents[1]


def test_version_is_the_package_version() -> None:
    import re

    done = subprocess.run([sys.executable, "-m", "tactile_estimator.cli", "--version"], capture_output=True,
                          text=True, timeout=120)
    declared = re.search(r'version="([^"]+)"', (ROOT / "setup.py").read_text()).group(1)
    assert done.returncode == 0 and done.stdout == f"tactile-estimator {declared}\n"
    assert f"<version>{declared}</version>" in (ROOT / "package.xml").read_text()


def _help(command: str) -> str:
    import argparse

    from tactile_estimator import cli

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return " ".join(sub.choices[command].format_help().split())


@pytest.mark.parametrize("command", ["simulate", "pretrain", "train", "replay", "run", "play", "info", "view"])
def test_every_option_with_a_default_says_it(command: str) -> None:
    import argparse

    from tactile_estimator import cli

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    text = _help(command)
    for action in sub.choices[command]._actions:
        if action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS):
            assert f"default: {action.default}" in text, (command, action.option_strings)


def test_train_help_states_the_shipped_trainer_defaults() -> None:
    from tactile_estimator.config import load_trainer_config

    shipped = load_trainer_config(str(ROOT / "config" / "trainer.yaml"), {})
    text = _help("train")
    for name, value in (("method", shipped.method), ("epochs", shipped.epochs), ("sampler", shipped.sampler),
                        ("samples", shipped.samples), ("seed", shipped.seed), ("threads", shipped.threads),
                        ("keep", shipped.keep)):
        assert f"the trainer config's {name}, {value})" in text, name
    assert f"the trainer config's learn, {','.join(shipped.learn)})" in text
    assert "/trainer_node/model_updated" in text and "~/model_updated" not in text


def _readme_usage() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Command line")
    return text[start:text.index("## ", start + 3)]


@pytest.mark.parametrize("command", ["simulate", "pretrain", "train", "replay", "info", "view", "run", "play"])
def test_readme_usage_lines_carry_every_flag(command: str) -> None:
    import argparse

    from tactile_estimator import cli

    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    usage = [line for line in _readme_usage().splitlines() if line.startswith(("tactile-estimator", "    ["))]
    lines, current = {}, None
    for line in usage:
        if line.startswith("tactile-estimator"):
            current = line.split()[1]
        lines[current] = lines.get(current, "") + " " + line
    for action in sub.choices[command]._actions:
        flags = [f for f in action.option_strings if f.startswith("--") and f not in ("--help", "--quiet")]
        if flags:
            assert any(f"{flag} " in lines[command] + " " or f"{flag}]" in lines[command] or f"{flag}=" in
                       lines[command] for flag in flags), (command, flags)


def test_readme_is_a_users_page() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) < 15_000
    assert "DESIGN.md" not in text and "~/model_updated" not in text
    for doc in ("docs/design.md", "docs/cli.md", "docs/results.md", "docs/training.md", "docs/ros2.md"):
        assert doc in text and (ROOT / doc).is_file()
    assert text.count("\n| set | objects |") == 1  # one results table


def test_train_once_refuses_the_dds_flags_it_would_ignore(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """--once trains and exits: it never publishes, so --domain, --localhost and --duration are refused."""
    from tactile_estimator import cli

    bags = tmp_path / "bags"
    bags.mkdir()
    argv = ["train", str(bags), "--out", str(tmp_path / "out"), "--once"]
    assert cli.main([*argv, "--domain", "7", "--localhost"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--domain, --localhost: --once trains once and exits without publishing" in err
    assert cli.main(argv) == 0  # no bags yet: one look, nothing to train
    assert "no new model" in capsys.readouterr().out


def test_the_dds_options_are_one_definition_for_every_command_on_dds() -> None:
    """run, play and train --watch read --domain and --localhost the same way (cli._dds_settings)."""
    from tactile_estimator import cli

    (commands,) = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]

    def option(command: str, flag: str) -> argparse.Action:
        return next(a for a in commands.choices[command]._actions if flag in a.option_strings)

    for flag in ("--domain", "--localhost"):
        run, play, train = (option(command, flag) for command in ("run", "play", "train"))
        assert run.help == play.help and train.help == f"watch mode: {run.help}"
        assert (run.type, run.default, run.nargs) == (train.type, train.default, train.nargs)
    assert option("run", "--transport").choices == option("play", "--transport").choices == ["dds"]
