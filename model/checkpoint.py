"""A checkpoint is a directory: weights plus the three small JSON files that rebuild them.

weights.pt           state_dict of the detector
model_config.json    ModelConfig (architecture and sizes)
feature_config.json  FeatureConfig (with the reference-signal check)
metadata.json        decision threshold, calibration, run name, version and anything training adds

The calibration (model.calibration.Calibration, under metadata.json's "calibration") maps the
detector's logit to a calibrated P(real). A checkpoint saved before calibration existed has none
and loads as the identity, keeping the threshold it was saved with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from model.calibration import Calibration
from model.detectors import Detector, ModelConfig, build_detector
from model.features import FeatureConfig, FeatureConfigMismatch

WEIGHTS_FILE = "weights.pt"
MODEL_CONFIG_FILE = "model_config.json"
FEATURE_CONFIG_FILE = "feature_config.json"
METADATA_FILE = "metadata.json"
CHECKPOINT_FILES = (WEIGHTS_FILE, MODEL_CONFIG_FILE, FEATURE_CONFIG_FILE, METADATA_FILE)
DEFAULT_THRESHOLD = 0.5
CALIBRATION_KEY = "calibration"


def save_checkpoint(
    directory: Path,
    model: Detector,
    model_config: ModelConfig,
    feature_config: FeatureConfig,
    metadata: dict[str, Any] | None = None,
    calibration: Calibration | None = None,
) -> None:
    """Write the four files; `calibration`, if given, goes into metadata.json (replacing any there)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    torch.save(state, directory / WEIGHTS_FILE)
    model_config.save(directory / MODEL_CONFIG_FILE)
    feature_config.with_reference().save(directory / FEATURE_CONFIG_FILE)
    metadata = {"threshold": DEFAULT_THRESHOLD, **(metadata or {})}
    if calibration is not None:
        metadata[CALIBRATION_KEY] = calibration.to_dict()
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")


def load_checkpoint(
    directory: Path, device: str | torch.device = "cpu"
) -> tuple[Detector, FeatureConfig, dict[str, Any]]:
    """Rebuild the detector in eval mode; refuse it if this code's features differ from its training's."""
    directory = Path(directory)
    missing = [name for name in CHECKPOINT_FILES if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(f"checkpoint {directory} lacks {', '.join(missing)}")
    feature_config = FeatureConfig.load(directory / FEATURE_CONFIG_FILE)
    feature_config.check_compatible()
    model_config = ModelConfig.load(directory / MODEL_CONFIG_FILE)
    if model_config.n_mels != feature_config.n_mels:
        raise FeatureConfigMismatch(
            f"model expects {model_config.n_mels} mel bins but the feature config gives {feature_config.n_mels}"
        )
    model = build_detector(model_config)
    state = torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    metadata = json.loads((directory / METADATA_FILE).read_text())
    return model.to(device).eval(), feature_config, metadata


def checkpoint_calibration(metadata: dict[str, Any]) -> Calibration:
    """The calibration a checkpoint's metadata records; the identity for checkpoints without one."""
    return Calibration.from_dict(metadata.get(CALIBRATION_KEY))
