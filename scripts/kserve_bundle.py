"""Lay out a model bundle for KServe's TorchServe runtime: config/config.properties + model-store/detector.mar.

    python -m scripts.kserve_bundle --checkpoint artifacts/default --out runs/kserve-bundle
    python -m scripts.kserve_bundle --archive model-store/detector.mar --out runs/kserve-bundle

KServe copies the folder named by the InferenceService's storageUri to /mnt/models and starts
`torchserve --start --model-store=/mnt/models/model-store --ts-config=/mnt/models/config/config.properties`;
its wrapper in the same container reads the addresses and `model_snapshot` from that file, serves
KServe's protocol on :8080 and forwards to TorchServe. So the file written here holds what that
runtime expects (TorchServe on 8085 for inference and management, metrics on 8082, gRPC on
7070/7071, the store under /mnt/models, the model in `model_snapshot`, `enable_envvars_config=true`
so the runtime's TS_SERVICE_ENVELOPE applies) and keeps this project's decisions: every port on
loopback (the wrapper reaches TorchServe inside the pod, nothing outside it can), `allowed_urls`
limited to the store, the model API off (the snapshot loads the model; a new version is a new
bundle), no pip installs at load, sizes, timeouts and metrics as in the repository's config.properties.

`service_envelope=kservev2` and batch size 1: TorchServe's kservev2 envelope reads only the first
request of a batch, so batching under it would answer 503 to every batch of two or more.
The archive is built (and load-tested) by scripts/archive.py, or an existing one is copied.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

from scripts.archive import MANIFEST_PATH, MODEL_NAME, ArchiveError, ServingSettings, build_archive

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_TEMPLATE = REPO_ROOT / "config.properties"
CONFIG_FILE = Path("config") / "config.properties"
STORE_DIR = "model-store"
ARCHIVE_FILE = f"{MODEL_NAME}.mar"
# Where KServe's storage initializer puts the bundle, and the runtime's ports (kserve-torchserve).
MOUNT = "/mnt/models"
HOST = "127.0.0.1"
INFERENCE_PORT = 8085  # the wrapper itself listens on 8080 (HTTP) and 8081 (gRPC)
METRICS_PORT = 8082  # the runtime's prometheus.kserve.io/port annotation
GRPC_INFERENCE_PORT = 7070
GRPC_MANAGEMENT_PORT = 7071
ENVELOPE = "kservev2"
BATCH_SIZE = 1
# Decisions taken over from the repository's config.properties unchanged.
SHARED_KEYS = (
    "max_request_size", "max_response_size", "decode_input_request", "default_response_timeout",
    "metrics_mode", "enable_metrics_api", "disable_token_authorization", "install_py_dep_per_model",
    "number_of_gpu",
)  # fmt: skip


class BundleError(RuntimeError):
    """The bundle could not be laid out; the message says why."""


def build_bundle(
    out: Path,
    checkpoint: Path | None = None,
    archive: Path | None = None,
    version: str | None = None,
    settings: ServingSettings | None = None,
) -> Path:
    """Write <out>/model-store/detector.mar (built from `checkpoint` or copied from `archive`) and its config."""
    out = Path(out)
    settings = replace(settings or ServingSettings(), batch_size=BATCH_SIZE)
    store = out / STORE_DIR
    if (checkpoint is None) == (archive is None):
        raise BundleError("give either a checkpoint or an archive")
    if checkpoint is not None:
        mar = build_archive(Path(checkpoint), store, version, MODEL_NAME, settings=settings)
    else:
        mar = copy_archive(Path(archive), store)
    config = out / CONFIG_FILE
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(render_config(CONFIG_TEMPLATE.read_text(), archive_version(mar), settings))
    return config


def copy_archive(archive: Path, store: Path) -> Path:
    """An archive already built (and load-tested) by scripts/archive.py, copied as detector.mar."""
    if not archive.is_file():
        raise BundleError(f"{archive} does not exist")
    manifest = archive_manifest(archive)
    if manifest.get("modelName") != MODEL_NAME:
        raise BundleError(f"{archive} holds model {manifest.get('modelName')!r}, not {MODEL_NAME!r}")
    store.mkdir(parents=True, exist_ok=True)
    target = store / ARCHIVE_FILE
    shutil.copyfile(archive, target)
    return target


def archive_manifest(archive: Path) -> dict:
    try:
        with zipfile.ZipFile(archive) as mar:
            return json.loads(mar.read(MANIFEST_PATH))["model"]
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as error:
        raise BundleError(f"{archive} is not a TorchServe model archive ({error})") from None


def archive_version(archive: Path) -> str:
    return str(archive_manifest(archive)["modelVersion"])


def model_snapshot(version: str, settings: ServingSettings) -> dict:
    """The startup snapshot TorchServe restores (and the KServe wrapper reads the model name from)."""
    entry = {
        "defaultVersion": True,
        "marName": ARCHIVE_FILE,
        "minWorkers": settings.workers,
        "maxWorkers": settings.workers,
        "batchSize": BATCH_SIZE,
        "maxBatchDelay": settings.max_batch_delay_ms,
        "responseTimeout": settings.response_timeout_seconds,
    }
    return {"name": "startup.cfg", "modelCount": 1, "models": {MODEL_NAME: {version: entry}}}


def shared_properties(template: str) -> dict[str, str]:
    """SHARED_KEYS' values in the repository's config.properties (comments skipped)."""
    pairs = [line.split("=", 1) for line in template.splitlines() if "=" in line and not line.lstrip().startswith("#")]
    values = {key.strip(): value.strip() for key, value in pairs}
    missing = [key for key in SHARED_KEYS if key not in values]
    if missing:
        raise BundleError(f"config.properties lacks {', '.join(missing)}")
    return {key: values[key] for key in SHARED_KEYS}


def render_config(template: str, version: str, settings: ServingSettings) -> str:
    """The bundle's config.properties: KServe's addresses and snapshot, the repository's other decisions."""
    store = f"{MOUNT}/{STORE_DIR}"
    inference = f"http://{HOST}:{INFERENCE_PORT}"
    lines = [
        "# Written by scripts/kserve_bundle.py for KServe's TorchServe runtime (kserve-torchserve), which",
        f"# mounts this bundle at {MOUNT}. TorchServe listens on loopback only: KServe's wrapper in the same",
        "# container serves the KServe protocol on :8080 and forwards to it; nothing outside the pod reaches it.",
        f"inference_address={inference}",
        f"management_address={inference}",
        f"metrics_address=http://{HOST}:{METRICS_PORT}",
        f"grpc_inference_address={HOST}",
        f"grpc_management_address={HOST}",
        f"grpc_inference_port={GRPC_INFERENCE_PORT}",
        f"grpc_management_port={GRPC_MANAGEMENT_PORT}",
        f"model_store={store}",
        "# The model is loaded from this snapshot at start; batch size 1 because the kservev2 envelope",
        "# reads only the first request of a batch.",
        f"model_snapshot={json.dumps(model_snapshot(version, settings), separators=(',', ':'))}",
        "# KServe's v2 (Open Inference) protocol; the runtime also sets TS_SERVICE_ENVELOPE from the",
        "# InferenceService's protocolVersion, which applies because environment overrides are on.",
        f"service_envelope={ENVELOPE}",
        "enable_envvars_config=true",
        "# No registration at run time: a new version is a new bundle (and a new InferenceService revision);",
        "# a URL could only name a .mar directly inside the store anyway.",
        "enable_model_api=false",
        f"allowed_urls=file://\\\\Q{store}/\\\\E[^/]+\\\\.mar",
        "# Taken over unchanged from the repository's config.properties (see the reasons there).",
    ]
    lines += [f"{key}={value}" for key, value in shared_properties(template).items()]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = ServingSettings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="checkpoint directory to archive (scripts/archive.py)")
    source.add_argument("--archive", type=Path, help="an existing detector .mar to copy instead")
    parser.add_argument("--out", type=Path, default=Path("runs/kserve-bundle"), help="default: runs/kserve-bundle")
    parser.add_argument("--version", help="archive version with --checkpoint (default: metadata.json's 'version')")
    parser.add_argument("--workers", type=int, default=defaults.workers, help="workers for the model")
    parser.add_argument("--response-timeout", type=int, default=defaults.response_timeout_seconds)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = ServingSettings(workers=args.workers, response_timeout_seconds=args.response_timeout)
    try:
        config = build_bundle(args.out, args.checkpoint, args.archive, args.version, settings)
    except (ArchiveError, BundleError) as error:
        print(f"kserve_bundle: {error}", file=sys.stderr)
        return 1
    print(f"wrote {config} and {args.out / STORE_DIR / ARCHIVE_FILE}; upload {args.out} and point the")
    print("InferenceService's storageUri at it (deploy/kserve/inferenceservice.yaml)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
