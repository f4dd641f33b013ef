"""scripts/torchserve.py: per-run config, isolation, and stopping exactly what was started."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import psutil
import pytest

from scripts import torchserve as control
from tests.conftest import TorchServeFixture, free_ports

TEMPLATE = control.DEFAULT_CONFIG_TEMPLATE
FAILING_START_TIMEOUT = 8.0
LOOPBACK = ("127.0.0.1", "::ffff:127.0.0.1")


def properties(text: str) -> dict[str, str]:
    """key=value lines of a properties file, comments skipped (as TorchServe reads them)."""
    pairs = [line.split("=", 1) for line in text.splitlines() if "=" in line and not line.lstrip().startswith("#")]
    return {key.strip(): value.strip() for key, value in pairs}


def test_template_decides_security_sizes_and_metrics_explicitly() -> None:
    config = properties(TEMPLATE.read_text())
    assert config["disable_token_authorization"] == "true"
    assert config["enable_model_api"] == "true"
    assert config["metrics_mode"] == "prometheus"
    assert int(config["max_request_size"]) >= 64 * 1024 * 1024
    assert int(config["max_response_size"]) >= 64 * 1024 * 1024
    assert config["load_models"] == "detector.mar"
    assert config["default_workers_per_model"] == "1"
    for key in ("inference_address", "management_address", "metrics_address"):
        assert config[key].startswith("http://127.0.0.1:")


def test_rendered_config_has_the_runs_ports_store_and_a_store_only_url_rule(tmp_path: Path) -> None:
    server = control.Server(
        tmp_path, tmp_path / "store", "http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3", 4, 5, 0
    )
    config = properties(control.render_config(TEMPLATE.read_text(), server))
    assert config["inference_address"] == "http://127.0.0.1:1"
    assert config["management_address"] == "http://127.0.0.1:2"
    assert config["metrics_address"] == "http://127.0.0.1:3"
    assert config["model_store"] == str(tmp_path / "store")
    assert config["allowed_urls"] == f"file://\\\\Q{tmp_path / 'store'}/\\\\E[^/]+\\\\.mar"
    assert (config["grpc_inference_port"], config["grpc_management_port"]) == ("4", "5")
    assert config["grpc_inference_address"] == config["grpc_management_address"] == "127.0.0.1"
    assert config["enable_model_api"] == "true"  # everything else is kept


@pytest.mark.integration
@pytest.mark.parametrize("url", ["http://127.0.0.1:9/detector.mar", "https://example.com/x.mar", "file:///etc/passwd"])
def test_registration_cannot_fetch_urls(torchserve: TorchServeFixture, url: str) -> None:
    reply = httpx.post(f"{torchserve.management_url}/models", params={"url": url}, timeout=30)
    assert reply.status_code == 404
    assert "does not match any allowed URL" in reply.json()["message"]


@pytest.mark.integration
def test_run_directory_holds_pid_config_logs_and_tmpdir(torchserve: TorchServeFixture) -> None:
    run_dir = torchserve.run_dir
    assert control.running_pid(run_dir) == torchserve.pid
    assert (run_dir / "config.properties").is_file()
    assert (run_dir / "logs" / "ts_log.log").is_file()
    assert (run_dir / "tmp" / ".model_server.pid").is_file()  # TorchServe's own pid file, in our TMPDIR
    workers = [
        p
        for p in psutil.Process(torchserve.pid).children(recursive=True)
        if "model_service_worker" in " ".join(p.cmdline())
    ]
    assert workers, "no worker process under the recorded pid"
    assert all(os.getpgid(p.pid) == torchserve.pid for p in workers)
    assert all(p.environ().get("TMPDIR") == str(run_dir / "tmp") for p in workers)


@pytest.mark.integration
def test_second_server_runs_beside_the_first_and_stop_leaves_nothing(
    torchserve: TorchServeFixture, tmp_path: Path
) -> None:
    run_dir = tmp_path / "second"
    server = control.start(run_dir, torchserve.model_store, *free_ports(3))
    try:
        group = control.group_members(server.pid)
        assert len(group) >= 3  # launcher, Java frontend, worker
        reply = httpx.get(f"{server.inference_url}/ping", timeout=10)
        assert reply.status_code == 200
        with pytest.raises(control.TorchServeError, match="still running"):
            control.start(run_dir, torchserve.model_store, *free_ports(3))
    finally:
        assert control.stop(run_dir) is True
    assert control.group_members(server.pid) == []
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in group)
    assert not (run_dir / control.PID_FILE).exists()
    assert control.stop(run_dir) is False
    assert control.running_pid(torchserve.run_dir) == torchserve.pid  # the session's server is untouched


@pytest.mark.integration
def test_failed_start_shows_the_log_tail_and_leaves_nothing(tmp_path: Path) -> None:
    empty_store = tmp_path / "empty-store"
    empty_store.mkdir()
    run_dir = tmp_path / "failing"
    with pytest.raises(control.TorchServeError) as error:
        control.start(run_dir, empty_store, *free_ports(3), timeout=FAILING_START_TIMEOUT)
    assert "no READY worker" in str(error.value)
    assert "ts_log.log" in str(error.value)
    assert not (run_dir / control.PID_FILE).exists()


def test_missing_store_is_refused_before_starting(tmp_path: Path) -> None:
    with pytest.raises(control.TorchServeError, match="does not exist"):
        control.start(tmp_path / "run", tmp_path / "no-store", *free_ports(3))


def test_cli_status_and_stop_without_a_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert control.main(["status", "--run-dir", str(tmp_path)]) == 3
    assert control.main(["stop", "--run-dir", str(tmp_path)]) == 0
    assert "no TorchServe running" in capsys.readouterr().out


@pytest.mark.integration
def test_server_listens_on_loopback_only_and_not_on_fixed_grpc_ports(torchserve: TorchServeFixture) -> None:
    processes = [psutil.Process(torchserve.pid), *psutil.Process(torchserve.pid).children(recursive=True)]
    listening = [c.laddr for p in processes for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert len(listening) == 5  # inference, management, metrics, gRPC inference, gRPC management
    assert all(address.ip in LOOPBACK for address in listening), listening
    assert not {7070, 7071} & {address.port for address in listening}
