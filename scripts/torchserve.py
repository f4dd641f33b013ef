"""Start and stop one TorchServe per run directory, and stop exactly what was started.

    python -m scripts.torchserve start --run-dir runs/serve --model-store model-store
    python -m scripts.torchserve stop --run-dir runs/serve

Everything a run needs or leaves lives under its run directory: the rendered config.properties
(the repository's template with this run's ports and absolute store path), logs/, and tmp/ as
TMPDIR (TorchServe allows one server per TMPDIR through its pid file there, and unpacks archives
into it). The server starts in a new process session whose id is recorded in torchserve.pid, so
`stop` can end the launcher, the Java frontend and every Python worker by that process group,
never by process name, and leave nothing behind. The venv's bin/ comes first on PATH so the
workers run the venv's Python. The workers inherit this process's environment, so the handler's
limits can be set there: DETECTOR_MAX_AUDIO_SECONDS, DETECTOR_DECODE_TIMEOUT_SECONDS.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG_TEMPLATE = REPO_ROOT / "config.properties"
# The venv that runs this script (make uses .venv/bin/python), else the repository's .venv.
VENV_BIN = (
    Path(sys.executable).parent
    if (Path(sys.executable).parent / "torchserve").exists()
    else REPO_ROOT / ".venv" / "bin"
)
HOST = "127.0.0.1"
DEFAULT_INFERENCE_PORT = 8080
DEFAULT_MANAGEMENT_PORT = 8081
DEFAULT_METRICS_PORT = 8082
# TorchServe 0.12 always starts its gRPC APIs too (no switch turns them off), on 7070/7071 by
# default, so two servers would collide there. Nothing in this project speaks gRPC: port 0 lets
# the OS pick a free loopback port for each run.
DEFAULT_GRPC_INFERENCE_PORT = 0
DEFAULT_GRPC_MANAGEMENT_PORT = 0
MODEL_NAME = "detector"
PID_FILE = "torchserve.pid"
CONFIG_FILE = "config.properties"
CONSOLE_LOG = "console.log"
LOG_FILES = ("console.log", "ts_log.log", "model_log.log")
LOG_TAIL_LINES = 40
START_TIMEOUT_SECONDS = 180.0
STOP_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.5
HTTP_TIMEOUT_SECONDS = 5.0
READY = "READY"


class TorchServeError(RuntimeError):
    """TorchServe did not start (or stop) as asked; the message carries the log tail."""


@dataclass(frozen=True)
class Server:
    """A running TorchServe started by `start`: where it listens and where its files are."""

    run_dir: Path
    model_store: Path
    inference_url: str
    management_url: str
    metrics_url: str
    grpc_inference_port: int
    grpc_management_port: int
    pid: int


def start(
    run_dir: Path,
    model_store: Path,
    inference_port: int = DEFAULT_INFERENCE_PORT,
    management_port: int = DEFAULT_MANAGEMENT_PORT,
    metrics_port: int = DEFAULT_METRICS_PORT,
    grpc_inference_port: int = DEFAULT_GRPC_INFERENCE_PORT,
    grpc_management_port: int = DEFAULT_GRPC_MANAGEMENT_PORT,
    config_template: Path = DEFAULT_CONFIG_TEMPLATE,
    model_name: str = MODEL_NAME,
    timeout: float = START_TIMEOUT_SECONDS,
    environment: Mapping[str, str] | None = None,
) -> Server:
    """Start TorchServe for `run_dir` and return once `model_name` has a READY worker.

    `environment` adds to (or overrides) the inherited environment of the server and its workers.
    """
    run_dir, model_store = Path(run_dir).resolve(), Path(model_store).resolve()
    if running_pid(run_dir) is not None:
        raise TorchServeError(f"a TorchServe started from {run_dir} is still running; stop it first")
    if not model_store.is_dir():
        raise TorchServeError(f"model store {model_store} does not exist; build an archive first (make archive)")
    for sub in ("logs", "tmp"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    server = Server(
        run_dir,
        model_store,
        f"http://{HOST}:{inference_port}",
        f"http://{HOST}:{management_port}",
        f"http://{HOST}:{metrics_port}",
        grpc_inference_port,
        grpc_management_port,
        pid=0,
    )
    config = run_dir / CONFIG_FILE
    config.write_text(render_config(Path(config_template).read_text(), server))
    command = [str(VENV_BIN / "torchserve"), "--start", "--foreground", "--ncs",
               "--ts-config", str(config), "--model-store", str(model_store)]  # fmt: skip
    with open(run_dir / "logs" / CONSOLE_LOG, "ab") as console:
        process = subprocess.Popen(
            command,
            cwd=run_dir,
            env=server_environment(run_dir, environment),
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    write_pid(run_dir, process.pid)
    server = Server(**{**server.__dict__, "pid": process.pid})
    try:
        wait_ready(server, model_name, timeout, process)
    except TorchServeError:
        stop(run_dir)
        raise
    return server


def render_config(template: str, server: Server) -> str:
    """The template with this run's addresses, absolute store and a store-only allowed_urls."""
    store_regex = f"file://\\\\Q{server.model_store}/\\\\E[^/]+\\\\.mar"
    overrides = {
        "inference_address": server.inference_url,
        "management_address": server.management_url,
        "metrics_address": server.metrics_url,
        "grpc_inference_address": HOST,
        "grpc_management_address": HOST,
        "grpc_inference_port": str(server.grpc_inference_port),
        "grpc_management_port": str(server.grpc_management_port),
        "model_store": str(server.model_store),
        "allowed_urls": store_regex,
    }
    lines = []
    for line in template.splitlines():
        key = line.split("=", 1)[0].strip()
        if not line.lstrip().startswith("#") and key in overrides:
            line = f"{key}={overrides.pop(key)}"
        lines.append(line)
    lines += [f"{key}={value}" for key, value in overrides.items()]
    return "\n".join(lines) + "\n"


