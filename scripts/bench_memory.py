"""Which process is which in a benchmarked stack, the CPU they spend, and their peak resident memory."""

from __future__ import annotations

import threading
from pathlib import Path

import psutil

from scripts import serve, torchserve

MIB = 1024 * 1024
SAMPLE_SECONDS = 0.2
ROLE_REFRESH_SAMPLES = 10  # who is who: every 2 s
JAVA = "java"
WORKER_MARKER = "model_service_worker"


def stack_roles(run_dir: Path) -> dict[int, str]:
    """pid -> role for the gateway and every process of the TorchServe started from run_dir."""
    roles = {}
    gateway = torchserve.running_pid(run_dir, serve.GATEWAY_PID_FILE)
    if gateway:
        roles[gateway] = "gateway"
    server = torchserve.running_pid(run_dir)
    for pid in torchserve.group_members(server) if server else []:
        try:
            command = psutil.Process(pid).cmdline()
        except psutil.NoSuchProcess:
            continue
        if any(WORKER_MARKER in part for part in command):
            roles[pid] = "torchserve worker"
        elif command and command[0].endswith(JAVA):
            roles[pid] = "torchserve frontend (java)"
        else:
            roles[pid] = "torchserve launcher"
    return roles


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU the processes have used so far (those that have exited count as 0)."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


class MemorySampler:
    """A thread sampling the RSS of the watched processes; `peaks()` gives each one's maximum."""

    def __init__(self) -> None:
        self._fixed: dict[int, str] = {}
        self._run_dirs: list[Path] = []
        self._peaks: dict[tuple[str, int], float] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def watch(self, roles: dict[int, str]) -> None:
        with self._lock:
            self._fixed.update(roles)

    def watch_stack(self, run_dir: Path) -> None:
        """Follow the stack's processes as they come and go (workers restart, versions register)."""
        with self._lock:
            self._run_dirs.append(run_dir)

    def peaks(self) -> list[dict[str, object]]:
        with self._lock:
            return [
                {"process": role, "pid": pid, "peak_rss_mib": round(rss / MIB, 1)}
                for (role, pid), rss in sorted(self._peaks.items())
            ]

    def _sample_until_stopped(self) -> None:
        roles: dict[int, str] = {}
        samples = 0
        while not self._stop.wait(SAMPLE_SECONDS):
            if samples % ROLE_REFRESH_SAMPLES == 0:  # listing processes costs more than reading an RSS
                with self._lock:
                    roles = dict(self._fixed)
                    run_dirs = list(self._run_dirs)
                for run_dir in run_dirs:
                    roles.update(stack_roles(run_dir))
            samples += 1
            for pid, role in roles.items():
                try:
                    rss = psutil.Process(pid).memory_info().rss
                except psutil.NoSuchProcess:
                    continue
                with self._lock:
                    self._peaks[role, pid] = max(rss, self._peaks.get((role, pid), 0))
