"""The configuration schema: the shipped file is valid, bad keys are named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tactile_estimator.config import ConfigError, EstimatorConfig, load_estimator_config

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_parameter_file_matches_the_defaults() -> None:
    assert load_estimator_config(ROOT / "config" / "estimator.yaml") == EstimatorConfig()


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"estimator_node": {"ros__parameters": {"topics": {"tactle": "/x"}}}}))
    with pytest.raises(ConfigError, match=r"topics\.tactle: unknown parameter"):
        load_estimator_config(path)


def test_ill_typed_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"estimator_node": {"ros__parameters": {"tactile_offsets": ["one"]}}}))
    with pytest.raises(ConfigError, match=r"tactile_offsets\[0\]: expected an integer"):
        load_estimator_config(path)


def test_dotted_ros_parameter_names_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "flat.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"keyframe.every_n_frames": 3}}}))
    assert load_estimator_config(path).keyframe.every_n_frames == 3


def test_unknown_factor_family_is_rejected() -> None:
    with pytest.raises(ConfigError, match="disabled_factors: 'tactil' is unknown"):
        load_estimator_config(None, {"disabled_factors": ["tactil"]})


def test_missing_node_section_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump({"trainer_node": {"ros__parameters": {"epochs": 3}}}))
    with pytest.raises(ConfigError, match="no section for node 'estimator_node'"):
        load_estimator_config(path)


def test_gauss_newton_backend_settings_are_checked() -> None:
    assert load_estimator_config(None, {"backend": "gn"}).backend == "gn"
    with pytest.raises(ConfigError, match="backend: 'gtsam' is unknown; expected one of isam2, gn"):
        load_estimator_config(None, {"backend": "gtsam"})
    with pytest.raises(ConfigError, match="gauss_newton: window must be at least 2"):
        load_estimator_config(None, {"gauss_newton": {"window": 1}})


def test_final_iterations_must_not_be_negative() -> None:
    assert load_estimator_config(None, {"final_iterations": 0}).final_iterations == 0
    with pytest.raises(ConfigError, match="final_iterations: -1 must be 0 or more"):
        load_estimator_config(None, {"final_iterations": -1})


@pytest.mark.parametrize("overrides", [
    {"isam2": {"relinearize_skip": 0}},  # gtsam divides by it: SIGFPE, no message
    {"isam2": {"relinearize_threshold": -1.0}},
    {"max_tilt_rad": -0.1},  # every pose would be "not planar"
    {"image_height": 0},
    {"image_width": 100000},
    {"ee_max_gap_s": -1.0},
    {"ee_max_gap_s": float("nan")},
    {"final_iterations": 1000000},
    {"network_threads": 0},
    {"noise": {"contact": -0.001}},
    {"initial_object_pose": [0.0, float("nan"), 0.0]},
    {"pushing_friction": -0.1},  # the friction cone's edge would turn inside out
    {"pushing_friction": float("inf")},  # 0 is the sticking contact; inf would make NaN edges
])
def test_numbers_out_of_range_are_refused_naming_the_key(overrides: dict) -> None:
    key = next(iter(overrides))
    inner = overrides[key]
    name = f"{key}.{next(iter(inner))}" if isinstance(inner, dict) else key
    with pytest.raises(ConfigError, match=name.replace(".", r"\.")):
        load_estimator_config(None, overrides)


# Bad parameter files: each gives one line naming the file and what is wrong, and exit status 2 from the CLI.

def _write(tmp_path: Path, text: str | bytes, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def _params(values: dict, node: str = "estimator_node") -> str:
    return yaml.safe_dump({node: {"ros__parameters": values}})


def _cli_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The CLI's one error line for argv, after checking exit status 2 and nothing else on stderr."""
    from tactile_estimator.cli import main

    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tactile-estimator: error: "), err[:1000]
    return lines[0]


