"""LEO's energy-based regression experiment (paper appendix A, Figures 1 and 2): learn E_θ(x, y) for y = x sin x.

What is reproduced
------------------
Training data: 100 points x evenly spaced on [0, 2π], y = x sin x. The model is an energy
E_θ(x, y) = f_θ(x, y)², and a prediction is ŷ(x) = argmin_y E_θ(x, y) found by an inner optimiser
started at y₀. As in the original (leopy/scripts/examples/regression.py and
leopy/config/examples/regression.yaml in github.com/psodhi/leo), f_θ is a small network on random
Fourier features: the inputs are scaled to x/2π and (y + 7)/14, encoded by 128 fixed Gaussian
frequencies b ~ N(0, I) as [cos 2π b·z, sin 2π b·z], followed by Linear(256, 128), Softplus,
Linear(128, 128), Softplus, Linear(128, 1). Three ways to learn θ, each with y₀ = 0 and y₀ = the
ground truth:

- unrolled gradient descent: 10 steps y ← y − 10⁻³ ∂E/∂y, differentiated through; loss
  (ŷ − y)²; Adam lr 10⁻³.
- unrolled Gauss-Newton: 10 steps y ← y − f/(∂f/∂y) (Gauss-Newton on the scalar residual f),
  differentiated through; loss (ŷ − y)²; Adam lr 10⁻³. The step is clamped to ±14 (the y span)
  so that a flat residual cannot send y to infinity; the original has no guard.
- LEO: 10 Levenberg-Marquardt-damped Gauss-Newton steps (not differentiated) give ŷ; samples
  y_s ~ N(ŷ, v) with v the Laplace variance 1/(∂f/∂y)² divided by a temperature of 10⁹ and clamped
  to [10⁻³, 10] (so v = 10⁻³ here, as in the original configuration); loss
  E_θ(x, y) − mean_s E_θ(x, y_s); Adam lr 10⁻⁴. Its iterates are kept in the y domain [−7, 7]
  that the network's input scaling covers: outside it the energy is never trained, and without
  the bound the damped steps can run off to |y| of several hundred, where the learned energy
  happens to be lower.

Where this differs from the original: minibatches of 10 training points for 5000 updates (the
original makes 5000 updates of one point; a minibatch costs about the same time on a CPU, and the
gradient is less noisy), 10 samples per point (the original's 100 samples per update), float32. Every method has
the gradient norm clipped to 1 and starts from the same network (seed 0).

Errors are mean squared errors over 256 x on [0, 2π]: of the method's own inner optimiser from
its own y₀, of the same optimiser started at y₀ = 0, and of the global minimiser of the learned
energy on a grid of 701 y in [−7, 7] (what the energy says, whatever the optimiser). The PNGs show
the learned energy over (x, y), each column normalised to [0, 1] and shown on a log scale clipped
at −10 (lighter is lower energy, as in the paper's Figures 1 and 2), with the ground-truth curve in
green and the method's predictions from its own y₀ dashed.

Usage: python -m benchmarks.leo_regression [--out DIR] [--updates 5000]
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

Y_RANGE = (-7.0, 7.0)
METHODS = ("unrolled GD", "unrolled GN", "LEO")
INITS = ("zero", "gt")


def target(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sin(x)


class EnergyNet(nn.Module):
    """f_θ(x, y) on Gaussian random Fourier features; the energy is f²."""

    def __init__(self, n_hidden: int = 128, n_freq: int = 128, sigma: float = 1.0, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("freq", sigma * torch.randn(n_freq, 2, generator=gen))
        torch.manual_seed(seed)
        self.net = nn.Sequential(
            nn.Linear(2 * n_freq, n_hidden),
            nn.Softplus(),
            nn.Linear(n_hidden, n_hidden),
            nn.Softplus(),
            nn.Linear(n_hidden, 1),
        )

    def residual(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z = torch.stack([x / (2.0 * math.pi), (y - Y_RANGE[0]) / (Y_RANGE[1] - Y_RANGE[0])], dim=-1)
        proj = 2.0 * math.pi * z @ self.freq.T
        return self.net(torch.cat([torch.cos(proj), torch.sin(proj)], dim=-1)).squeeze(-1)

    def energy(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.residual(x, y) ** 2


def initial_y(x: torch.Tensor, init: str) -> torch.Tensor:
    return target(x).clone() if init == "gt" else torch.zeros_like(x)


def unrolled_gd(
    net: EnergyNet, x: torch.Tensor, y0: torch.Tensor, steps: int = 10, lr: float = 1e-3, create_graph=True
):
    y = y0.clone().requires_grad_(True)
    for _ in range(steps):
        (g,) = torch.autograd.grad(net.energy(x, y).sum(), y, create_graph=create_graph)
        y = y - lr * g
        if not create_graph:
            y = y.detach().requires_grad_(True)
    return y


def unrolled_gn(net: EnergyNet, x: torch.Tensor, y0: torch.Tensor, steps: int = 10, create_graph=True):
    """Gauss-Newton on the scalar residual, y ← y − f/(∂f/∂y), the step clamped to the y span."""
    y = y0.clone().requires_grad_(True)
    span = Y_RANGE[1] - Y_RANGE[0]
    for _ in range(steps):
        f = net.residual(x, y)
        (fp,) = torch.autograd.grad(f.sum(), y, create_graph=create_graph)
        fp = torch.where(fp.abs() < 1e-12, torch.full_like(fp, 1e-12), fp)
        y = y - torch.clamp(f / fp, -span, span)
        if not create_graph:
            y = y.detach().requires_grad_(True)
    return y


def lm_gauss_newton(net: EnergyNet, x: torch.Tensor, y0: torch.Tensor, steps: int = 10):
    """Levenberg-Marquardt on the scalar residual, per element, iterates kept in the y domain [−7, 7].

    Returns ŷ and 1/(∂f/∂y)² at ŷ, without a graph.
    """
    y = y0.detach().clone()
    damping = torch.ones_like(y)
    for _ in range(steps):
        yv = y.clone().requires_grad_(True)
        f = net.residual(x, yv)
        (fp,) = torch.autograd.grad(f.sum(), yv)
        f, fp = f.detach(), fp.detach()
        h = fp * fp
        trial = torch.clamp(y - fp * f / (h * (1.0 + damping) + 1e-12), *Y_RANGE)
        with torch.no_grad():
            better = net.energy(x, trial) < f * f
        y = torch.where(better, trial, y)
        damping = torch.where(better, damping / 10.0, damping * 10.0)
    yv = y.clone().requires_grad_(True)
    (fp,) = torch.autograd.grad(net.residual(x, yv).sum(), yv)
    return y, 1.0 / (fp.detach() ** 2 + 1e-12)


def predict(net: EnergyNet, method: str, x: torch.Tensor, init: str) -> torch.Tensor:
    y0 = initial_y(x, init)
    if method == "unrolled GD":
        return unrolled_gd(net, x, y0, create_graph=False).detach()
    if method == "unrolled GN":
        return unrolled_gn(net, x, y0, create_graph=False).detach()
    return lm_gauss_newton(net, x, y0)[0]


def energy_argmin(net: EnergyNet, x: torch.Tensor, n_y: int = 701) -> torch.Tensor:
    ys = torch.linspace(*Y_RANGE, n_y)
    with torch.no_grad():
        e = net.energy(x[:, None].expand(-1, n_y), ys[None, :].expand(len(x), -1))
    return ys[e.argmin(dim=1)]


@dataclass
class RunResult:
    method: str
    init: str
    net: EnergyNet
    wall: float
    mse_own: float
    mse_from_zero: float
    mse_argmin: float


def train(
    method: str,
    init: str,
    updates: int = 5000,
    batch: int = 10,
    seed: int = 0,
    n_train: int = 100,
    n_samples: int = 10,
    temperature: float = 1e9,
    min_var: float = 1e-3,
    max_var: float = 10.0,
) -> RunResult:
    torch.manual_seed(seed)
    net = EnergyNet(seed=seed)
    x_train = torch.linspace(0.0, 2.0 * math.pi, n_train, dtype=torch.float32)
    y_train = target(x_train)
    lr = 1e-4 if method == "LEO" else 1e-3
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(updates):
        j = torch.as_tensor(rng.integers(n_train, size=batch))
        x, y = x_train[j], y_train[j]
        y0 = initial_y(x, init)
        if method == "unrolled GD":
            loss = ((unrolled_gd(net, x, y0) - y) ** 2).mean()
        elif method == "unrolled GN":
            loss = ((unrolled_gn(net, x, y0) - y) ** 2).mean()
        elif method == "LEO":
            y_hat, var = lm_gauss_newton(net, x, y0)
            var = torch.clamp(var / temperature, min_var, max_var)
            samples = y_hat + var.sqrt() * torch.randn(n_samples, batch, dtype=torch.float32)
            loss = net.energy(x, y).mean() - net.energy(x.expand(n_samples, batch), samples).mean()
        else:
            raise ValueError(method)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
    wall = time.perf_counter() - start
    x_eval = torch.linspace(0.0, 2.0 * math.pi, 256, dtype=torch.float32)
    y_eval = target(x_eval)

    def mse(pred: torch.Tensor) -> float:
        return float(((pred - y_eval) ** 2).mean())

    return RunResult(
        method,
        init,
        net,
        wall,
        mse(predict(net, method, x_eval, init)),
        mse(predict(net, method, x_eval, "zero")),
        mse(energy_argmin(net, x_eval)),
    )


def energy_image(net: EnergyNet, nx: int = 200, ny: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The paper's view: per x, (E − min)/(max − min), log, clipped to [−10, 0]."""
    xs = torch.linspace(0.0, 2.0 * math.pi, nx, dtype=torch.float32)
    ys = torch.linspace(*Y_RANGE, ny, dtype=torch.float32)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    with torch.no_grad():
        z = net.energy(gx, gy).numpy().astype(np.float64)
    zmin, zmax = z.min(axis=0, keepdims=True), z.max(axis=0, keepdims=True)
    z = (z - zmin) / np.maximum(zmax - zmin, 1e-300)
    return gx.numpy(), gy.numpy(), np.clip(np.log(z + 1e-6), -10.0, 0.0)


