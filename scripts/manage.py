"""Manage served detector versions through TorchServe's management API.

    python -m scripts.manage list
    python -m scripts.manage register detector-2.0.mar      # an archive file in the model store
    python -m scripts.manage set-default 2.0
    python -m scripts.manage scale 2 --version 2.0
    python -m scripts.manage unregister 2.0

Archives are registered by file name: TorchServe loads them from its model store and refuses
URLs (config.properties: allowed_urls). Build them with
`python -m scripts.archive --checkpoint DIR --store model-store --versioned-name`.
Answers are printed as JSON; a refusal prints TorchServe's message and exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import httpx

DEFAULT_MANAGEMENT_URL = "http://127.0.0.1:8081"
MODEL_NAME = "detector"
# Registration and scaling wait for workers to load the model (synchronous=true).
WORKER_TIMEOUT_SECONDS = 300.0
REQUEST_TIMEOUT_SECONDS = 30.0


class ManagementError(RuntimeError):
    """TorchServe refused the request; the message is TorchServe's own."""


def call(method: str, url: str, params: dict[str, Any] | None = None, timeout: float = REQUEST_TIMEOUT_SECONDS) -> Any:
    """One management API request; its JSON answer, or ManagementError with TorchServe's message."""
    try:
        reply = httpx.request(method, url, params=params, timeout=timeout)
    except httpx.HTTPError as error:
        raise ManagementError(f"cannot reach TorchServe at {url}: {error}") from error
    try:
        body = reply.json()
    except ValueError:
        body = {"message": reply.text}
    if reply.is_error:
        message = body.get("message", reply.text) if isinstance(body, dict) else reply.text
        raise ManagementError(f"TorchServe answered {reply.status_code}: {message}")
    return body


def list_versions(management_url: str, model: str = MODEL_NAME) -> dict[str, Any]:
    """The model's registered versions, which one is the default, and each one's worker states."""
    versions = call("GET", f"{management_url}/models/{model}/all")
    default = call("GET", f"{management_url}/models/{model}")[0]["modelVersion"]
    return {
        "model": model,
        "default": default,
        "versions": [
            {
                "version": v["modelVersion"],
                "archive": v["modelUrl"],
                "default": v["modelVersion"] == default,
                "workers": [w["status"] for w in v.get("workers", [])],
                "batch_size": v.get("batchSize"),
                "max_batch_delay_ms": v.get("maxBatchDelay"),
            }
            for v in versions
        ],
    }


def describe(management_url: str, model: str = MODEL_NAME, version: str | None = None) -> Any:
    suffix = f"/{version}" if version else ""
    return call("GET", f"{management_url}/models/{model}{suffix}")


def register(management_url: str, archive: str, workers: int = 1) -> Any:
    """Register an archive from the store (its manifest names the model and version) and start workers."""
    params = {"url": archive, "initial_workers": workers, "synchronous": "true"}
    return call("POST", f"{management_url}/models", params, timeout=WORKER_TIMEOUT_SECONDS)


def set_default(management_url: str, version: str, model: str = MODEL_NAME) -> Any:
    return call("PUT", f"{management_url}/models/{model}/{version}/set-default")


def scale(management_url: str, workers: int, version: str | None = None, model: str = MODEL_NAME) -> Any:
    """Set the worker count (min = max = workers) of a version, or of the default version."""
    suffix = f"/{version}" if version else ""
    params = {"min_worker": workers, "max_worker": workers, "synchronous": "true"}
    return call("PUT", f"{management_url}/models/{model}{suffix}", params, timeout=WORKER_TIMEOUT_SECONDS)


def unregister(management_url: str, version: str, model: str = MODEL_NAME) -> Any:
    """Unregister one version (TorchServe refuses the default one while others remain)."""
    return call("DELETE", f"{management_url}/models/{model}/{version}", timeout=WORKER_TIMEOUT_SECONDS)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--management-url", default=DEFAULT_MANAGEMENT_URL, help=f"default: {DEFAULT_MANAGEMENT_URL}")
    parser.add_argument("--model", default=MODEL_NAME, help=f"model name (default: {MODEL_NAME})")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="versions, the default one and worker states")
    describe_parser = commands.add_parser("describe", help="TorchServe's full description of a version")
    describe_parser.add_argument("--version", help="default: the default version")
    register_parser = commands.add_parser("register", help="register an archive file from the model store")
    register_parser.add_argument("archive", help="file name in the model store, e.g. detector-2.0.mar")
    register_parser.add_argument("--workers", type=int, default=1)
    default_parser = commands.add_parser("set-default", help="route unversioned predictions to this version")
    default_parser.add_argument("version")
    scale_parser = commands.add_parser("scale", help="set the number of workers")
    scale_parser.add_argument("workers", type=int)
    scale_parser.add_argument("--version", help="default: the default version")
    unregister_parser = commands.add_parser("unregister", help="unregister a version (not the default one)")
    unregister_parser.add_argument("version")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> Any:
    url, model = args.management_url.rstrip("/"), args.model
    if args.command == "list":
        return list_versions(url, model)
    if args.command == "describe":
        return describe(url, model, args.version)
    if args.command == "register":
        return register(url, args.archive, args.workers)
    if args.command == "set-default":
        return set_default(url, args.version, model)
    if args.command == "scale":
        return scale(url, args.workers, args.version, model)
    return unregister(url, args.version, model)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        answer = run(args)
    except ManagementError as error:
        print(f"manage: {error}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
