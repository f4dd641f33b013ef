"""scripts/serve.py: a store without the default archive gets one built before the stack starts."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from scripts import serve
from tests.conftest import free_ports, make_checkpoint

ARCHIVE_VERSION = "7.1"
HTTP_TIMEOUT_SECONDS = 120.0


@pytest.mark.integration
def test_start_against_an_empty_store_builds_the_archive_and_serves_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = make_checkpoint(tmp_path / "checkpoint", version=ARCHIVE_VERSION)
    store, run_dir = tmp_path / "empty-store", tmp_path / "run"
    store.mkdir()
    gateway_port, *torchserve_ports = free_ports(4)
    try:
        url = serve.start(run_dir, store, gateway_port, tuple(torchserve_ports), model_dir=checkpoint)
        answer = httpx.get(f"{url}/predict", timeout=HTTP_TIMEOUT_SECONDS)
    finally:
        serve.stop(run_dir)

    archive = store / serve.DEFAULT_ARCHIVE
    assert f"serve: {archive} is missing; building it from {checkpoint}" in capsys.readouterr().out
    assert archive.is_file()
    assert answer.status_code == 200, answer.text
    assert answer.json()["version"] == ARCHIVE_VERSION


def test_an_existing_archive_is_left_as_it_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / serve.DEFAULT_ARCHIVE
    archive.write_bytes(b"an operator's own archive")

    found = serve.ensure_archive(tmp_path, tmp_path / "no-checkpoint-here")

    assert found == archive
    assert archive.read_bytes() == b"an operator's own archive"
    assert capsys.readouterr().out == ""


def test_a_missing_archive_without_a_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    store, model_dir = tmp_path / "store", tmp_path / "not-trained"

    with pytest.raises(serve.ServeError, match=r"detector\.mar is missing and could not be built from .*not-trained"):
        serve.ensure_archive(store, model_dir)

    assert not (store / serve.DEFAULT_ARCHIVE).exists()


def test_cli_start_reports_the_missing_checkpoint_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = serve.main(
        ["start", "--run-dir", str(tmp_path / "run"), "--model-store", str(tmp_path / "store"),
         "--model-dir", str(tmp_path / "nothing")]
    )  # fmt: skip

    assert code == 1
    assert "lacks weights.pt" in capsys.readouterr().err