def server_environment(run_dir: Path, environment: Mapping[str, str] | None = None) -> dict[str, str]:
    """Own TMPDIR/TEMP and logs under run_dir, the venv first on PATH, no inherited PYTHONPATH.

    PYTHONPATH is dropped so that a worker imports `model` from its archive, never from a
    checkout that happens to be on the caller's path.
    """
    env = {key: value for key, value in {**os.environ, **(environment or {})}.items() if key != "PYTHONPATH"}
    tmp, logs = str(run_dir / "tmp"), str(run_dir / "logs")
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        TMPDIR=tmp,
        TEMP=tmp,  # TorchServe passes it to Java as java.io.tmpdir
        LOG_LOCATION=logs,
        METRICS_LOCATION=logs,
    )
    return env


def wait_ready(server: Server, model_name: str, timeout: float, process: subprocess.Popen) -> None:
    """Poll the management API until the model has a READY worker; fail fast if the server dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TorchServeError(f"TorchServe exited with status {process.returncode}\n{log_tail(server.run_dir)}")
        if model_ready(server.management_url, model_name):
            return
        time.sleep(POLL_SECONDS)
    raise TorchServeError(f"model {model_name!r} had no READY worker after {timeout:g} s\n{log_tail(server.run_dir)}")


def model_ready(management_url: str, model_name: str) -> bool:
    """True when the default version of the model has at least one READY worker."""
    try:
        with urllib.request.urlopen(f"{management_url}/models/{model_name}", timeout=HTTP_TIMEOUT_SECONDS) as reply:
            versions = json.load(reply)
    except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
        return False
    return any(worker.get("status") == READY for version in versions for worker in version.get("workers", []))


def log_tail(run_dir: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of each TorchServe log, to show why a start failed."""
    parts = []
    for name in LOG_FILES:
        path = Path(run_dir) / "logs" / name
        if path.is_file():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path} (last {len(tail)} lines)\n" + "\n".join(tail))
    return "\n".join(parts) or f"(no logs under {run_dir}/logs)"


def write_pid(run_dir: Path, pid: int, pid_file: str = PID_FILE) -> None:
    """Record the pid with its start time, so a recycled pid is never mistaken for our server."""
    created = psutil.Process(pid).create_time()
    (run_dir / pid_file).write_text(f"{pid} {created}\n")


