"""scripts/archive.py: what a .mar holds, how it is named, and that a broken one never reaches the store."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml

from model.checkpoint import CHECKPOINT_FILES
from scripts import archive
from scripts.archive import ArchiveError, ServingSettings, build_archive
from tests.conftest import make_checkpoint

MODEL_FILES = {f"model/{p.name}" for p in Path(archive.MODEL_PACKAGE).glob("*.py")}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("archive") / "checkpoint", version="4.2", seed=3)


@pytest.fixture(scope="module")
def built(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = ServingSettings(batch_size=6, max_batch_delay_ms=25, workers=1, max_audio_seconds=300.0)
    return build_archive(checkpoint, tmp_path_factory.mktemp("store"), settings=settings)


def read_member(mar: Path, name: str) -> str:
    with zipfile.ZipFile(mar) as z:
        return z.read(name).decode()


def test_archive_holds_handler_model_package_checkpoint_and_config(built: Path) -> None:
    assert built.name == "detector.mar"
    with zipfile.ZipFile(built) as z:
        names = set(z.namelist())
    expected = {"detector_handler.py", "model-config.yaml", "MAR-INF/MANIFEST.json", *CHECKPOINT_FILES, *MODEL_FILES}
    assert expected <= names
    assert "model/__init__.py" in names  # model/ stays a package, not flattened into the root
    assert not any("__pycache__" in n for n in names)


def test_manifest_names_model_version_handler_and_config(built: Path) -> None:
    model = json.loads(read_member(built, "MAR-INF/MANIFEST.json"))["model"]
    assert model == {
        "modelName": "detector",
        "handler": "detector_handler.py",
        "modelVersion": "4.2",  # from metadata.json
        "configFile": "model-config.yaml",
    }


def test_model_config_carries_batching_workers_and_handler_limits(built: Path) -> None:
    config = yaml.safe_load(read_member(built, "model-config.yaml"))
    assert config["batchSize"] == 6
    assert config["maxBatchDelay"] == 25
    assert config["minWorkers"] == config["maxWorkers"] == 1
    assert config["responseTimeout"] > 0
    assert config["handler"]["max_audio_seconds"] == 300.0
    assert config["handler"]["decode_timeout_seconds"] > 0


def test_version_flag_and_versioned_file_name(checkpoint: Path, tmp_path: Path) -> None:
    path = build_archive(checkpoint, tmp_path, version="9.9", versioned_name=True)
    assert path == tmp_path / "detector-9.9.mar"
    assert json.loads(read_member(path, "MAR-INF/MANIFEST.json"))["model"]["modelVersion"] == "9.9"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["detector-9.9.mar"]  # no partial files left


def test_broken_weights_fail_the_load_test_and_leave_the_store_alone(checkpoint: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    (broken / "weights.pt").write_bytes(b"not a state dict")
    store = tmp_path / "store"
    store.mkdir()
    (store / "detector.mar").write_bytes(b"the archive being served")
    with pytest.raises(ArchiveError, match="load test"):
        build_archive(broken, store)
    assert [p.name for p in store.iterdir()] == ["detector.mar"]
    assert (store / "detector.mar").read_bytes() == b"the archive being served"


def test_archive_without_model_package_is_refused(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker must import model/ from the archive, never from a checkout or an installed copy."""
    original_stage = archive.stage

    def stage_without_model(*args: object) -> tuple[Path, Path]:
        extra, config = original_stage(*args)
        shutil.rmtree(extra / "model")
        return extra, config

    monkeypatch.setattr(archive, "stage", stage_without_model)
    with pytest.raises(ArchiveError, match="load test"):
        build_archive(checkpoint, tmp_path / "store")
    assert not (tmp_path / "store").exists()


def test_incomplete_checkpoint_or_missing_version_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(checkpoint, partial)
    (partial / "feature_config.json").unlink()
    with pytest.raises(ArchiveError, match=r"lacks feature_config\.json"):
        build_archive(partial, tmp_path / "store")
    unversioned = tmp_path / "unversioned"
    shutil.copytree(checkpoint, unversioned)
    (unversioned / "metadata.json").write_text(json.dumps({"threshold": 0.5}))
    with pytest.raises(ArchiveError, match="pass --version"):
        build_archive(unversioned, tmp_path / "store")


def test_cli_reports_failure_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert archive.main(["--checkpoint", str(tmp_path / "nothing"), "--store", str(tmp_path / "store")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("archive: ") and "Traceback" not in error


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        archive.main(["--help"])
    assert exit_info.value.code == 0
    assert "--versioned-name" in capsys.readouterr().out
