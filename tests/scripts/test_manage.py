"""scripts/manage.py against a real TorchServe: register v2, route by version, move the default, roll back."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import httpx
import pytest

from scripts import manage
from scripts.archive import ServingSettings
from tests.audio_fixtures import speech_wav
from tests.conftest import TorchServeFixture

pytestmark = pytest.mark.integration
V2 = "2.0"
OCTET_STREAM = {"Content-Type": "application/octet-stream"}


def cli(torchserve: TorchServeFixture, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = manage.main(["--management-url", torchserve.management_url, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def served_version(torchserve: TorchServeFixture, version: str | None = None) -> str:
    reply = httpx.post(torchserve.predictions_url(version), content=speech_wav(1.0), headers=OCTET_STREAM, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()["version"]


@pytest.fixture
def restore_v1(torchserve: TorchServeFixture) -> Iterator[None]:
    """Whatever happens, leave the session's server as other tests expect it: 1.0 alone, default."""
    yield
    with contextlib.suppress(manage.ManagementError):
        manage.set_default(torchserve.management_url, torchserve.version)
    with contextlib.suppress(manage.ManagementError):
        manage.unregister(torchserve.management_url, V2)


def test_versioning_flow(torchserve: TorchServeFixture, capsys: pytest.CaptureFixture[str], restore_v1: None) -> None:
    archive = torchserve.make_archive(V2, seed=2)
    assert cli(torchserve, capsys, "register", archive.name)[0] == 0

    code, out, _ = cli(torchserve, capsys, "list")
    listing = json.loads(out)
    assert code == 0
    assert listing["default"] == "1.0"
    assert sorted(v["version"] for v in listing["versions"]) == ["1.0", V2]
    assert all(v["workers"] == ["READY"] * ServingSettings().workers for v in listing["versions"])

    assert served_version(torchserve, "1.0") == "1.0"
    assert served_version(torchserve, V2) == V2
    assert served_version(torchserve) == "1.0"

    assert cli(torchserve, capsys, "set-default", V2)[0] == 0
    assert served_version(torchserve) == V2
    code, _, err = cli(torchserve, capsys, "unregister", V2)
    assert code == 1 and "Cannot remove default version" in err  # TorchServe protects the default

    assert cli(torchserve, capsys, "scale", "1", "--version", V2)[0] == 0
    described = json.loads(cli(torchserve, capsys, "describe", "--version", V2)[1])
    assert [w["status"] for w in described[0]["workers"]] == ["READY"]

    assert cli(torchserve, capsys, "set-default", "1.0")[0] == 0
    assert served_version(torchserve) == "1.0"
    assert cli(torchserve, capsys, "unregister", V2)[0] == 0
    assert [v["version"] for v in manage.list_versions(torchserve.management_url)["versions"]] == ["1.0"]
    reply = httpx.post(torchserve.predictions_url(V2), content=speech_wav(1.0), headers=OCTET_STREAM, timeout=60)
    assert reply.status_code == 404


def test_refusals_are_reported_without_traceback(
    torchserve: TorchServeFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(torchserve, capsys, "set-default", "9.9")
    assert (code, out) == (1, "")
    assert err.startswith("manage: TorchServe answered 404") and "Traceback" not in err
    code, _, err = cli(torchserve, capsys, "register", "not-in-store.mar")
    assert code == 1 and "not found" in err.lower()


def test_unreachable_server_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert manage.main(["--management-url", "http://127.0.0.1:9", "list"]) == 1
    assert "cannot reach TorchServe" in capsys.readouterr().err


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        manage.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(command in out for command in ("list", "describe", "register", "set-default", "scale", "unregister"))