def _billion_laughs(levels: int, where: str) -> str:
    """Nine "lol"s, each level nine aliases of the one below: 9**levels strings, a few hundred bytes."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n" + where.replace("BOMB", f"*l{levels}") + "\n"


def test_quote_repeats_at_most_a_few_characters_of_any_value() -> None:
    from tactile_estimator.config import QUOTE_LIMIT, quote

    assert quote("gtsam") == "'gtsam'" and quote([1, 2.5]) == "[1, 2.5]" and quote({"a": None}) == "{'a': None}"
    laughs: list = ["lol"] * 9
    for _ in range(12):  # 9**12 strings if it were written out in full
        laughs = [laughs] * 9
    recursive: list = []
    recursive.append(recursive)
    assert quote(recursive) == "[[[[[[[[...]]]]]]]]"
    for value, size in [("x" * 10**7, "(10000000 characters)"), (laughs, "(list of 9 items)"),
                        (16**100_000, "(an integer of 400001 bits)"), (b"\0" * 10**6, "(1000000 bytes)")]:
        text = quote(value)
        assert text.endswith(f"... {size}") and len(text) <= QUOTE_LIMIT + 40, text


def test_a_billion_laughs_config_is_refused_in_one_short_line(tmp_path: Path) -> None:
    """Through the CLI, in a process that gets 1 GiB beyond its start: the error used to repeat the value in full."""
    bomb = _write(tmp_path, _billion_laughs(9, "estimator_node:\n  ros__parameters:\n    topics: {tactile: BOMB}"))
    child = (
        "import resource, sys\n"
        "import tactile_estimator.adapters.replay, tactile_estimator.cli, tactile_estimator.learning.trainer\n"
        "size = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()\n"
        "resource.setrlimit(resource.RLIMIT_AS, (size + (1 << 30),) * 2)\n"
        "sys.exit(tactile_estimator.cli.main(sys.argv[1:]))\n"
    )
    result = subprocess.run([sys.executable, "-c", child, "replay", "x", "--out", str(tmp_path), "--config", str(bomb)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and len(lines[0]) < 300, result.stderr[:2000]
    assert str(bomb) in lines[0] and "alias" in lines[0]


def test_an_alias_bomb_is_refused_while_the_file_is_read_wherever_it_is(tmp_path: Path) -> None:
    from tactile_estimator.config import MAX_YAML_NODES

    # in no section that is read, and never expanded by the schema: only the loader sees it
    bomb = _write(tmp_path, _billion_laughs(9, "other: BOMB\nestimator_node: {ros__parameters: {}}"))
    with pytest.raises(ConfigError, match=f"line 6: more than {MAX_YAML_NODES} nodes once its aliases are expanded"):
        load_estimator_config(bomb)
    with pytest.raises(ConfigError, match="recursive"):
        load_estimator_config(_write(tmp_path, "estimator_node: &a {ros__parameters: {topics: *a}}\n"))
    with pytest.raises(ConfigError, match="nested deeper than 64 levels"):
        load_estimator_config(_write(tmp_path, "estimator_node: " + "[" * 5000 + "]" * 5000 + "\n"))


def test_anchors_and_aliases_of_ordinary_size_still_work(tmp_path: Path) -> None:
    path = _write(tmp_path, "estimator_node:\n  ros__parameters:\n    noise:\n      camera: &sigma [0.01, 0.01, 0.1]\n"
                            "      first_pose: *sigma\n    live:\n      hold_random_walk: *sigma\n")
    config = load_estimator_config(path)
    assert config.noise.camera == config.noise.first_pose == config.live.hold_random_walk == [0.01, 0.01, 0.1]


@pytest.mark.parametrize(("text", "expected"), [
    (b"\xff\xfee\x00s\x00t\x00", r"not UTF-8 text \(byte 0xff at offset 0\)"),  # UTF-16
    ("estimator_node:\n  ros__parameters:\n    frames: {world: w\xe9lt}\n".encode("latin-1"),
     r"not UTF-8 text \(byte 0xe9 at offset 56\)"),
    ("- estimator_node\n- ros__parameters\n", "expected a map of node names to ros__parameters, got a list"),
    ("42\n", "expected a map of node names to ros__parameters, got a int"),
    ("", "expected a map of node names to ros__parameters, got an empty file"),
    ("estimator_node: {ros__parameters: [1, 2]}\n",
     "estimator_node.ros__parameters: expected a map of parameter names to values, got a list"),
    ("estimator_node: {ros__parameters: {1: 2}}\n", "1: a parameter name must be a string"),
    ("estimator_node: {ros__parameters: {keyframe: 3, keyframe.every_n_frames: 2}}\n", "keyframe: expected a map"),
    ("estimator_node: {ros__parameters: {image_height: " + "9" * 5000 + "}}\n", "Exceeds the limit"),
    ("estimator_node: {ros__parameters: {image_height: 0x" + "f" * 5000 + "}}\n",
     r"image_height: 0xfff+\.\.\. \(an integer of 20000 bits\) is outside \[1, 4096\]"),
    ("estimator_node: {ros__parameters: {max_tilt_rad: 0x" + "f" * 5000 + "}}\n", "max_tilt_rad: 0xfff+.* too large"),
    ("estimator_node: {ros__parameters: {image_height: 2001-13-45}}\n",
     "line 1, column 50: cannot read '2001-13-45' as timestamp: month must be in 1..12"),
    ("estimator_node: {ros__parameters: {freeze_gc: !!bool maybe}}\n", "column 47: cannot read 'maybe' as bool"),
    ("estimator_node:\n  !!timestamp ros__parameters: {}\n", "line 2, column 3: cannot read 'ros__parameters' as ti"),
    ("estimator_node: !<tag:" + "x" * 10**5 + "> {}\n", "line 1, column 17: could not determine a constructor"),
    ("estimator_node: {ros__parameters: {a: 1: 2}}\n", r"line 1, column 40: .* \(while parsing a flow mapping\)"),
    ("estimator_node: {ros__parameters: {" + "k" * 1000 + ": 1}}\n", r"'kkk+\.\.\. \(1000 characters\): unknown"),
    ("estimator_node: {ros__parameters: {backend: " + "b" * 10**5 + "}}\n",
     r"backend: 'bbb+\.\.\. \(100000 characters\) is unknown"),
    ("other_node: {ros__parameters: {}}\n" + "".join(f"n{i}: 1\n" for i in range(10**4)),
     "no section for node 'estimator_node'; it has other_node, n0, n1"),
])
def test_a_bad_parameter_file_is_one_short_line_naming_the_file(tmp_path: Path, text: str | bytes,
                                                                 expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as caught:
        load_estimator_config(path)
    message = str(caught.value)
    # the file's name, then at most a few hundred characters: fixed text (known keys) and QUOTE_LIMIT of the input's
    assert message.startswith(f"{path}: ") and "\n" not in message and len(message) - len(str(path)) < 500, message


def test_a_file_larger_than_any_parameter_file_is_not_read(tmp_path: Path) -> None:
    from tactile_estimator.config import MAX_FILE_BYTES

    path = _write(tmp_path, "#" * MAX_FILE_BYTES + "\n")
    with pytest.raises(ConfigError, match=f"larger than {MAX_FILE_BYTES} bytes"):
        load_estimator_config(path)


def test_dotted_and_nested_forms_merge_and_overrides_win(tmp_path: Path) -> None:
    path = _write(tmp_path, _params({"keyframe.every_n_frames": 3, "keyframe": {"min_translation_m": 0.01},
                                     "noise": {"contact": 0.002, "camera": [0.1, 0.1, 0.1]}}))
    config = load_estimator_config(path, {"noise.contact": 0.003})
    assert (config.keyframe.every_n_frames, config.keyframe.min_translation_m) == (3, 0.01)
    assert (config.noise.contact, config.noise.camera) == (0.003, [0.1, 0.1, 0.1])


@pytest.mark.parametrize(("text", "key"), [
    ("network_threads: 0", "network_threads: 0 is outside"),
    ("ee_max_gap_s: .nan", "ee_max_gap_s: nan is outside"),
    ("noise: {contact: -0.001}", r"noise\.contact: -0\.001 is outside"),
    ("initial_object_pose: [0.1, .nan, 0.0]", r"initial_object_pose: \[0\.1, nan, 0\.0\] must be finite"),
    ("initial_object_pose: [0.1, .inf, 0.0]", "initial_object_pose: .* must be finite"),
    ("tactile_offsets: [1, 1000000000]", "tactile_offsets: .* must be step offsets from 1 to 100"),
    ("contact: {background_frames: 1000000000}", r"contact\.background_frames: 1000000000 is outside"),
    ("contact: {min_fraction: .nan}", r"contact\.min_fraction: nan is outside"),
    ("gauss_newton: {iterations: 1000000}", r"gauss_newton\.iterations: 1000000 is outside"),
    ("live: {pose_queue_depth: 10000000000}", r"live\.pose_queue_depth: 10000000000 is outside"),
    ("object: {shape: " + "s" * 10**5 + "}", r"object: object shape 'sss+\.\.\. \(100000 characters\) is unknown"),
    ("object: {shape: rect, size: [0.1, .nan]}", r"object: object size \[0\.1, nan\] for shape 'rect'"),
])
def test_numbers_out_of_range_in_a_file_are_refused_in_one_line(tmp_path: Path, text: str, key: str) -> None:
    path = _write(tmp_path, f"estimator_node:\n  ros__parameters:\n    {text}\n")
    with pytest.raises(ConfigError, match=key) as caught:
        load_estimator_config(path)
    assert str(caught.value).startswith(f"{path}: ") and len(str(caught.value)) < 300


def test_gauss_newton_device_is_checked_when_the_config_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    for bad in ("tpu9", "cuda:01", "cuda:-1", "CPU", "cuda:" + "9" * 5000):
        with pytest.raises(ConfigError, match=r"gauss_newton\.device: .* is not a device; expected cpu, cuda or cu"):
            load_estimator_config(None, {"gauss_newton": {"device": bad}})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"gauss_newton\.device: cuda is not available, this machine has no CUDA"):
        load_estimator_config(None, {"backend": "gn", "gauss_newton": {"device": "cuda"}})
    # isam2 does not use the device: a file shared with a CUDA machine still serves it
    assert load_estimator_config(None, {"gauss_newton": {"device": "cuda"}}).backend == "isam2"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert load_estimator_config(None, {"backend": "gn", "gauss_newton": {"device": "cuda:0"}}).backend == "gn"
    with pytest.raises(ConfigError, match=r"cuda:1 is not available, this machine has 1 CUDA device\(s\)"):
        load_estimator_config(None, {"backend": "gn", "gauss_newton": {"device": "cuda:1"}})


@pytest.mark.parametrize(("text", "expected"), [
    (b"trainer_node:\n  ros__parameters:\n    method: l\xe9o\n", r"not UTF-8 text \(byte 0xe9"),
    ("- method\n- leo\n", "expected a map of node names to ros__parameters, got a list"),
    ("trainer_node: {ros__parameters: [epochs, 3]}\n", "trainer_node.ros__parameters: expected a map"),
    (_billion_laughs(6, "trainer_node: {ros__parameters: {learn: BOMB}}"), "once its aliases are expanded"),
    ("trainer_node: {ros__parameters: {method: " + "m" * 10**5 + "}}\n", r"method: 'mmm+\.\.\. \(100000 characters\)"),
    ("trainer_node: {ros__parameters: {learn: [" + "p" * 10**5 + "]}}\n", r"learn: 'ppp+\.\.\. \(100000 characters\)"),
    ("trainer_node: {ros__parameters: {seed: -1}}\n", r"seed: -1 is outside \[0, "),
    ("trainer_node: {ros__parameters: {threads: -1}}\n", r"threads: -1 is outside \[0, 1024\]"),
    ("trainer_node: {ros__parameters: {learning_rate_sigma: .nan}}\n", "learning_rate_sigma: nan is outside"),
    ("trainer_node: {ros__parameters: {unroll: {translation_scale_m: 0.0}}}\n", r"unroll\.translation_scale_m: 0\.0"),
])
def test_a_bad_trainer_file_is_one_short_line_naming_the_file(tmp_path: Path, text: str | bytes,
                                                               expected: str) -> None:
    from tactile_estimator.config import load_trainer_config

    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as caught:
        load_trainer_config(path)
    message = str(caught.value)
    # the file's name, then at most a few hundred characters: fixed text (known keys) and QUOTE_LIMIT of the input's
    assert message.startswith(f"{path}: ") and "\n" not in message and len(message) - len(str(path)) < 500, message


def test_the_shipped_trainer_file_is_valid() -> None:
    from tactile_estimator.config import TrainerConfig, load_trainer_config

    assert load_trainer_config(ROOT / "config" / "trainer.yaml") == TrainerConfig()


def test_each_kind_of_bad_config_reaches_the_cli_as_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    out = str(tmp_path / "out")
    latin = _write(tmp_path, "estimator_node: {ros__parameters: {backend: gn\xe9}}\n".encode("latin-1"), "latin.yaml")
    assert "latin.yaml: not UTF-8 text" in _cli_error(capsys, "replay", "x", "--out", out, "--config", str(latin))
    as_list = _write(tmp_path, "estimator_node: {ros__parameters: [1, 2]}\n", "list.yaml")
    assert "estimator_node.ros__parameters: expected a map" in _cli_error(capsys, "run", "--config", str(as_list))
    nan = _write(tmp_path, _params({"ee_max_gap_s": float("nan")}), "nan.yaml")
    assert "ee_max_gap_s: nan is outside" in _cli_error(capsys, "replay", "x", "--out", out, "--config", str(nan))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cuda = _write(tmp_path, _params({"gauss_newton": {"device": "cuda"}}), "cuda.yaml")
    assert "cuda is not available" in _cli_error(capsys, "replay", "x", "--out", out, "--config", str(cuda),
                                                 "--backend", "gn")
    tpu = _write(tmp_path, _params({"gauss_newton": {"device": "tpu9"}}), "tpu.yaml")
    assert "'tpu9' is not a device" in _cli_error(capsys, "run", "--config", str(tpu))
    trainer = _write(tmp_path, "42\n", "trainer.yaml")
    assert "trainer.yaml: expected a map of node names" in _cli_error(capsys, "train", "x", "--out", out,
                                                                      "--trainer-config", str(trainer))
    long_method = _write(tmp_path, _params({"method": "m" * 10**6}, "trainer_node"), "long.yaml")
    line = _cli_error(capsys, "train", "x", "--out", out, "--trainer-config", str(long_method))
    assert "(1000000 characters)" in line and len(line) < 300
    assert not (tmp_path / "out").exists()


def test_mutated_parameter_files_give_a_config_error_or_a_config(tmp_path: Path) -> None:
    """Seeded mutations of the shipped files, with the YAML features a stranger might use: never another exception."""
    import random

    from tactile_estimator.config import load_trainer_config

    shipped = [(ROOT / "config" / name).read_text() for name in ("estimator.yaml", "trainer.yaml")]
    pieces = ["{", "}", "[", "]", ": ", "\n  ", "- ", "&a ", "*a", "<<: *a\n", "!!binary ", "!!set ", "!!omap ",
              "!!timestamp ", "!!bool ", "!!int ", "!!float ", "!!str ", "!!python/tuple ", ".nan", "1e999", "~",
              "0x" + "f" * 300, "9" * 5000, "'", '"', "\t", "\x00", "\ufeff", "ros__parameters", "2001-02-30", "? ",
              "|\n", "...", "1:2:3", "yes", "%YAML 1.1\n---\n"]
    rng = random.Random(19)
    path = tmp_path / "mutant.yaml"
    for _ in range(200):
        source = rng.choice(shipped)
        values = [i + 2 for i in range(len(source)) if source.startswith(": ", i)]  # where a value starts
        text = list(source)
        for _ in range(rng.randint(1, 6)):
            at = rng.choice(values) if rng.random() < 0.5 else rng.randrange(len(text) + 1)
            roll = rng.random()
            if roll < 0.5:
                text[at:at] = rng.choice(pieces)
            elif roll < 0.8:
                del text[at:at + rng.randint(1, 20)]
            else:
                text[at:at] = chr(rng.randrange(0x300))
        path.write_bytes("".join(text).encode("utf-8", "surrogatepass"))
        for load in (load_estimator_config, load_trainer_config):
            try:
                load(path)
            except ConfigError as error:
                assert "\n" not in str(error) and len(str(error)) < 1000, str(error)[:1000]
