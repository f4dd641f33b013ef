"""Build a TorchServe model archive (.mar) from a checkpoint directory, prove it loads, then store it.

    python -m scripts.archive --checkpoint artifacts/default --store model-store [--version X]

The archive holds the handler, a copy of the model/ package (importable as `model.*` inside the
worker), the checkpoint's weights and JSON configs and a model-config.yaml with the batching,
worker and handler settings. torch-model-archiver copies the *contents* of an extra-files
directory into the archive root, so model/ is staged one level down (staging/model/...) to
survive as a package.

Before anything reaches the store, the archive is unpacked in a fresh temporary directory and a
subprocess whose import path is that directory alone loads it through TorchServe's own model
loader and scores a generated test signal plus a corrupt input; only if that works is the file
moved (atomically) into the store. So a broken archive never replaces a working one.

File names: `<name>.mar` (default; it is what config.properties loads at start) or, with
--versioned-name, `<name>-<version>.mar`, so further versions can sit beside it in the store and
be registered through the management API (scripts/manage.py register).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
HANDLER_FILE = REPO_ROOT / "handler" / "detector_handler.py"
MODEL_PACKAGE = REPO_ROOT / "model"
MODEL_NAME = "detector"
# The checkpoint's files (model/checkpoint.py); repeated here so this script can run in the
# smoke-test subprocess without importing the repo's model/ package.
CHECKPOINT_FILES = ("weights.pt", "model_config.json", "feature_config.json", "metadata.json")
SPEECH_CHECK_ENV = "DETECTOR_SPEECH_CHECK"  # model.vad's switch, repeated for the same reason
METADATA_FILE = "metadata.json"
MODEL_CONFIG_YAML = "model-config.yaml"
MANIFEST_PATH = "MAR-INF/MANIFEST.json"
ARCHIVER_TIMEOUT_SECONDS = 300
SMOKE_TIMEOUT_SECONDS = 300
SMOKE_SIGNAL_SECONDS = 1.5
SMOKE_SAMPLE_RATE = 16_000
SMOKE_CORRUPT_INPUT = b"this is not audio"
EXPECTED_SMOKE_STATUSES = [200, 415]


class ArchiveError(RuntimeError):
    """The archive could not be built or failed its load test; nothing was written to the store."""


@dataclass(frozen=True)
class ServingSettings:
    """What goes into model-config.yaml: TorchServe batching/workers plus the handler's limits.

    Tuned with `make bench` for 2 cores (docs/operations.md, Benchmark): two workers with one torch
    thread each, so a long file occupies one core and short requests keep the other (no head-of-line
    blocking, no oversubscription). TorchServe waits up to max_batch_delay_ms for a batch to fill
    even when nothing else is queued, so that delay is added to every request of an idle server:
    5 ms, not 50. Under load the queue fills batches of 8 at once.
    """

    batch_size: int = 8
    max_batch_delay_ms: int = 5
    workers: int = 2
    response_timeout_seconds: int = 120
    max_audio_seconds: float = 600.0
    decode_timeout_seconds: float = 60.0
    torch_threads: int = 0  # 0: the handler shares the CPUs out among the workers

    def to_yaml(self) -> str:
        """TorchServe reads the camelCase keys; the `handler:` section is ours (DetectorHandler)."""
        lines = [
            "# Written by scripts/archive.py. TorchServe settings for this model; `handler:` is read",
            "# by handler/detector_handler.py.",
            f"minWorkers: {self.workers}",
            f"maxWorkers: {self.workers}",
            f"batchSize: {self.batch_size}",
            f"maxBatchDelay: {self.max_batch_delay_ms}",
            f"responseTimeout: {self.response_timeout_seconds}",
            "handler:",
            f"  max_audio_seconds: {self.max_audio_seconds}",
            f"  decode_timeout_seconds: {self.decode_timeout_seconds}",
            f"  torch_threads: {self.torch_threads}",
        ]
        return "\n".join(lines) + "\n"


def build_archive(
    checkpoint: Path,
    store: Path,
    version: str | None = None,
    name: str = MODEL_NAME,
    versioned_name: bool = False,
    settings: ServingSettings | None = None,
) -> Path:
    """Archive `checkpoint`, load-test it, and move it into `store`; return its path there."""
    checkpoint, store = Path(checkpoint), Path(store)
    check_checkpoint(checkpoint)
    version = version or checkpoint_version(checkpoint)
    settings = settings or ServingSettings()
    file_name = f"{name}-{version}.mar" if versioned_name else f"{name}.mar"
    with tempfile.TemporaryDirectory(prefix="archive-") as tmp:
        work = Path(tmp)
        extra, config = stage(checkpoint, work / "staging", settings)
        built = run_archiver(name, version, extra, config, work)
        smoke_test(built, work / "unpacked")
        store.mkdir(parents=True, exist_ok=True)
        partial = store / f".{file_name}.partial"
        shutil.copyfile(built, partial)
        os.replace(partial, store / file_name)
    return store / file_name


def check_checkpoint(checkpoint: Path) -> None:
    missing = [f for f in CHECKPOINT_FILES if not (checkpoint / f).is_file()]
    if missing:
        raise ArchiveError(f"{checkpoint} is not a checkpoint directory: it lacks {', '.join(missing)}")


def checkpoint_version(checkpoint: Path) -> str:
    """The version training wrote into metadata.json; archives must be versioned explicitly."""
    metadata = json.loads((checkpoint / METADATA_FILE).read_text())
    version = metadata.get("version")
    if not version:
        raise ArchiveError(f"{checkpoint / METADATA_FILE} has no 'version'; pass --version")
    return str(version)


def stage(checkpoint: Path, staging: Path, settings: ServingSettings) -> tuple[Path, Path]:
    """Lay out the extra files so that the archive root gets model/ as a package plus the checkpoint."""
    extra = staging / "extra"
    shutil.copytree(MODEL_PACKAGE, extra / "model", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for file in CHECKPOINT_FILES:
        shutil.copy2(checkpoint / file, extra / file)
    config = staging / MODEL_CONFIG_YAML
    config.write_text(settings.to_yaml())
    return extra, config


def run_archiver(name: str, version: str, extra: Path, config: Path, work: Path) -> Path:
    """Run torch-model-archiver with its own TMPDIR (it stages in $TMPDIR/<name> and deletes it)."""
    export = work / "export"
    export.mkdir()
    archiver_tmp = work / "archiver-tmp"
    archiver_tmp.mkdir()
    command = [
        str(Path(sys.executable).with_name("torch-model-archiver")),
        "--model-name", name, "--version", version,
        "--handler", str(HANDLER_FILE), "--extra-files", str(extra),
        "--config-file", str(config), "--export-path", str(export), "--force",
    ]  # fmt: skip
    env = {**os.environ, "TMPDIR": str(archiver_tmp)}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=ARCHIVER_TIMEOUT_SECONDS)
    built = export / f"{name}.mar"
    if result.returncode != 0 or not built.is_file():
        raise ArchiveError(f"torch-model-archiver failed:\n{result.stdout}{result.stderr}")
    return built


def smoke_test(mar: Path, unpacked: Path) -> None:
    """Unpack the archive and load + run it in a subprocess that can import only what it contains."""
    with zipfile.ZipFile(mar) as archive:
        archive.extractall(unpacked)
    smoke_tmp = unpacked.parent / "smoke-tmp"
    smoke_tmp.mkdir()
    # The test signal is not speech to Silero: the smoke test checks packaging and scoring, not the speech check.
    env = {**os.environ, "PYTHONPATH": str(unpacked), "TMPDIR": str(smoke_tmp), SPEECH_CHECK_ENV: "0"}
    # -P: the script's own directory (scripts/) must not join the import path either.
    command = [sys.executable, "-P", str(Path(__file__).resolve()), "--smoke-test", str(unpacked)]
    try:
        result = subprocess.run(
            command, cwd=unpacked, env=env, capture_output=True, text=True, timeout=SMOKE_TIMEOUT_SECONDS
        )
    except subprocess.TimeoutExpired as error:
        raise ArchiveError(f"the archive's load test took longer than {SMOKE_TIMEOUT_SECONDS} s") from error
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-4000:]
        raise ArchiveError(f"the archive failed its load test, so it was not stored:\n{tail}")


def run_smoke_test(model_dir: Path) -> None:
    """(In the subprocess.) Load the unpacked archive as a TorchServe worker would and score two inputs."""
    from ts.context import RequestProcessor
    from ts.model_loader import TsModelLoader

    manifest = json.loads((model_dir / MANIFEST_PATH).read_text())["model"]
    service = TsModelLoader().load(manifest["modelName"], str(model_dir), manifest["handler"], None, 2)
    import model  # imported by the handler just now: it must be the archive's copy, not the repo's

    if not Path(model.__file__).resolve().is_relative_to(model_dir.resolve()):
        raise ArchiveError(f"the archive does not carry the model package (imported {model.__file__})")
    inputs = [{"body": smoke_wav()}, {"data": SMOKE_CORRUPT_INPUT}]
    context = service.context
    context.request_processor = [RequestProcessor({}) for _ in inputs]
    # Service._entry_point is the handler's bound `handle` (TorchServe 0.12's model loader).
    answers = service._entry_point(inputs, context)
    statuses = [context.get_response_status(i)[0] for i in range(len(inputs))]
    if statuses != EXPECTED_SMOKE_STATUSES:
        raise ArchiveError(f"expected statuses {EXPECTED_SMOKE_STATUSES}, got {statuses}: {answers}")
    body = json.loads(answers[0])
    if not (0.0 <= body["prediction"] <= 1.0 and math.isfinite(body["prediction"])):
        raise ArchiveError(f"the test signal got an invalid prediction: {body}")
    if body["version"] != manifest["modelVersion"]:
        raise ArchiveError(f"the handler reports version {body['version']}, the manifest {manifest['modelVersion']}")
    print(f"smoke test passed: P(real)={body['prediction']:.4f} for the test signal, corrupt input refused")


def smoke_wav() -> bytes:
    """WAV bytes of the shared test signal, from the archive's own copy of model/ (in the subprocess)."""
    from model.signals import speech_like, wav_bytes

    return wav_bytes(speech_like(SMOKE_SIGNAL_SECONDS, SMOKE_SAMPLE_RATE))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = ServingSettings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--checkpoint", type=Path, help="checkpoint directory (weights.pt + JSON configs)")
    parser.add_argument("--store", type=Path, default=Path("model-store"), help="model store (default: model-store)")
    parser.add_argument("--version", help="archive version (default: metadata.json's 'version')")
    parser.add_argument("--name", default=MODEL_NAME, help=f"TorchServe model name (default: {MODEL_NAME})")
    parser.add_argument("--versioned-name", action="store_true", help="write <name>-<version>.mar, not <name>.mar")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--max-batch-delay-ms", type=int, default=defaults.max_batch_delay_ms)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--response-timeout", type=int, default=defaults.response_timeout_seconds)
    parser.add_argument("--max-audio-seconds", type=float, default=defaults.max_audio_seconds)
    parser.add_argument("--decode-timeout", type=float, default=defaults.decode_timeout_seconds)
    parser.add_argument("--torch-threads", type=int, default=defaults.torch_threads, help="0: CPUs / workers")
    parser.add_argument("--smoke-test", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke_test is None and args.checkpoint is None:
        parser.error("--checkpoint is required")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke_test is not None:
        run_smoke_test(args.smoke_test)
        return 0
    settings = ServingSettings(
        batch_size=args.batch_size,
        max_batch_delay_ms=args.max_batch_delay_ms,
        workers=args.workers,
        response_timeout_seconds=args.response_timeout,
        max_audio_seconds=args.max_audio_seconds,
        decode_timeout_seconds=args.decode_timeout,
        torch_threads=args.torch_threads,
    )
    try:
        path = build_archive(args.checkpoint, args.store, args.version, args.name, args.versioned_name, settings)
    except ArchiveError as error:
        print(f"archive: {error}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
