"""The tactile network: each frame is encoded once; a pair head maps two codes to a relative pose.

Input: the tactile image minus the gel's background (what the object pressed in, not the sensor's
own colour field), downsampled by ``downsample`` with area averaging. Output of the pair head:
T̂_ij = s_i⁻¹ s_j, the sensor's motion in the object frame between the two frames (factors/tactile.py),
scaled back to metres and radians by ``output_scale``.

A model directory holds ``weights.pt`` (a state dict, loaded with ``weights_only=True``) and
``model.yaml`` (architecture, input size, normalisation, learned factor weights, provenance).
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import yaml
from torch import nn

from tactile_estimator.config import one_line, positive_number, quote, safe_yaml, yaml_reason
from tactile_estimator.io.atomic import atomic_write_bytes, atomic_write_text

WEIGHTS = "weights.pt"
DESCRIPTION = "model.yaml"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "models"


class ModelError(ValueError):
    """A model directory is missing, incomplete or inconsistent; the message names the file."""


@dataclass
class Architecture:
    image_height: int = 320
    image_width: int = 240
    downsample: int = 4
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 64])
    embedding: int = 64
    head_hidden: int = 128
    input_scale: float = 1.0 / 32.0  # grey-level differences are mostly within ±32
    output_scale: list[float] = field(default_factory=lambda: [0.005, 0.005, 0.05])
    # The per-frame head (factors/tactile_normal.py): its hidden width, 0 for a model without one
    # (models made before it).
    normal_hidden: int = 0


@dataclass
class FactorWeights:
    """Standard deviations of the learned factors: tactile (x, y, θ) and quasi-static pushing.

    The families the estimator's configuration owns (contact, ee_prior, camera) are empty unless
    training learned them; a learned value replaces the configured one.
    """

    tactile: list[float] = field(default_factory=lambda: [0.002, 0.004, 0.02])
    tactile_normal: list[float] = field(default_factory=list)  # one σ (rad), where the network has a normal head
    # One σ (rad) for the frames the normal head calls a rectangle's corner, whose readings err more;
    # empty: those frames get no contact-normal factor (models made before it).
    tactile_normal_corner: list[float] = field(default_factory=list)
    pushing: list[float] = field(default_factory=lambda: [0.001, 0.001, 0.001])
    contact: list[float] = field(default_factory=list)
    ee_prior: list[float] = field(default_factory=list)
    camera: list[float] = field(default_factory=list)


class TactileNet(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 5  # RGB difference and two pixel-coordinate channels: where the imprint lies matters
        for out_ch in arch.channels:
            layers += [nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU()]
            in_ch = out_ch
        # Flatten a coarse map rather than pool it away: the imprint's position and angle are the signal.
        self.encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool2d((5, 4)), nn.Flatten())
        self.project = nn.Linear(in_ch * 20, arch.embedding)
        h, w = arch.image_height // arch.downsample, arch.image_width // arch.downsample
        rows, cols = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        self.register_buffer("coordinates", torch.stack([rows, cols])[None], persistent=False)
        self.head = nn.Sequential(
            nn.Linear(3 * arch.embedding, arch.head_hidden),
            nn.ReLU(),
            nn.Linear(arch.head_hidden, arch.head_hidden),
            nn.ReLU(),
            nn.Linear(arch.head_hidden, 3),
        )
        self.register_buffer("output_scale", torch.tensor(arch.output_scale, dtype=torch.float32))
        # (cos δ, sin δ) for smooth shapes and (cos 4δ, sin 4δ) for a rectangle, whose reading is known modulo
        # a quarter turn: an angle as a point on the circle has no seam to learn across. The fifth output says
        # whether the frame shows a rectangle's corner, where the reading is far less certain (pretrain.py).
        self.normal_head = None
        if arch.normal_hidden > 0:
            self.normal_head = nn.Sequential(
                nn.Linear(arch.embedding, arch.normal_hidden), nn.ReLU(), nn.Linear(arch.normal_hidden, 5))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) normalised difference images -> (B, embedding)."""
        coordinates = self.coordinates.expand(images.shape[0], -1, -1, -1)
        return self.project(self.encoder(torch.cat([images, coordinates], dim=1)))

    def pair(self, code_i: torch.Tensor, code_j: torch.Tensor) -> torch.Tensor:
        """(M, E), (M, E) -> (M, 3) relative pose in metres and radians."""
        return self.head(torch.cat([code_i, code_j, code_j - code_i], dim=-1)) * self.output_scale

    def normal_outputs(self, codes: torch.Tensor,
                       period_count: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, E) -> (M, 2) ≈ (cos mδ, sin mδ) for m = ``period_count`` (1 or 4, per frame or for all), and
        (M,) the logit of "a rectangle's corner is in contact"."""
        out = self.normal_head(codes)
        rect = torch.as_tensor(period_count, device=codes.device) == 4
        return torch.where(rect.reshape(-1, 1) if rect.dim() else rect, out[:, 2:4], out[:, :2]), out[:, 4]

    def normal(self, codes: torch.Tensor, period_count: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, E) -> (M,) the contact normal's deviation δ in the sensor frame (rad), folded by m, and
        (M,) whether the frame shows a rectangle's corner (always False for m = 1)."""
        vector, corner_logit = self.normal_outputs(codes, period_count)
        m = torch.as_tensor(period_count, dtype=vector.dtype, device=vector.device)
        return torch.atan2(vector[:, 1], vector[:, 0]) / m, (corner_logit > 0) & (m == 4)


