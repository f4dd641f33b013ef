"""Run the whole service: TorchServe (loopback) plus the FastAPI gateway in front of it.

    python -m scripts.serve start [--run-dir runs/serve] [--port 8000]   # returns once healthy
    python -m scripts.serve stop  [--run-dir runs/serve]                  # stops exactly those
    python -m scripts.serve run   [--host 0.0.0.0]      # start, stay in the foreground until SIGTERM

A model store without detector.mar gets one built first, from --model-dir (default
artifacts/default) through scripts/archive.py, so a fresh checkout serves with one command.

Both run in their own process sessions with their pids (and start times) recorded in the run
directory, so `stop` ends them, and every worker they spawned, by process group, never by name.
Logs: <run-dir>/logs/ (TorchServe's) and <run-dir>/logs/gateway.log.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from scripts import torchserve
from scripts.archive import ArchiveError, build_archive

GATEWAY_PID_FILE = "gateway.pid"
GATEWAY_LOG = "gateway.log"
DEFAULT_GATEWAY_PORT = 8000
HEALTH_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.5
DEFAULT_ARCHIVE = "detector.mar"
DEFAULT_MODEL_DIR = Path("artifacts/default")


class ServeError(RuntimeError):
    """The stack did not come up; the message says where to look."""


def start(
    run_dir: Path,
    model_store: Path,
    port: int = DEFAULT_GATEWAY_PORT,
    torchserve_ports: tuple[int, int, int] | None = None,
    environment: dict[str, str] | None = None,
    host: str = torchserve.HOST,
    model_dir: Path = DEFAULT_MODEL_DIR,
) -> str:
    """Start TorchServe, then the gateway; return the gateway URL once GET / answers 200.

    `torchserve_ports` (inference, management, metrics) default to 8080-8082; `environment`
    adds DETECTOR_* settings for the gateway (e.g. an admin token). `host` is the gateway's
    bind address; TorchServe always stays on loopback. A store without the default archive
    gets one built from `model_dir` first.
    """
    run_dir = Path(run_dir).resolve()
    if torchserve.running_pid(run_dir, GATEWAY_PID_FILE) is not None:
        raise ServeError(f"a gateway started from {run_dir} is still running; `make stop` first")
    ensure_archive(Path(model_store), Path(model_dir))
    ports = torchserve_ports or (
        torchserve.DEFAULT_INFERENCE_PORT,
        torchserve.DEFAULT_MANAGEMENT_PORT,
        torchserve.DEFAULT_METRICS_PORT,
    )
    server = torchserve.start(run_dir, model_store, *ports)
    env = {
        **os.environ,
        **(environment or {}),
        "DETECTOR_TORCHSERVE_INFERENCE_URL": server.inference_url,
        "DETECTOR_TORCHSERVE_MANAGEMENT_URL": server.management_url,
        "DETECTOR_TORCHSERVE_METRICS_URL": server.metrics_url,
    }
    command = [sys.executable, "-m", "uvicorn", "gateway.app:app", "--host", host, "--port", str(port)]
    with open(run_dir / "logs" / GATEWAY_LOG, "ab") as log:
        process = subprocess.Popen(
            command, cwd=torchserve.REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    torchserve.write_pid(run_dir, process.pid, GATEWAY_PID_FILE)
    url = f"http://{torchserve.HOST}:{port}"
    try:
        wait_healthy(url, process)
    except ServeError:
        stop(run_dir)
        raise
    return url


def ensure_archive(model_store: Path, model_dir: Path) -> Path:
    """The store's default archive, built (and load-tested) from `model_dir` if it is missing.

    An existing archive is never rebuilt: the operator may have archived another checkpoint there.
    """
    archive = model_store / DEFAULT_ARCHIVE
    if archive.is_file():
        return archive
    print(f"serve: {archive} is missing; building it from {model_dir} (scripts/archive.py)", flush=True)
    try:
        built = build_archive(model_dir, model_store)
    except ArchiveError as error:
        raise ServeError(f"{archive} is missing and could not be built from {model_dir}: {error}") from error
    print(f"serve: wrote {built}", flush=True)
    return built


def free_ports(count: int) -> list[int]:
    """Ports the OS reports free on loopback (held open together so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((torchserve.HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = HEALTH_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServeError(f"the gateway exited with code {process.returncode}; see logs/{GATEWAY_LOG}")
        try:
            if httpx.get(url + "/", timeout=POLL_SECONDS * 4).status_code == httpx.codes.OK:
                return
        except httpx.TransportError:
            pass
        time.sleep(POLL_SECONDS)
    raise ServeError(f"the gateway at {url} was not healthy within {timeout:.0f} s; see logs/{GATEWAY_LOG}")


def stop(run_dir: Path) -> bool:
    """Stop the gateway, then TorchServe; True if anything was running."""
    run_dir = Path(run_dir).resolve()
    gateway = torchserve.stop_group(run_dir, GATEWAY_PID_FILE)
    server = torchserve.stop(run_dir)
    return gateway or server


def run_foreground(run_dir: Path, model_store: Path, port: int, host: str, model_dir: Path) -> None:
    """Start the stack and hold the foreground (a container's main process) until SIGTERM/SIGINT."""
    url = start(run_dir, model_store, port, host=host, model_dir=model_dir)
    print(f"serving on {url}", flush=True)
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        while not stopping:
            if torchserve.running_pid(run_dir, GATEWAY_PID_FILE) is None or torchserve.running_pid(run_dir) is None:
                raise ServeError("the gateway or TorchServe exited; see the logs in the run directory")
            time.sleep(POLL_SECONDS * 4)
    finally:
        stop(run_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.serve",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start_parser = commands.add_parser("start", help="start TorchServe and the gateway; wait until healthy")
    stop_parser = commands.add_parser("stop", help="stop the gateway and TorchServe started from the run dir")
    run_parser = commands.add_parser("run", help="start, then stay in the foreground until SIGTERM (containers)")
    for sub in (start_parser, stop_parser, run_parser):
        sub.add_argument("--run-dir", type=Path, default=Path("runs/serve"), help="default: runs/serve")
    for sub in (start_parser, run_parser):
        sub.add_argument("--model-store", type=Path, default=Path("model-store"), help="default: model-store")
        sub.add_argument("--port", type=int, default=DEFAULT_GATEWAY_PORT, help="gateway port (default 8000)")
        sub.add_argument("--host", default=torchserve.HOST, help="gateway bind address (default 127.0.0.1)")
        sub.add_argument(
            "--model-dir",
            type=Path,
            default=DEFAULT_MODEL_DIR,
            help=f"checkpoint to archive when the store has no {DEFAULT_ARCHIVE} (default: {DEFAULT_MODEL_DIR})",
        )
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            run_foreground(args.run_dir.resolve(), args.model_store, args.port, args.host, args.model_dir)
        elif args.command == "start":
            url = start(args.run_dir, args.model_store, args.port, host=args.host, model_dir=args.model_dir)
            print(f"serving: gateway {url} (docs {url}/docs, upload page {url}/ui); `make stop` stops it")
        else:
            print("stopped" if stop(args.run_dir) else "nothing was running")
    except (ServeError, torchserve.TorchServeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
