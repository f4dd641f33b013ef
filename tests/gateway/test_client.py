"""`python -m gateway.client`: lines, JSON mode and exit status, against httpx.MockTransport and the real stack."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.client import format_answer, main, segment_summary
from model.inference import AudioDetector
from tests.audio_fixtures import corrupt_audio, speech_wav, write_wav
from tests.conftest import TorchServeFixture
from tests.gateway.test_integration import REPO_ROOT, running_gateway

URL = "http://gateway.test"
TOLERANCE = 1e-5
SUBPROCESS_TIMEOUT_SECONDS = 120


def answer(prediction: float, segments: list[float] | None = None, version: str = "1.0", **extra: Any) -> dict:
    """A /predict-file/ answer; `segments` are per-window scores of 6 s windows (one window by default)."""
    scores = segments or [prediction]
    return {
        "prediction": prediction,
        "label": "real" if prediction >= 0.5 else "fake",
        "threshold": 0.5,
        "duration_seconds": 6.0 * len(scores),
        "segments": [
            {"start_seconds": 6.0 * i, "end_seconds": 6.0 * (i + 1), "prediction": p} for i, p in enumerate(scores)
        ],
        "model": "detector",
        "version": version,
        **extra,
    }


def audio_files(folder: Path, *names: str) -> list[str]:
    for name in names:
        (folder / name).write_bytes(b"RIFF-not-really-but-the-mock-does-not-care")
    return [str(folder / name) for name in names]


class Gateway:
    """A MockTransport handler answering by uploaded file name; records what it was sent."""

    def __init__(self, answers: dict[str, httpx.Response], delays: dict[str, float] | None = None) -> None:
        self.answers = answers
        self.delays = delays or {}
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        name = re.search(rb'filename="([^"]+)"', request.content).group(1).decode()
        await asyncio.sleep(self.delays.get(name, 0.0))
        return self.answers[name]


def run_client(args: list[str], handler: Any) -> int:
    return main([*args, "--url", URL], transport=httpx.MockTransport(handler))


def test_format_answer_with_and_without_segment_summary() -> None:
    long = answer(0.31, [0.9, 0.8, 0.02, 0.4, 0.7, 0.05, 0.9, 0.9, 0.9, 0.9, 0.9, 0.3])

    assert format_answer("a.wav", answer(0.973)) == "a.wav: real, P(real) 97.3%, version 1.0"
    assert format_answer("b.wav", long) == (
        "b.wav: fake, P(real) 31.0%, version 1.0; 12 segments, 4 scored fake, lowest 0.02 at 12-18 s"
    )
    assert segment_summary(answer(0.1)["segments"], 0.5) == ""


def test_lines_come_in_the_order_given_whatever_answers_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = audio_files(tmp_path, "slow.wav", "fast.wav", "middle.wav")
    gateway = Gateway(
        {name: httpx.Response(200, json=answer(0.8, version="2.0")) for name in ("slow.wav", "fast.wav", "middle.wav")},
        delays={"slow.wav": 0.2, "middle.wav": 0.1},
    )

    status = run_client([*files, "--version", "2.0", "--concurrency", "3"], gateway)

    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{file}: real, P(real) 80.0%, version 2.0" for file in files]
    assert {r.url.path for r in gateway.requests} == {"/predict-file/"}
    assert {r.url.params["version"] for r in gateway.requests} == {"2.0"}


def test_an_error_answer_prints_detail_and_status_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad, html = audio_files(tmp_path, "good.wav", "bad.wav", "html.wav")
    detail = "The file is not audio the model server can decode."
    gateway = Gateway(
        {
            "good.wav": httpx.Response(200, json=answer(0.1)),
            "bad.wav": httpx.Response(415, json={"detail": detail}),
            "html.wav": httpx.Response(502, text="<html>\n<body>Bad Gateway</body></html>"),
        }
    )

    status = run_client([good, bad, html], gateway)

    assert status == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        f"{good}: fake, P(real) 10.0%, version 1.0",
        f"{bad}: failed (415): {detail}",
        f"{html}: failed (502): <html> <body>Bad Gateway</body></html>",
    ]
    assert "Traceback" not in captured.err


def test_json_mode_is_the_answer_plus_file_one_per_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = audio_files(tmp_path, "good.wav", "bad.wav")
    missing = str(tmp_path / "missing.wav")
    served = answer(0.6, [0.9, 0.3], filename="good.wav")
    gateway = Gateway(
        {
            "good.wav": httpx.Response(200, json=served),
            "bad.wav": httpx.Response(422, json={"detail": "The uploaded file is empty."}),
        }
    )

    status = run_client([good, bad, missing, "--json"], gateway)

    assert status == 1
    objects = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert objects[0] == {**served, "file": good}
    assert objects[1] == {"file": bad, "detail": "The uploaded file is empty.", "status": 422}
    assert objects[2] == {"file": missing, "detail": "cannot read the file: No such file or directory", "status": None}
    assert len(gateway.requests) == 2  # the missing file is never sent


def test_a_missing_file_fails_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (good,) = audio_files(tmp_path, "good.wav")
    gateway = Gateway({"good.wav": httpx.Response(200, json=answer(0.9))})

    status = run_client([str(tmp_path / "gone.wav"), good, str(tmp_path)], gateway)

    assert status == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{tmp_path / 'gone.wav'}: failed: cannot read the file: No such file or directory",
        f"{good}: real, P(real) 90.0%, version 1.0",
        f"{tmp_path}: failed: cannot read the file: Is a directory",
    ]


def test_a_timeout_fails_that_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (slow,) = audio_files(tmp_path, "slow.wav")

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    status = run_client([slow, "--timeout", "2.5"], handler)

    assert status == 1
    assert capsys.readouterr().out.strip() == f"{slow}: failed: no answer within 2.5 s (see --timeout)"


def test_an_unreachable_gateway_is_one_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = audio_files(tmp_path, "a.wav", "b.wav", "c.wav")

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    status = run_client(files, handler)

    assert status == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        f"cannot reach the detector at {URL}: [Errno 111] Connection refused; is `make serve` running?" in captured.err
    )
    assert captured.err.count("cannot reach") == 1
    assert "Traceback" not in captured.err


@pytest.mark.parametrize(
    "args",
    [[], ["a.wav", "--concurrency", "0"], ["a.wav", "--timeout", "-1"], ["a.wav", "--url", "gateway:8000"]],
    ids=["no-files", "concurrency", "timeout", "url"],
)
def test_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        main(args)

    assert refused.value.code == 2
    assert "usage: python -m gateway.client" in capsys.readouterr().err


def test_help_and_no_server_side_imports() -> None:
    probe = "import sys, gateway.client; print(sorted({'fastapi', 'torch', 'model'} & set(sys.modules)))"
    imported = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    shown = subprocess.run(
        [sys.executable, "-m", "gateway.client", "--help"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )

    assert imported.stdout.strip() == "[]"
    assert shown.returncode == 0
    assert all(option in shown.stdout for option in ("--url", "--version", "--json", "--concurrency", "--timeout"))


@pytest.fixture(scope="module")
def gateway_url(torchserve: TorchServeFixture, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("client-gateway") / "uvicorn.log"
    with running_gateway(torchserve.inference_url, torchserve.management_url, torchserve.metrics_url, log) as url:
        yield url


@pytest.mark.integration
def test_client_against_the_real_stack(
    gateway_url: str, torchserve: TorchServeFixture, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = write_wav(tmp_path / "speech one.wav", 7.5, seed=3)  # over one window: the line has a segment summary
    invalid = tmp_path / "invalid.wav"
    invalid.write_bytes(corrupt_audio())
    expected = AudioDetector.from_checkpoint(torchserve.checkpoint).score_audio(speech_wav(7.5, seed=3))

    shown = subprocess.run(
        [sys.executable, "-m", "gateway.client", str(real), str(invalid), "--url", gateway_url],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_SECONDS,
        check=False,
    )
    status = main([str(real), "--json", "--url", gateway_url])

    assert shown.returncode == 1, shown.stderr
    assert "Traceback" not in shown.stderr
    scored, failed = shown.stdout.splitlines()
    match = re.fullmatch(
        rf"{re.escape(str(real))}: (real|fake), P\(real\) ([\d.]+)%, version 1\.0; 4 segments, .*", scored
    )
    assert match, scored
    assert match.group(1) == expected.label
    assert float(match.group(2)) == pytest.approx(expected.probability_real * 100, abs=0.05 + TOLERANCE)
    assert failed.startswith(f"{invalid}: failed (415): ")

    assert status == 0
    (line,) = capsys.readouterr().out.splitlines()
    body = json.loads(line)
    assert (body["file"], body["filename"], body["version"]) == (str(real), "speech one.wav", "1.0")
    assert body["prediction"] == pytest.approx(expected.probability_real, abs=TOLERANCE)
    assert len(body["segments"]) == len(expected.segments) == 4  # 7.5 s in segments of at most 2 s
