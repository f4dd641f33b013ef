"""`make bench --smoke` (what CI runs): one pass through every part of the benchmark, and the report's shape.

No figure is asserted against a time: the smoke run proves the harness measures each thing, the
full run on a quiet machine measures the targets.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from scripts import bench
from scripts.archive import ServingSettings
from tests.conftest import make_checkpoint

pytestmark = pytest.mark.integration

LEVEL_KEYS = {"concurrency", "requests", "requests_per_second", "p50_ms", "p95_ms", "p99_ms", "cpu_ms_per_request"}
STAGES = {"decode_wav", "decode_mp3", "resample_44k", "level_normalisation", "log_mel", "forward", "json",
          "end_to_end_wav"}  # fmt: skip


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    root = tmp_path_factory.mktemp("bench")
    checkpoint = make_checkpoint(root / "checkpoint", version="7.0")
    assert bench.main(["--smoke", "--checkpoint", str(checkpoint), "--out", str(root / "out")]) == 0
    return json.loads((root / "out" / "report.json").read_text()), (root / "out" / "report.md").read_text()


def assert_levels(rows: list[dict[str, Any]], groups: set[str]) -> None:
    assert [row["concurrency"] for row in rows] == list(bench.CONCURRENCY)
    for row in rows:
        assert set(row) == LEVEL_KEYS
        assert row["requests"] >= row["concurrency"] and row["requests_per_second"] > 0
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        assert set(row["cpu_ms_per_request"]) == groups


def test_every_path_is_loaded_at_every_concurrency(smoke: tuple[dict[str, Any], str]) -> None:
    report, _ = smoke
    assert report["smoke"] is True and report["fallback_reason"] is None
    served = report["served"]
    assert_levels(report["baseline"]["levels"], {"baseline"})
    stack = {"gateway", "torchserve", "bench client"}
    for rows in (served["direct"], served["gateway"], served["batching_off"]["levels"]):
        assert_levels(rows, stack)
    assert served["batching_off"]["batch_size"] == 1
    assert served["model"]["batchSize"] == ServingSettings().batch_size
    assert served["model"]["workers"] == ServingSettings().workers


def test_long_audio_matches_offline_scoring_in_two_second_segments(smoke: tuple[dict[str, Any], str]) -> None:
    report, _ = smoke
    long = report["served"]["long_audio"]
    for kind in ("wav", "mp3"):
        assert long[kind]["segments"] >= long["clip_seconds"] / 2
        assert long[kind]["max_segment_seconds"] <= 2.0
        assert long[kind]["served_offline_max_difference"] <= 1e-5
    hol = report["served"]["head_of_line"]
    assert hol["long_files_scored"] >= 1 and hol["idle"]["requests"] >= 1 and hol["loaded"]["requests"] >= 1


def test_profile_steps_options_memory_and_cold_start_are_reported(smoke: tuple[dict[str, Any], str]) -> None:
    report, text = smoke
    offline = report["offline"]
    assert [p["clip_seconds"] for p in offline["profile"]] == [4.0, report["served"]["long_audio"]["clip_seconds"]]
    for profile in offline["profile"]:
        assert set(profile["stages"]) == STAGES
        assert all(t["wall_ms"] >= 0 and t["cpu_ms"] >= 0 for t in profile["stages"].values())
    assert len(offline["steps"]) == 3 and offline["steps"][-1]["segments"] > offline["steps"][0]["segments"]
    options = {o["option"]: o for o in offline["forward_options"]}
    shipped = options["inference copy (shipped)"]
    assert shipped["agrees"] and shipped["max_abs_logit_difference"] <= 1e-4
    processes = {p["process"] for p in report["peak_rss_mib"]}
    assert {"baseline (FastAPI + model)", "gateway", "torchserve frontend (java)", "torchserve worker"} <= processes
    cold = report["served"]["cold_start"]
    assert 0 < cold["healthy_seconds"] <= cold["first_prediction_seconds"]
    assert {t["target"] for t in report["targets"]} and all(isinstance(t["passed"], bool) for t in report["targets"])
    for heading in ("**Targets**", "**4 s WAV uploads**", "**Head-of-line blocking**", "**Per-stage profile**",
                    "**What each change bought**", "**Forward options**", "**Peak RSS per process**"):  # fmt: skip
        assert heading in text
    assert "Smoke run" in text
