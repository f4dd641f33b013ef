"""Score audio files through the running detector: `python -m gateway.client FILE... [--url URL]`.

    python -m gateway.client clip.wav
    python -m gateway.client recordings/*.flac --concurrency 8 --json > verdicts.jsonl
    python -m gateway.client interview.mp3 --version 2.0 --url http://detector.internal:8000

Each file is uploaded to the gateway's POST /predict-file/ and answered with one line, in the order
the files were given (e.g. `a.wav: fake, P(real) 3.2%, version 1.0; 12 segments, 3 scored fake,
lowest 0.02 at 40-46 s`); with --json, one JSON object per line instead: the gateway's answer plus
"file" (failures: "file", "detail" and "status", null when no answer came). Uploads run
concurrently, at most --concurrency at a time, with a progress bar on stderr for more than one file.
Exit status: 0 if every file was scored, 1 if any failed or the gateway cannot be reached, 2 for
usage errors.

Only httpx and tqdm are imported, never FastAPI or the model, so the client starts fast anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

DEFAULT_URL = "http://127.0.0.1:8000"
PREDICT_PATH = "/predict-file/"
DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 64
DEFAULT_TIMEOUT_SECONDS = 120.0
"""Per request: long audio takes the gateway up to its own 60 s TorchServe timeout, plus the upload."""
CONNECT_TIMEOUT_SECONDS = 10.0
MAX_ERROR_TEXT = 200
"""A non-JSON error body (a proxy's HTML page, say) is cut to this many characters."""
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True)
class FileResult:
    """The gateway's answer for one file, or why there is none (`status` is None when no answer came)."""

    file: str
    answer: dict[str, Any] | None = None
    detail: str | None = None
    status: int | None = None

    @property
    def ok(self) -> bool:
        return self.answer is not None


class GatewayUnreachable(Exception):
    """No connection to the gateway at all: one message for the whole run, not one per file."""


def percent(probability: float) -> str:
    return f"{probability * 100:.1f}%"


def seconds(value: float) -> str:
    return f"{round(value, 1):g}"


def segment_summary(segments: Sequence[dict[str, Any]], threshold: float) -> str:
    """`12 segments, 3 scored fake, lowest 0.02 at 40-46 s`; empty for a clip of one window (nothing to add)."""
    if len(segments) < 2:
        return ""
    fake = sum(s["prediction"] < threshold for s in segments)
    lowest = min(segments, key=lambda s: s["prediction"])
    where = f"{seconds(lowest['start_seconds'])}-{seconds(lowest['end_seconds'])} s"
    return f"{len(segments)} segments, {fake} scored fake, lowest {lowest['prediction']:.2f} at {where}"


def format_answer(file: str, answer: dict[str, Any]) -> str:
    """One human-readable line for a scored file: verdict, P(real), model version, segments of long audio."""
    line = f"{file}: {answer['label']}, P(real) {percent(answer['prediction'])}, version {answer['version']}"
    summary = segment_summary(answer["segments"], answer["threshold"])
    return f"{line}; {summary}" if summary else line


def format_result(result: FileResult, as_json: bool = False) -> str:
    if as_json:
        if result.answer is not None:
            return json.dumps({**result.answer, "file": result.file})
        return json.dumps({"file": result.file, "detail": result.detail, "status": result.status})
    if result.answer is not None:
        return format_answer(result.file, result.answer)
    status = f" ({result.status})" if result.status is not None else ""
    return f"{result.file}: failed{status}: {result.detail}"


def error_detail(response: httpx.Response) -> str:
    """The gateway's `detail`, or the start of whatever else answered (a proxy, a different service)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return body["detail"]
    text = " ".join(response.text.split())[:MAX_ERROR_TEXT]
    return text or response.reason_phrase or "no detail given"


def read_local(path: Path) -> bytes | str:
    """The file's bytes, or a message saying why it cannot be read (missing, a directory, no permission)."""
    try:
        return path.read_bytes()
    except OSError as error:
        return f"cannot read the file: {error.strerror or error}"


