"""The trainer on real bags: energy, samplers, LEO updates, outputs, resume after SIGINT, NaN stop, DDP."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tactile_estimator.config import ConfigError, load_estimator_config, load_trainer_config
from tactile_estimator.graph import FactorGraph
from tactile_estimator.io import bags, messages
from tactile_estimator.learning.baselines import unrolled_solve
from tactile_estimator.learning.checkpoint import CHECKPOINT, LOG_CSV, TrainingError, validation_score
from tactile_estimator.learning.datasets import DatasetError
from tactile_estimator.learning.runs import (
    RunGraph,
    Theta,
    build_run,
    energy,
    factors_for,
    load_runs,
    solve_runs,
    trajectory_rmse,
)
from tactile_estimator.learning.trainer import train
from tactile_estimator.networks.tactile import TactileModel
from tactile_estimator.objects import DEFAULT_SIZES, Shape
from tactile_estimator.sim.pushing import simulate_run
from tactile_estimator.sim.recording import write_run_bag

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def short_bags(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two 80-step runs (a rect and a disc), enough for contact episodes and camera detections."""
    out = tmp_path_factory.mktemp("train_bags")
    paths = []
    for seed, kind in ((7100, "rect"), (7101, "disc")):
        path = out / f"run_{seed}_{kind}"
        write_run_bag(simulate_run(Shape(kind, DEFAULT_SIZES[kind]), steps=80, seed=seed), path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def run_graphs(short_bags: list[Path]) -> list[RunGraph]:
    return load_runs(short_bags, load_estimator_config(), TactileModel.load())


def _config(**values: object):
    base = {"epochs": 1, "samples": 4, "runs_per_update": 1, "solver_iterations": 5, "threads": 1}
    base.update(values)
    return load_trainer_config(None, base)


def test_run_graph_is_the_estimators_graph_with_truth(run_graphs: list[RunGraph]) -> None:
    run = run_graphs[0]
    assert run.steps > 60 and len(run.keys) == 2 * run.steps
    assert "tactile" in run.groups and len(run.tactile_rows) == len(run.groups["tactile"].positions)
    assert (run.tactile_rows >= 0).all(), "every tactile factor's frames have network inputs"
    # the starting model's predictions rebuild the template's tactile measurements
    theta = Theta(TactileModel.load(), load_estimator_config(), ["tactile_head"])
    predictions = theta.predictions(run)
    np.testing.assert_allclose(predictions.detach().numpy(), run.groups["tactile"].measurement.numpy(), atol=1e-6)
    t, r, _ = trajectory_rmse(run, run.warm)
    assert t < 0.02 and r < 0.2, "the estimator's own solution is near the truth"


def test_run_graph_reads_the_camera_as_replay_does(short_bags: list[Path], tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """The bags hold the camera's detections and its images (camera.source auto): training, like replay,
    takes the detections only, so its graphs are replay's, and no detection comes twice (and is dropped)."""
    from collections import Counter

    from tactile_estimator.adapters.replay import replay_bag

    replayed = replay_bag(short_bags[0], load_estimator_config(), TactileModel.load(), tmp_path)
    assert replayed.metrics["dropped_inputs"] == {}
    with caplog.at_level("WARNING"):
        run = build_run(short_bags[0], load_estimator_config(), TactileModel.load())
    assert not [r for r in caplog.records if "dropped input" in r.getMessage()]
    families = Counter(f.family for f in run.factors)
    assert families == Counter(f.family for f in replayed.graph.factors) and families["camera"] >= 2
    np.testing.assert_allclose([f.measurement for f in run.factors if f.family == "camera"],
                               [f.measurement for f in replayed.graph.factors if f.family == "camera"])


def test_torch_energy_equals_the_graph_energy(run_graphs: list[RunGraph]) -> None:
    run = run_graphs[1]
    theta = Theta(TactileModel.load(), load_estimator_config(), ["tactile", "pushing"])
    predictions = theta.predictions(run)
    graph = FactorGraph()
    graph.add(factors_for(run, theta, predictions), {})
    for values in (run.warm, run.truth):
        expected = graph.energy(dict(zip(run.keys, values, strict=True)))
        got = energy(run, theta, predictions, torch.from_numpy(values)[None])[0].item()
        assert got == pytest.approx(expected, rel=1e-9)


def test_persistence_aware_theta_fits_the_per_step_sigma_and_keeps_the_inflation(run_graphs: list[RunGraph]) -> None:
    """With persistence, θ holds σ / κ, κ = √((1 + ρ) / (1 - ρ)) from the model's factor_persistence:
    the estimator still gets the model's σ, while LEO's graphs and energy use σ / κ, for a learned
    family (pushing) and a fixed one (tactile) alike. Without it, σ is learned as the graph's."""
    model = TactileModel.load()
    kappa = {f: np.sqrt((1 + np.array(rho)) / (1 - np.array(rho))) for f, rho in model.persistence.items()}
    assert kappa["pushing"][2] > 3 and kappa["tactile"][0] > 3, "the shipped model records persistent errors"
    config = load_estimator_config()
    theta = Theta(model, config, ["pushing"], persistence=True)
    np.testing.assert_allclose(theta.sigma("pushing").detach().numpy(), model.weights.pushing)
    np.testing.assert_allclose(theta.sigma("pushing", white=True).detach().numpy(),
                               np.array(model.weights.pushing) / kappa["pushing"])
    run = run_graphs[0]
    predictions = theta.predictions(run)
    graph, white = factors_for(run, theta, predictions), factors_for(run, theta, predictions, white=True)
    for family in ("tactile", "pushing"):
        position, template = run.groups[family].positions[0], run.groups[family].sigmas[0].numpy()
        np.testing.assert_allclose(graph[position].sigmas, template)
        np.testing.assert_allclose(white[position].sigmas, template / kappa[family])
    white_graph = FactorGraph()
    white_graph.add(white, {})
    expected = white_graph.energy(dict(zip(run.keys, run.truth, strict=True)))
    got = energy(run, theta, predictions, torch.from_numpy(run.truth)[None], white=True)[0].item()
    assert got == pytest.approx(expected, rel=1e-9)
    plain = Theta(model, config, ["pushing"])
    np.testing.assert_allclose(plain.sigma("pushing", white=True).detach().numpy(), model.weights.pushing)


def test_isam2_and_gauss_newton_samplers_agree(run_graphs: list[RunGraph]) -> None:
    theta = Theta(TactileModel.load(), load_estimator_config(), ["tactile"])
    predictions = [theta.predictions(r) for r in run_graphs]
    factors = [factors_for(r, theta, p) for r, p in zip(run_graphs, predictions, strict=True)]
    isam2 = solve_runs(run_graphs, factors, "isam2", 10, 400, [1, 2])
    gn = solve_runs(run_graphs, factors, "gn", 10, 400, [1, 2])
    for a, b in zip(isam2, gn, strict=True):
        np.testing.assert_allclose(a.values, b.values, atol=1e-5)
        spread_a, spread_b = a.samples.std(0), b.samples.std(0)
        np.testing.assert_allclose(spread_a.mean(0), spread_b.mean(0), rtol=0.15)


def test_unrolled_gauss_newton_converges_to_the_batch_solution(run_graphs: list[RunGraph]) -> None:
    run = run_graphs[0]
    theta = Theta(TactileModel.load(), load_estimator_config(), ["tactile"])
    predictions = theta.predictions(run)
    solved = solve_runs([run], [factors_for(run, theta, predictions)], "gn", 20, 0, [0])[0]
    unrolled = unrolled_solve(run, theta, predictions, 8)
    np.testing.assert_allclose(unrolled.detach().numpy(), solved.values, atol=1e-6)
    unrolled[run.object_rows, 0].sum().backward()
    assert theta.log_sigma["tactile"].grad is not None and torch.isfinite(theta.log_sigma["tactile"].grad).all()


def test_leo_training_writes_a_model_the_estimator_loads(short_bags: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "leo"
    result = train(short_bags, short_bags[:1], out, load_estimator_config(), _config(sampler="gn", keep="last"),
                   command="test")
    for name in ("weights.pt", "model.yaml", LOG_CSV, "learning_curves.png", CHECKPOINT):
        assert (out / name).is_file(), name
    assert [row["epoch"] for row in result.history] == [0, 1]
    assert result.solver_calls == 2 + 2  # two validations of one run, one update per training run
    model = TactileModel.load(out)
    start = TactileModel.load()
    assert model.weights.tactile != start.weights.tactile and model.weights.pushing != start.weights.pushing
    assert all(s > 0 for s in model.weights.tactile + model.weights.pushing)
    # the default learn names tactile:xy: θ's sigma keeps its starting value (up to exp(log σ)), x and y moved
    assert model.weights.tactile[2] == pytest.approx(start.weights.tactile[2], rel=1e-12)
    assert model.weights.tactile[0] != start.weights.tactile[0] and model.weights.tactile[1] != start.weights.tactile[1]
    head_moved = any(not torch.equal(a, b) for (name, a), (_, b) in
                     zip(model.net.state_dict().items(), start.net.state_dict().items(), strict=True) if "head" in name)
    encoder_kept = all(torch.equal(a, b) for (name, a), (_, b) in
                       zip(model.net.state_dict().items(), start.net.state_dict().items(), strict=True)
                       if "head" not in name)
    assert head_moved and encoder_kept
    description = yaml.safe_load((out / "model.yaml").read_text())
    assert description["training"]["method"] == "leo" and description["training"]["sampler"] == "gn"
    last = result.history[-1]["val_rmse_translation_m"]
    assert description["validation"]["rmse_translation_m"] == pytest.approx(last)
    # the estimator runs with it
    from tactile_estimator.adapters.replay import replay_bag

    replayed = replay_bag(short_bags[0], load_estimator_config(), model, tmp_path / "replay")
    assert replayed.metrics["final_rmse_translation_m"] < 0.02


def test_leo_learns_the_contact_normal_sigma_and_keeps_its_head(short_bags: list[Path], tmp_path: Path) -> None:
    """learn: tactile_normal moves that family's σ alone; the normal head, whose readings the run graphs
    hold fixed, is what pretraining made."""
    out, init = tmp_path / "leo_normal", tmp_path / "init"
    shipped = TactileModel.load()
    shipped.weights.tactile_normal_corner = [0.5]  # a model with corner factors
    shipped.save(init)
    train(short_bags, short_bags[:1], out, load_estimator_config(),
          _config(sampler="gn", keep="last", learn=["tactile_normal"], learning_rate_sigma=0.2), init=init,
          command="test")
    model, start = TactileModel.load(out), TactileModel.load(init)
    assert model.weights.tactile_normal != start.weights.tactile_normal and model.weights.tactile_normal[0] > 0
    # A corner's σ moves with it, keeping its ratio to the face σ (runs.Theta.scale).
    assert model.weights.tactile_normal_corner[0] / model.weights.tactile_normal[0] == pytest.approx(
        start.weights.tactile_normal_corner[0] / start.weights.tactile_normal[0])
    assert model.weights.tactile == start.weights.tactile and model.weights.pushing == start.weights.pushing
    for (name, a), (_, b) in zip(model.net.state_dict().items(), start.net.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert "sigma_tactile_normal_d" in (out / LOG_CSV).read_text().splitlines()[0]


def test_every_method_runs_one_epoch(short_bags: list[Path], tmp_path: Path) -> None:
    for method, extra in (("supervised", {}), ("unroll", {"unroll": {"iterations": 2}}),
                          ("blackbox", {"blackbox": {"optimizer": "nelder-mead", "evaluations": 8}})):
        out = tmp_path / method
        result = train(short_bags, short_bags[:1], out, load_estimator_config(),
                       _config(method=method, sampler="gn", **extra))
        assert (out / "model.yaml").is_file() and len(result.history) >= 2, method
        if method == "blackbox":
            assert result.extra["evaluations"] == 8
            assert result.solver_calls == 1 + 8  # the start and every evaluation solve the one validation run
            assert result.history[-1]["loss"] <= 2.0  # never worse than the start, whose objective is 2
            start_sigma = TactileModel.load().weights.pushing
            assert [result.history[0][f"sigma_pushing_{a}"] for a in "xyz"] == pytest.approx(start_sigma), \
                "the start row has the σ it starts from, for the curves' σ panel"
            searched = TactileModel.load(out).weights.tactile
            assert searched[2] == pytest.approx(TactileModel.load().weights.tactile[2], rel=1e-12), "θ not searched"


def test_nan_loss_stops_keeping_the_last_good_checkpoint(short_bags: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "nan"
    config = _config(sampler="gn", epochs=2, learning_rate_sigma=10.0, learn=["tactile", "pushing"])
    config.learning_rate_sigma = 1e6  # past the loader's range: a step this long overflows the sigmas to NaN
    with pytest.raises(TrainingError, match=r"epoch 1, update 2 .*last good checkpoint"):
        train(short_bags, short_bags[:1], out, load_estimator_config(), config)
    state = torch.load(out / CHECKPOINT, weights_only=True)
    assert state["epoch"] == 0 and state["update"] == 0
    start = TactileModel.load().weights
    theta = Theta(TactileModel.load(), load_estimator_config(), ["tactile", "pushing"], persistence=True)
    theta.load_state_dict(state["theta"])
    np.testing.assert_allclose(theta.sigma("tactile").detach().numpy(), start.tactile, rtol=1e-12)
    assert TactileModel.load(out).weights.tactile == pytest.approx(start.tactile)


def test_a_bag_that_cannot_be_used_is_named_on_its_error(short_bags: list[Path], tmp_path: Path) -> None:
    """load_runs marks which bag failed (the watcher drops exactly that one), even where another
    bag's name contains the failing one's (run_1 and run_10)."""
    good = tmp_path / "run_10"
    shutil.copytree(short_bags[0], good)
    chatter = tmp_path / "run_1"
    with bags.BagWriter(chatter) as writer:
        writer.write("/chatter", messages.STRING, 1_000, messages.string_msg("hello"))
    with pytest.raises(DatasetError) as caught:
        load_runs([good, chatter], load_estimator_config(), TactileModel.load())
    assert caught.value.bag == str(chatter)


def test_training_bag_without_ground_truth_names_the_topic(short_bags: list[Path], tmp_path: Path) -> None:
    stripped = tmp_path / "no_truth"
    with bags.BagWriter(stripped) as writer:
        for message in bags.read_messages(short_bags[0]):
            if message.topic != "/object_ground_truth":
                writer.write(message.topic, message.msgtype, message.log_time_ns, message.msg)
    with pytest.raises(DatasetError, match="/object_ground_truth"):
        train([stripped], [], tmp_path / "out", load_estimator_config(), _config())


def test_trainer_parameters_are_checked_by_name() -> None:
    with pytest.raises(ConfigError, match="sampler"):
        load_trainer_config(None, {"sampler": "mcmc"})
    with pytest.raises(ConfigError, match="learn"):
        load_trainer_config(None, {"learn": ["everything"]})
    for bad in ("tactile:xq", "tactile:xx", "contact:x", "tactile_head:x", "tactile:"):
        with pytest.raises(ConfigError, match=f"learn: '{bad}'"):
            load_trainer_config(None, {"learn": [bad]})
    assert load_trainer_config(None, {"learn": ["pushing:z", "camera:xy"]}).learn == ["pushing:z", "camera:xy"]
    with pytest.raises(ConfigError, match="blackbox.evals: unknown"):
        load_trainer_config(None, {"blackbox": {"evals": 3}})
    with pytest.raises(ConfigError, match="persistence: 'white' is unknown; expected model or none"):
        load_trainer_config(None, {"persistence": "white"})
    with pytest.raises(ConfigError, match="keep: 'first' is unknown; expected best or last"):
        load_trainer_config(None, {"keep": "first"})
    config = load_trainer_config(ROOT / "config" / "trainer.yaml")
    assert config.method == "leo" and config.sampler == "gn" and config.keep == "best" and config.threads == 1
    # the shipped file and the defaults without it agree on what is fast (benchmarks/RESULTS.md)
    default = load_trainer_config(None)
    assert (default.sampler, default.threads) == (config.sampler, config.threads)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tactile_estimator.cli", "train", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    return torch.load(directory / "weights.pt", weights_only=True)


def test_sigint_then_resume_equals_an_uninterrupted_run(short_bags: list[Path], tmp_path: Path) -> None:
    common = [str(b) for b in short_bags] + ["--val", str(short_bags[0]), "--epochs", "3", "--sampler", "gn",
                                            "--samples", "4", "--trainer-config", str(tmp_path / "trainer.yaml")]
    # A steep σ rate overshoots LEO's fixed point, so the best epoch is neither the start nor the last.
    (tmp_path / "trainer.yaml").write_text(yaml.safe_dump({"trainer_node": {"ros__parameters": {
        "runs_per_update": 1, "solver_iterations": 5, "threads": 1, "learning_rate_sigma": 1.0}}}))
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    subprocess.run(_cli(*common, "--out", str(whole)), env=_env(), check=True, capture_output=True, timeout=300)

    process = subprocess.Popen(_cli(*common, "--out", str(parts)), env=_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (parts / CHECKPOINT).exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    stopped = torch.load(parts / CHECKPOINT, weights_only=True)
    assert (stopped["epoch"], stopped["update"]) < (3, 0), "the run stopped before its end"

    resumed = subprocess.run(_cli(*common, "--out", str(parts), "--resume"), env=_env(), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    a, b = _weights(whole), _weights(parts)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-12)
    wa = yaml.safe_load((whole / "model.yaml").read_text())["factor_weights"]
    wb = yaml.safe_load((parts / "model.yaml").read_text())["factor_weights"]
    for family in wa:
        assert wa[family] == pytest.approx(wb[family], rel=1e-12), family
    log_a, log_b = (whole / LOG_CSV).read_text().splitlines(), (parts / LOG_CSV).read_text().splitlines()
    assert len(log_a) == len(log_b) == 5
    # keep: best (the default) wrote the epoch with the best validation score, here not the last one, and
    # the resumed run, which saw only part of the history itself, chose the same
    rows = list(csv.DictReader(log_b))
    scores = [validation_score(row, rows[0]) for row in rows]
    best = rows[int(np.argmin(scores))]
    assert best is not rows[-1] and best is not rows[0], scores
    description = yaml.safe_load((parts / "model.yaml").read_text())
    assert description["training"]["epochs"] == int(best["epoch"]) and description["training"]["keep"] == "best"
    assert description["validation"]["rmse_translation_m"] == pytest.approx(float(best["val_rmse_translation_m"]))
    for family in ("tactile", "pushing"):
        kept = [float(best[f"sigma_{family}_{axis}"]) for axis in "xyz"]
        assert wb[family] == pytest.approx(kept, rel=1e-9), family
        assert wb[family] != pytest.approx([float(rows[-1][f"sigma_{family}_{a}"]) for a in "xyz"], rel=1e-6)


def test_two_gloo_processes_match_one(short_bags: list[Path], tmp_path: Path) -> None:
    """Data-parallel under torchrun: the gradients of the two halves of each update are summed."""
    (tmp_path / "trainer.yaml").write_text(yaml.safe_dump({"trainer_node": {"ros__parameters": {
        "runs_per_update": 2, "solver_iterations": 5, "threads": 1, "sampler": "gn", "samples": 4, "epochs": 2}}}))
    common = [str(b) for b in short_bags] + ["--val", str(short_bags[0]), "--trainer-config",
                                            str(tmp_path / "trainer.yaml")]
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(_cli(*common, "--out", str(one)), env=_env(), check=True, capture_output=True, timeout=300)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                "-m", "tactile_estimator.cli", "train", *common, "--out", str(two)]
    done = subprocess.run(launcher, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    description = yaml.safe_load((two / "model.yaml").read_text())
    assert description["training"]["processes"] == 2
    a, b = _weights(one), _weights(two)
    for key in a:
        # the same update up to the order of floating-point sums (float32 network)
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    wa = yaml.safe_load((one / "model.yaml").read_text())["factor_weights"]
    assert wa["tactile"] == pytest.approx(description["factor_weights"]["tactile"], rel=1e-6)
    assert wa["tactile"] != pytest.approx(TactileModel.load().weights.tactile, rel=1e-6), "training moved θ"


def test_cli_train_refuses_a_previous_run_and_resumes_a_finished_one_at_once(
        short_bags: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tactile_estimator import cli
    from tactile_estimator.learning import trainer

    (tmp_path / "trainer.yaml").write_text(yaml.safe_dump({"trainer_node": {"ros__parameters": {
        "runs_per_update": 1, "solver_iterations": 5}}}))
    out = tmp_path / "out"
    argv = ["train", *map(str, short_bags), "--val", str(short_bags[0]), "--epochs", "1", "--samples", "4",
            "--trainer-config", str(tmp_path / "trainer.yaml"), "--out", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("start: validation RMSE") and printed[1].startswith("epoch 1: loss ")
    assert not any("nan" in line for line in printed)
    checkpoint = (out / CHECKPOINT).read_bytes()

    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "holds a previous run" in captured.err and "--overwrite" in captured.err
    assert (out / CHECKPOINT).read_bytes() == checkpoint

    def no_trainer(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a finished run is not loaded again")

    with monkeypatch.context() as patch:
        patch.setattr(trainer, "Trainer", no_trainer)
        assert cli.main([*argv, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "already finished at epoch 1 of 1" in printed and "resuming" not in printed
    assert (out / CHECKPOINT).read_bytes() == checkpoint

    assert cli.main([*argv, "--resume", "--epochs", "2"]) == 0  # more epochs: the run goes on
    assert "resuming at epoch 2, update 1" in capsys.readouterr().out
    assert cli.main([*argv, "--overwrite"]) == 0
    assert len((out / LOG_CSV).read_text().splitlines()) == 3  # header, start, epoch 1: replaced, not resumed