def running_pid(run_dir: Path, pid_file: str = PID_FILE) -> int | None:
    """The recorded server pid if that very process (same start time) still runs, else None."""
    path = Path(run_dir) / pid_file
    if not path.is_file():
        return None
    pid_text, created_text = path.read_text().split()
    pid = int(pid_text)
    try:
        process = psutil.Process(pid)
        same = abs(process.create_time() - float(created_text)) < 1e-3
    except psutil.NoSuchProcess:
        return None
    return pid if same and process.status() != psutil.STATUS_ZOMBIE else None


def stop(run_dir: Path, timeout: float = STOP_TIMEOUT_SECONDS) -> bool:
    """Stop the server recorded in run_dir and all its processes; False when none was running.

    The launcher was started as a session leader, so its process group holds the Java frontend
    and every worker. SIGTERM lets Java shut its workers down; whatever is left after `timeout`
    is killed. Nothing outside that group is touched.
    """
    run_dir = Path(run_dir).resolve()
    if not stop_group(run_dir, PID_FILE, timeout):
        return False
    shutil.rmtree(run_dir / "tmp", ignore_errors=True)  # unpacked archives; logs stay for reading
    return True


def stop_group(run_dir: Path, pid_file: str, timeout: float = STOP_TIMEOUT_SECONDS) -> bool:
    """SIGTERM the process group recorded in run_dir/pid_file, SIGKILL what outlives `timeout`."""
    pid_path = Path(run_dir) / pid_file
    pid = running_pid(run_dir, pid_file)
    if pid is None:
        pid_path.unlink(missing_ok=True)
        return False
    signal_group(pid, signal.SIGTERM)
    if not wait_group_gone(pid, timeout):
        signal_group(pid, signal.SIGKILL)
        if not wait_group_gone(pid, timeout):
            raise TorchServeError(f"processes of group {pid} survived SIGKILL")
    pid_path.unlink(missing_ok=True)
    return True


def signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def wait_group_gone(pgid: int, timeout: float) -> bool:
    """Wait until no process is left in the group, reaping the launcher if it is our child."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # ChildProcessError: started by another process (the CLI), so init reaps it.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pgid, os.WNOHANG)
        if not group_members(pgid):
            return True
        time.sleep(POLL_SECONDS / 5)
    return False


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of the process group."""
    members = []
    for process in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(process.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    start_parser = commands.add_parser("start", help="start TorchServe and wait until the model is READY")
    stop_parser = commands.add_parser("stop", help="stop the TorchServe started from the run directory")
    status_parser = commands.add_parser("status", help="say whether the run directory's TorchServe runs")
    for sub in (start_parser, stop_parser, status_parser):
        sub.add_argument("--run-dir", type=Path, default=Path("runs/serve"), help="default: runs/serve")
    start_parser.add_argument("--model-store", type=Path, default=Path("model-store"), help="default: model-store")
    start_parser.add_argument("--inference-port", type=int, default=DEFAULT_INFERENCE_PORT)
    start_parser.add_argument("--management-port", type=int, default=DEFAULT_MANAGEMENT_PORT)
    start_parser.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT)
    start_parser.add_argument("--grpc-inference-port", type=int, default=DEFAULT_GRPC_INFERENCE_PORT)
    start_parser.add_argument("--grpc-management-port", type=int, default=DEFAULT_GRPC_MANAGEMENT_PORT)
    start_parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_TEMPLATE, help="config.properties template")
    start_parser.add_argument("--model-name", default=MODEL_NAME)
    start_parser.add_argument("--timeout", type=float, default=START_TIMEOUT_SECONDS)
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            began = time.monotonic()
            server = start(args.run_dir, args.model_store, args.inference_port, args.management_port,
                           args.metrics_port, args.grpc_inference_port, args.grpc_management_port,
                           args.config, args.model_name, args.timeout)  # fmt: skip
            print(f"TorchServe ready in {time.monotonic() - began:.1f} s (pid {server.pid}): "
                  f"inference {server.inference_url}, management {server.management_url}, "
                  f"metrics {server.metrics_url}; logs in {server.run_dir / 'logs'}")  # fmt: skip
        elif args.command == "stop":
            print("TorchServe stopped" if stop(args.run_dir) else f"no TorchServe running from {args.run_dir}")
        else:
            pid = running_pid(args.run_dir.resolve())
            print(f"running (pid {pid})" if pid else "not running")
            return 0 if pid else 3
    except TorchServeError as error:
        print(f"torchserve: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