async def score_file(client: httpx.AsyncClient, file: str, version: str | None, limit: asyncio.Semaphore) -> FileResult:
    """Upload one file; any failure but an unreachable gateway becomes that file's result."""
    async with limit:  # reading inside the bound keeps at most `concurrency` files in memory
        audio = await asyncio.to_thread(read_local, Path(file))
        if isinstance(audio, str):
            return FileResult(file, detail=audio)
        params = {"version": version} if version else None
        try:
            response = await client.post(PREDICT_PATH, files={"file": (Path(file).name, audio)}, params=params)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise GatewayUnreachable(str(error) or type(error).__name__) from error
        except httpx.TimeoutException:
            return FileResult(file, detail=f"no answer within {client.timeout.read:g} s (see --timeout)")
        except httpx.TransportError as error:
            return FileResult(file, detail=f"the connection failed: {error or type(error).__name__}")
    if response.is_error:
        return FileResult(file, detail=error_detail(response), status=response.status_code)
    try:
        return FileResult(file, answer=response.json())
    except ValueError:
        return FileResult(file, detail="the answer is not JSON", status=response.status_code)


async def score_files(
    files: Sequence[str],
    url: str,
    version: str | None,
    concurrency: int,
    timeout: float,
    emit: Callable[[FileResult], None],
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[FileResult]:
    """Score every file, calling `emit` for each in the order given, as soon as it and all before it are done.

    Raises GatewayUnreachable (the other uploads are cancelled) if the gateway cannot be connected to.
    """
    results: list[FileResult | None] = [None] * len(files)
    emitted = 0
    limit = asyncio.Semaphore(concurrency)
    progress = tqdm(total=len(files), unit="file", file=sys.stderr, disable=len(files) < 2, leave=False)

    async def run_one(index: int, client: httpx.AsyncClient) -> None:
        nonlocal emitted
        results[index] = await score_file(client, files[index], version, limit)
        progress.update()
        while emitted < len(files) and (ready := results[emitted]) is not None:
            emit(ready)
            emitted += 1

    http_timeout = httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_SECONDS))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    try:
        async with (
            httpx.AsyncClient(base_url=url, timeout=http_timeout, limits=limits, transport=transport) as client,
            asyncio.TaskGroup() as group,
        ):
            for index in range(len(files)):
                group.create_task(run_one(index, client))
    except* GatewayUnreachable as errors:
        raise errors.exceptions[0] from None
    finally:
        progress.close()
    return [r for r in results if r is not None]


def unreachable_message(url: str, reason: str) -> str:
    return f"cannot reach the detector at {url}: {reason}; is `make serve` running?"


def http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"expected an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {number}")
        return number

    return parse


def positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {value}")
    return number


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.client",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="audio files to score")
    parser.add_argument("--url", type=http_url, default=DEFAULT_URL, help=f"the gateway (default: {DEFAULT_URL})")
    parser.add_argument("--version", help="model version to score with (default: the served default version)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    parser.add_argument(
        "--concurrency",
        type=bounded_int(1, MAX_CONCURRENCY),
        default=DEFAULT_CONCURRENCY,
        help=f"uploads in flight at once (default: {DEFAULT_CONCURRENCY}, at most {MAX_CONCURRENCY})",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="S",
        help=f"seconds to wait for each answer (default: {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, transport: httpx.AsyncBaseTransport | None = None) -> int:
    """Run the client; `transport` lets tests answer in place of a gateway (httpx.MockTransport)."""
    args = parse_args(argv)

    def emit(result: FileResult) -> None:
        tqdm.write(format_result(result, args.json), file=sys.stdout)

    try:
        results = asyncio.run(
            score_files(args.files, args.url, args.version, args.concurrency, args.timeout, emit, transport)
        )
    except GatewayUnreachable as error:
        print(unreachable_message(args.url, str(error)), file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
