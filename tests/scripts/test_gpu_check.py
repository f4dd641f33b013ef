"""scripts/gpu_check.py: its checks pass on the CPU, and it refuses a machine without CUDA clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from scripts import gpu_check


def test_every_check_passes_against_the_cpu_and_is_reported(tmp_path: Path) -> None:
    report_file = tmp_path / "report.json"
    with pytest.raises(SystemExit) as exit_info:
        gpu_check.main(["--device", "cpu", "--report", str(report_file)])
    report = json.loads(report_file.read_text())
    assert exit_info.value.code == 0, report
    assert {"training", "scoring_parity", "handler", "throughput"} <= report.keys()
    assert report["training"]["dev_eer"] <= gpu_check.TOY_DEV_EER_LIMIT
    assert report["handler"]["worker_device"] == "cpu"
    assert report["scoring_parity"]["max_gap"] == 0.0  # same device, same kernels
    assert report["throughput"]["clips_per_second"]["cpu"] > 0


def test_a_machine_without_cuda_is_told_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="no CUDA device"):
        gpu_check.main(["--report", str(tmp_path / "report.json")])
    assert not (tmp_path / "report.json").exists()