def preprocess(images: np.ndarray, background: np.ndarray, arch: Architecture) -> np.ndarray:
    """uint8 (B, H, W, 3) frames and their background -> float32 (B, 3, h, w) network input."""
    diff = images.astype(np.float32) - background.astype(np.float32)
    h, w = arch.image_height // arch.downsample, arch.image_width // arch.downsample
    small = np.stack([cv2.resize(d, (w, h), interpolation=cv2.INTER_AREA) for d in diff])
    return np.ascontiguousarray(small.transpose(0, 3, 1, 2) * arch.input_scale)


class TactileModel:
    """A trained network with its description; the estimator's only view of the learned parts."""

    def __init__(self, arch: Architecture, weights: FactorWeights, net: TactileNet | None = None,
                 description: dict[str, Any] | None = None) -> None:
        self.arch = arch
        self.weights = weights
        self.net = net if net is not None else TactileNet(arch)
        self.net.eval()
        self.description = description or {}

    @property
    def persistence(self) -> dict[str, list[float]]:
        """Per family: the lag-one correlation of its error that its σ was inflated for (model.yaml's
        ``factor_persistence``, measured by pretraining); a family absent was not inflated."""
        return {k: [float(v) for v in rho] for k, rho in (self.description.get("factor_persistence") or {}).items()}

    @classmethod
    def load(cls, directory: str | Path | None = None) -> TactileModel:
        directory = Path(directory) if directory else DEFAULT_MODEL_DIR
        desc_path, weights_path = directory / DESCRIPTION, directory / WEIGHTS
        for path in (desc_path, weights_path):
            if not path.is_file():
                raise ModelError(f"model directory {directory} lacks {path.name}")
        try:
            # Bounded like a parameter file: no alias bomb or deep nesting, and a value Python
            # refuses (month 13, a 5000-digit integer) is a YAMLError.
            description = safe_yaml(desc_path.read_text())
            if not isinstance(description, dict):
                raise ModelError(f"{desc_path}: expected a mapping with architecture and factor_weights, "
                                 f"not {type(description).__name__}")
            for section in ("architecture", "factor_weights"):
                if not isinstance(description.get(section), dict):
                    raise ModelError(f"{desc_path}: {section} is missing or not a mapping")
            arch = Architecture(**description["architecture"])
            weights = FactorWeights(**description["factor_weights"])
        except yaml.YAMLError as error:
            raise ModelError(f"{desc_path}: {yaml_reason(error)}") from None
        except (TypeError, UnicodeDecodeError) as error:
            raise ModelError(f"{desc_path}: {one_line(str(error), 300)}") from error
        _check_architecture(desc_path, arch)
        _check_factor_weights(desc_path, weights)
        _check_normal_head(desc_path, arch, weights)
        _check_persistence(desc_path, description.get("factor_persistence"))
        net = TactileNet(arch)
        try:
            state = torch.load(weights_path, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except Exception as error:  # torch raises pickle, zip and shape errors alike for a bad file
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ModelError(f"{weights_path}: cannot load weights: {reason[:300]}") from error
        bad = [name for name, value in state.items() if value.is_floating_point() and not torch.isfinite(value).all()]
        if bad:
            raise ModelError(f"{weights_path}: weights {', '.join(bad[:3])} are not finite")
        return cls(arch, weights, net, description)

    def save(self, directory: str | Path, **provenance: Any) -> None:
        """Write weights and model.yaml atomically (temporary file, then rename)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        description = dict(self.description)
        description.update(provenance)
        description["architecture"] = asdict(self.arch)
        description["factor_weights"] = asdict(self.weights)
        # Saved through a buffer: torch names the archive inside after the file it writes, and the
        # temporary file's name is random, so the same weights would give different bytes.
        buffer = io.BytesIO()
        torch.save(self.net.state_dict(), buffer)
        atomic_write_bytes(directory / WEIGHTS, buffer.getvalue())
        atomic_write_text(directory / DESCRIPTION, yaml.safe_dump(description, sort_keys=False))
        self.description = description

    def encode(self, images: np.ndarray, background: np.ndarray) -> np.ndarray:
        return self.encode_input(self.network_input(images, background))

    def network_input(self, images: np.ndarray, background: np.ndarray) -> np.ndarray:
        """uint8 (B, H, W, 3) frames -> the network's input; the frame size must be the model's."""
        if images.shape[1:3] != (self.arch.image_height, self.arch.image_width):
            raise ModelError(
                f"tactile image is {images.shape[1]}x{images.shape[2]} but the model takes "
                f"{self.arch.image_height}x{self.arch.image_width}"
            )
        return preprocess(images, background, self.arch)

    @torch.no_grad()
    def encode_input(self, inputs: np.ndarray) -> np.ndarray:
        return self.net.encode(torch.from_numpy(inputs)).numpy()

    @property
    def has_normal_head(self) -> bool:
        return self.net.normal_head is not None

    @torch.no_grad()
    def contact_normals(self, codes: np.ndarray, period_count: int) -> tuple[np.ndarray, np.ndarray]:
        """(M, E) codes -> (M,) float64 normal deviations δ̂ for a shape of that symmetry
        (factors/tactile_normal.py), and (M,) bool: the frame shows a rectangle's corner."""
        deviation, corner = self.net.normal(torch.from_numpy(codes), period_count)
        return deviation.double().numpy(), corner.numpy()

    @torch.no_grad()
    def relative_poses(self, codes_i: np.ndarray, codes_j: np.ndarray) -> np.ndarray:
        return self.net.pair(torch.from_numpy(codes_i), torch.from_numpy(codes_j)).double().numpy()


MAX_WIDTH = 4096  # no layer of this network needs more: a larger value is a broken file, not a model


def _check_architecture(path: Path, arch: Architecture) -> None:
    """Every architecture value in its range, named with the file on a one-line error."""
    def positive_int(name: str, value: object, largest: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= largest:
            raise ModelError(f"{path}: architecture.{name} must be an integer in [1, {largest}], not {quote(value)}")

    positive_int("image_height", arch.image_height, 4096)
    positive_int("image_width", arch.image_width, 4096)
    positive_int("downsample", arch.downsample, min(arch.image_height, arch.image_width))
    positive_int("embedding", arch.embedding, MAX_WIDTH)
    positive_int("head_hidden", arch.head_hidden, MAX_WIDTH)
    if not isinstance(arch.channels, list) or not arch.channels:
        raise ModelError(f"{path}: architecture.channels must be a list of layer widths, not {quote(arch.channels)}")
    for width in arch.channels:
        positive_int("channels", width, MAX_WIDTH)
    for name, values, count in (("input_scale", [arch.input_scale], 1), ("output_scale", arch.output_scale, 3)):
        if not isinstance(values, list) or len(values) != count or not all(positive_number(v) for v in values):
            raise ModelError(f"{path}: architecture.{name} must be {count} positive number(s), not {quote(values)}")


def _check_factor_weights(path: Path, weights: FactorWeights) -> None:
    """σ lists of the right length, finite and positive (empty where the configuration owns the family)."""
    lengths = {"tactile": (3,), "pushing": (3,), "contact": (0, 1), "ee_prior": (0, 3), "camera": (0, 3),
               "tactile_normal": (0, 1), "tactile_normal_corner": (0, 1)}
    for family, allowed in lengths.items():
        sigmas = getattr(weights, family)
        ok = isinstance(sigmas, list) and len(sigmas) in allowed and all(positive_number(v) for v in sigmas)
        if not ok:
            count = " or ".join(str(n) for n in allowed)
            raise ModelError(f"{path}: factor_weights.{family} must be {count} positive σ, not {quote(sigmas)}")


def _check_persistence(path: Path, persistence: object) -> None:
    """``factor_persistence``, where present: family names to lists of lag-one correlations in [-1, 1]."""
    if persistence is None:
        return
    if not isinstance(persistence, dict):
        raise ModelError(f"{path}: factor_persistence must be a mapping of families to correlations, "
                         f"not {quote(persistence)}")
    for family, rho in persistence.items():
        if not isinstance(family, str) or not isinstance(rho, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and -1 <= v <= 1 for v in rho):
            raise ModelError(f"{path}: factor_persistence: {quote(family)} must name a family and list its "
                             f"correlations in [-1, 1], not {quote(rho)}")


def _check_normal_head(path: Path, arch: Architecture, weights: FactorWeights) -> None:
    """A normal head needs its σ; a σ without a head is a model from elsewhere. (The σ's own values
    are _check_factor_weights'.)"""
    hidden = arch.normal_hidden
    if isinstance(hidden, bool) or not isinstance(hidden, int) or not 0 <= hidden <= MAX_WIDTH:
        raise ModelError(f"{path}: architecture.normal_hidden must be an integer in [0, {MAX_WIDTH}], "
                         f"not {quote(hidden)}")
    sigma = weights.tactile_normal
    if hidden and not sigma:
        raise ModelError(f"{path}: factor_weights.tactile_normal must be one positive σ (rad) for the normal head, "
                         f"not {quote(sigma)}")
    for name in ("tactile_normal", "tactile_normal_corner"):
        if not hidden and getattr(weights, name):
            raise ModelError(f"{path}: factor_weights.{name} is set but architecture.normal_hidden is 0 "
                             "(the network has no normal head)")