def plot_energies(results: list[RunResult], path: Path, inits: tuple[str, ...] = INITS) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(inits), len(METHODS), figsize=(4.0 * len(METHODS), 2.9 * len(inits)), squeeze=False)
    x_line = torch.linspace(0.0, 2.0 * math.pi, 256, dtype=torch.float32)
    for row, init in enumerate(inits):
        for col, method in enumerate(METHODS):
            ax = axes[row, col]
            res = next(r for r in results if r.method == method and r.init == init)
            gx, gy, z = energy_image(res.net)
            ax.contourf(gx, gy, z, levels=10, cmap="Blues", vmin=-10.0, vmax=0.0)
            ax.plot(x_line.numpy(), target(x_line).numpy(), color="darkgreen", lw=2, label="x sin x")
            pred = predict(res.net, method, x_line, init).numpy()
            ax.plot(x_line.numpy(), pred, color="tab:orange", ls="--", lw=1.5, label="prediction")
            ax.set_xlim(0, 2 * math.pi)
            ax.set_ylim(*Y_RANGE)
            ax.set_title(f"{method}, y₀ = {'0' if init == 'zero' else 'ground truth'}", fontsize=10)
            if row == len(inits) - 1:
                ax.set_xlabel("x")
            if col == 0:
                ax.set_ylabel("y")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def markdown_table(results: list[RunResult]) -> str:
    rows = [
        "| method | y₀ | MSE, own optimiser from y₀ | MSE, same optimiser from y₀ = 0 | MSE, argmin of the energy "
        "| wall s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        rows.append(
            f"| {r.method} | {'0' if r.init == 'zero' else 'ground truth'} | {r.mse_own:.3f} | {r.mse_from_zero:.3f} "
            f"| {r.mse_argmin:.3f} | {r.wall:.1f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/bench/leo_regression"))
    parser.add_argument("--updates", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    total = time.perf_counter()
    results = []
    for init in INITS:
        for method in METHODS:
            res = train(method, init, updates=args.updates, seed=args.seed)
            print(
                f"{method}, y0 {init}: MSE {res.mse_own:.3f} (from 0: {res.mse_from_zero:.3f}, "
                f"energy argmin: {res.mse_argmin:.3f}), {res.wall:.1f} s"
            )
            results.append(res)
    plot_energies(results, args.out / "leo_regression_energy.png")
    for init in INITS:
        plot_energies(results, args.out / f"leo_regression_energy_init_{init}.png", inits=(init,))
    print()
    print(markdown_table(results))
    print()
    print(f"figures in {args.out}; total wall time {time.perf_counter() - total:.1f} s")


if __name__ == "__main__":
    main()
