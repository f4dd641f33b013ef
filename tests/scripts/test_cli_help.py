"""Every operator command imports cleanly and answers --help (a broken import fails here first)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMANDS = (
    "training.train", "training.evaluate", "training.build_dataset", "training.prepare", "training.ensemble_size",
    "scripts.archive", "scripts.serve", "scripts.torchserve", "scripts.manage",
    "scripts.bench", "scripts.load_test", "scripts.demo_samples", "scripts.gpu_check",
)  # fmt: skip


@pytest.mark.parametrize("module", COMMANDS)
def test_command_answers_help(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout
