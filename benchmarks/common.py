"""Shared by the benchmark scripts: simulated bags on demand, and appending to RESULTS.md."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
CACHE = ROOT / "build" / "bench"


def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def simulated_bags(name: str, shapes: list[str], runs_per_shape: int, steps: int, seed: int) -> list[Path]:
    """Simulate (once, then reuse) runs_per_shape runs of each shape with seeds from seed upwards."""
    from tactile_estimator.objects import DEFAULT_SIZES, Shape
    from tactile_estimator.sim.pushing import simulate_run
    from tactile_estimator.sim.recording import write_run_bag

    out = CACHE / name
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for r in range(runs_per_shape):
        for s, kind in enumerate(shapes):
            run_seed = seed + r * len(shapes) + s
            path = out / f"run_{run_seed:04d}_{kind}_{steps}"
            if not path.exists():
                run = simulate_run(Shape(kind, DEFAULT_SIZES[kind]), steps=steps, seed=run_seed)
                write_run_bag(run, path)
            paths.append(path)
    return paths


def append_results(title: str, body: str) -> None:
    module = "benchmarks." + Path(sys.argv[0]).stem
    command = " ".join(["python -m", module, *sys.argv[1:]])
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    text = f"\n## {title}\n\n{stamp} · {machine()}\n\nCommand: `{command}`\n\n{body}\n"
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nEach section is appended by the script named in it.\n")
    with RESULTS.open("a") as handle:
        handle.write(text)
    print(text)
