"""Faults: TorchServe absent, a worker killed under load, the gateway restarted.

The worker and restart tests use a private TorchServe (own run dir, free ports) serving the
session's archive, so killing its worker disturbs no other test.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from scripts import torchserve as torchserve_control
from tests.audio_fixtures import speech_wav
from tests.conftest import TorchServeFixture, free_ports
from tests.reliability.stack import (
    HTTP_TIMEOUT_SECONDS,
    assert_json_error,
    assert_no_leak,
    probe_clip,
    running_gateway,
    worker_pids,
)

pytestmark = pytest.mark.integration

PREDICT = "/predict-file/"
RETRY_AFTER_SECONDS = "3"
LOAD_CLIENTS = 6
LOAD_CLIP_SECONDS = 2.0
WARM_UP_ANSWERS = 12
RECOVERY_DEADLINE_SECONDS = 180.0
AFTER_RECOVERY_ANSWERS = 12
POLL_SECONDS = 0.1
ORPHAN_TIMEOUT_SECONDS = 20  # the gateway's request timeout in the worker test
ORPHAN_TIMEOUT_DETAIL = f"The model server did not answer within {ORPHAN_TIMEOUT_SECONDS} seconds."
# Statuses a request may get while its worker dies and TorchServe starts another.
DURING_RESTART = {200, 503, 504}


@pytest.fixture(scope="module")
def private_torchserve(
    torchserve: TorchServeFixture, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[torchserve_control.Server]:
    run_dir = tmp_path_factory.mktemp("faults") / "torchserve"
    server = torchserve_control.start(run_dir, torchserve.model_store, *free_ports(3))
    try:
        yield server
    finally:
        torchserve_control.stop(run_dir)


def upload(client: httpx.Client, audio: bytes) -> httpx.Response:
    return client.post(PREDICT, files={"file": ("clip.wav", audio)})


def test_gateway_without_torchserve_answers_503_with_retry_after(tmp_path: Path) -> None:
    nowhere = [f"http://127.0.0.1:{port}" for port in free_ports(3)]  # nothing listens there
    with (
        running_gateway(*nowhere, tmp_path / "gateway.log", retry_after_seconds=RETRY_AFTER_SECONDS) as gateway,
        httpx.Client(base_url=gateway.url, timeout=HTTP_TIMEOUT_SECONDS) as client,
    ):
        answers = {
            "upload": upload(client, probe_clip()),
            "test signal": client.get("/predict"),
            "versions": client.get("/models"),
            "health": client.get("/"),
        }
        metrics = client.get("/metrics")

    for name, response in answers.items():
        assert_no_leak(response)
        assert response.status_code == 503, (name, response.text)
        assert response.headers["retry-after"] == RETRY_AFTER_SECONDS, name
    assert assert_json_error(answers["upload"]) == "The model server is unreachable; retry later."
    assert answers["health"].json()["torchserve"] == "unreachable"
    assert metrics.status_code == 200
    assert "gateway_torchserve_up 0" in metrics.text


@dataclass
class LoadLog:
    """Every answer of the load clients (sent at, answered at, status), and what was wrong with any."""

    answers: list[tuple[float, float, int]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, sent: float, response: httpx.Response) -> None:
        with self.lock:
            self.answers.append((sent, time.monotonic(), response.status_code))
            if not clear_answer(response):
                self.failures.append(f"{response.status_code} {response.headers} {response.text[:200]}")

    def count_since(self, moment: float, status: int) -> int:
        with self.lock:
            return sum(1 for sent, _, code in self.answers if sent > moment and code == status)


def clear_answer(response: httpx.Response) -> bool:
    """A prediction, or a 5xx that says what happened (and, for 503, when to retry)."""
    if response.status_code == 200:
        return True
    detail = response.json().get("detail", "")
    if response.status_code == 503:
        return bool(detail) and response.headers.get("retry-after") == RETRY_AFTER_SECONDS
    return response.status_code == 504 and detail == ORPHAN_TIMEOUT_DETAIL


def load_client(url: str, audio: bytes, log: LoadLog, stop: threading.Event) -> None:
    """Post clips back to back until told to stop; record how each one was answered."""
    with httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_SECONDS) as client:
        while not stop.is_set():
            sent = time.monotonic()
            try:
                log.record(sent, upload(client, audio))
            except httpx.HTTPError as error:  # no answer at all: a hang or a dropped connection
                with log.lock:
                    log.failures.append(repr(error))


def wait_until(condition: Callable[[], bool], deadline: float, what: str) -> None:
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(POLL_SECONDS)


def seconds_until_served(client: httpx.Client, since: float, deadline: float) -> float:
    """Probe until a request is scored again; the seconds from `since` to that answer."""
    while time.monotonic() < deadline:
        if upload(client, probe_clip()).status_code == 200:
            return time.monotonic() - since
        time.sleep(POLL_SECONDS)
    pytest.fail(f"no prediction within {RECOVERY_DEADLINE_SECONDS:g} s of the worker's death")


def test_worker_killed_under_load_is_replaced_and_service_returns_by_itself(
    private_torchserve: torchserve_control.Server, tmp_path: Path
) -> None:
    """In-flight requests get 503, or 504 once the gateway's request timeout passes.

    TorchServe 0.12 answers "Worker died" (503 here) for the batch it had sent to the worker, but
    requests it had already taken into the next batch while waiting for it to fill are never
    answered (WorkerThread fails only the batch in flight): the gateway's request timeout is what
    bounds them, shortened here so the test does not wait the default 60 s.
    """
    server = private_torchserve
    workers_before = worker_pids(server.pid)
    old_worker = workers_before[0]  # with more than one worker, the others keep serving meanwhile
    log, stop = LoadLog(), threading.Event()
    urls = (server.inference_url, server.management_url, server.metrics_url)
    settings = {"retry_after_seconds": RETRY_AFTER_SECONDS, "request_timeout_seconds": str(ORPHAN_TIMEOUT_SECONDS)}
    with (
        running_gateway(*urls, tmp_path / "gateway.log", **settings) as gateway,
        httpx.Client(base_url=gateway.url, timeout=HTTP_TIMEOUT_SECONDS) as prober,
    ):
        clients = [
            threading.Thread(target=load_client, args=(gateway.url, speech_wav(LOAD_CLIP_SECONDS, seed=i), log, stop))
            for i in range(LOAD_CLIENTS)
        ]
        for thread in clients:
            thread.start()
        try:
            began = time.monotonic()
            wait_until(
                lambda: log.count_since(began, 200) >= WARM_UP_ANSWERS, began + RECOVERY_DEADLINE_SECONDS, "load"
            )
            killed = time.monotonic()
            os.kill(old_worker, signal.SIGKILL)
            recovery = seconds_until_served(prober, killed, killed + RECOVERY_DEADLINE_SECONDS)
            back = time.monotonic()
            wait_until(
                lambda: log.count_since(back, 200) >= AFTER_RECOVERY_ANSWERS, back + RECOVERY_DEADLINE_SECONDS, "load"
            )
        finally:
            stop.set()
            for thread in clients:
                thread.join()
        health = prober.get("/")
        gateway_alive = gateway.process.poll() is None

    after_kill = Counter(code for _, answered, code in log.answers if answered > killed)
    print(f"\nworker SIGKILL -> scored again after {recovery:.1f} s; load answers since the kill: {dict(after_kill)}")
    assert log.failures == []
    assert set(after_kill) <= DURING_RESTART
    assert gateway_alive
    assert health.status_code == 200, health.text
    wait_until(
        lambda: len(worker_pids(server.pid)) == len(workers_before),
        time.monotonic() + RECOVERY_DEADLINE_SECONDS,
        "the replacement worker",
    )
    new_workers = worker_pids(server.pid)
    assert old_worker not in new_workers
    assert torchserve_control.running_pid(server.run_dir) == server.pid  # the frontend itself never went down


def test_restarted_gateway_serves_at_once_without_reloading_the_model(
    private_torchserve: torchserve_control.Server, tmp_path: Path
) -> None:
    server = private_torchserve
    urls = (server.inference_url, server.management_url, server.metrics_url)
    (port,) = free_ports(1)
    workers_before = worker_pids(server.pid)
    with running_gateway(*urls, tmp_path / "first.log", port=port) as first:
        before = httpx.post(first.url + PREDICT, files={"file": ("a.wav", probe_clip())}, timeout=HTTP_TIMEOUT_SECONDS)
    with running_gateway(*urls, tmp_path / "second.log", port=port) as second:
        after = httpx.post(second.url + PREDICT, files={"file": ("a.wav", probe_clip())}, timeout=HTTP_TIMEOUT_SECONDS)

    assert before.status_code == after.status_code == 200, after.text
    assert after.json()["prediction"] == before.json()["prediction"]
    assert worker_pids(server.pid) == workers_before
