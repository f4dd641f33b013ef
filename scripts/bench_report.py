"""The benchmark's targets (issue 17) and its Markdown tables, from the report scripts/bench.py builds."""

from __future__ import annotations

from typing import Any

from model.timeline import SEGMENT_SECONDS

THROUGHPUT_RATIO = 0.7  # gateway req/s at concurrency 32 vs the in-process baseline
GATEWAY_OVERHEAD_MS = 3.0  # gateway p50 minus direct TorchServe p50 at concurrency 1
LONG_FILE_SECONDS = 2.0  # a 10 min WAV through the gateway
HEAD_OF_LINE_RATIO = 2.0  # 3 s p95 beside long files vs alone
COLD_START_SECONDS = 20.0
SERVED_OFFLINE = 1e-5


def level(rows: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    return next(row for row in rows if row["concurrency"] == concurrency)


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured value; `passed` is only meaningful for a full (non-smoke) run."""
    served = report["served"]
    gateway, direct, baseline = served["gateway"], served["direct"], report["baseline"]["levels"]
    wav = served["long_audio"]["wav"]
    long = served["long_audio"]
    rows = [
        ("gateway throughput at c=32 / in-process baseline", level(gateway, 32)["requests_per_second"]
         / level(baseline, 32)["requests_per_second"], ">=", THROUGHPUT_RATIO),
        ("gateway p50 - direct TorchServe p50 at c=1 (ms)", level(gateway, 1)["p50_ms"] - level(direct, 1)["p50_ms"],
         "<=", GATEWAY_OVERHEAD_MS),
        (f"{long['clip_seconds']:g} s WAV through the gateway (s, median)", wav["median_seconds"], "<=",
         LONG_FILE_SECONDS),
        ("longest segment of that answer (s)", wav["max_segment_seconds"], "<=", SEGMENT_SECONDS),
        ("3 s p95 beside long files / alone", served["head_of_line"]["p95_ratio"], "<=", HEAD_OF_LINE_RATIO),
        ("cold start: serve start to first prediction (s)", served["cold_start"]["first_prediction_seconds"], "<=",
         COLD_START_SECONDS),
        ("served vs offline scores, largest difference", max(wav["served_offline_max_difference"],
         long["mp3"]["served_offline_max_difference"]), "<=", SERVED_OFFLINE),
    ]  # fmt: skip
    return [
        {
            "target": name,
            "value": round(value, 6),
            "limit": f"{sense} {limit:g}",
            "passed": value >= limit if sense == ">=" else value <= limit,
        }
        for name, value, sense, limit in rows
    ]


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def served_table(report: dict[str, Any]) -> str:
    rows = []
    paths = (("in-process baseline", report["baseline"]["levels"]), ("direct TorchServe", report["served"]["direct"]),
             ("gateway -> TorchServe", report["served"]["gateway"]),
             ("direct TorchServe, batching off", report["served"]["batching_off"]["levels"]))  # fmt: skip
    for name, levels in paths:
        for row in levels:
            cpu = ", ".join(f"{k} {v}" for k, v in row["cpu_ms_per_request"].items())
            rows.append([name, row["concurrency"], row["requests"], row["requests_per_second"], row["p50_ms"],
                         row["p95_ms"], row["p99_ms"], cpu])  # fmt: skip
    header = ["path", "concurrency", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "CPU ms per request"]
    return table(header, rows)


def profile_table(report: dict[str, Any]) -> str:
    profiles = report["offline"]["profile"]
    names = list(profiles[0]["stages"])
    header = ["stage"] + [f"{p['clip_seconds']:g} s clip: wall / CPU ms" for p in profiles]
    rows = [[name] + [f"{p['stages'][name]['wall_ms']} / {p['stages'][name]['cpu_ms']}" for p in profiles]
            for name in names]  # fmt: skip
    return table(header, rows)


def markdown(report: dict[str, Any]) -> str:
    m, served, offline = report["machine"], report["served"], report["offline"]
    long, hol = served["long_audio"], served["head_of_line"]
    parts = [
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, torch {m['torch']}; load average "
        f"{m['load_average_start']} at start, {m['load_average_end']} at end. Checkpoint {report['checkpoint']}"
        + (f" ({report['fallback_reason']})" if report["fallback_reason"] else "")
        + f". TorchServe: {served['model']}."
        + (" **Smoke run: the figures prove the harness, not the targets.**" if report["smoke"] else "")
        + "\n",
        "\n**Targets**\n\n"
        + table(
            ["target", "measured", "limit", "met"],
            [[t["target"], t["value"], t["limit"], "yes" if t["passed"] else "NO"] for t in report["targets"]],
        ),
        f"\n**{4:g} s WAV uploads**\n\n" + served_table(report),
        f"\n**Long audio ({long['clip_seconds']:g} s)**\n\n"
        + table(
            ["upload", "bytes", "seconds (each run)", "segments", "longest segment s", "served - offline"],
            [
                [
                    kind.upper(),
                    long[kind]["bytes"],
                    long[kind]["seconds"],
                    long[kind]["segments"],
                    long[kind]["max_segment_seconds"],
                    f"{long[kind]['served_offline_max_difference']:.1e}",
                ]
                for kind in ("wav", "mp3")
            ],
        )
        + f"\nThe WAV straight to TorchServe (no gateway): {long['wav_direct_seconds']} s.\n",
        f"\n**Head-of-line blocking**: 3 s uploads one after another, alone and while {hol['long_streams']} long "
        f"WAV stream(s) were scored back to back ({hol['long_files_scored']} long files)\n\n"
        + table(
            ["phase", "requests", "p50 ms", "p95 ms", "p99 ms"],
            [
                [phase, hol[phase]["requests"], hol[phase]["p50_ms"], hol[phase]["p95_ms"], hol[phase]["p99_ms"]]
                for phase in ("idle", "loaded")
            ],
        ),
        f"\n**Cold start**: healthy after {served['cold_start']['healthy_seconds']} s, first prediction after "
        f"{served['cold_start']['first_prediction_seconds']} s.\n",
        "\n**Peak RSS per process**\n\n"
        + table(
            ["process", "pid", "peak RSS MiB"],
            [[p["process"], p["pid"], p["peak_rss_mib"]] for p in report["peak_rss_mib"]],
        ),
        f"\n**Per-stage profile** ({offline['torch_threads']} torch thread(s), one worker's share)\n\n"
        + profile_table(report),
        f"\n**What each change bought** ({long['clip_seconds']:g} s clip, offline)\n\n"
        + table(
            ["step", "segments", "wall ms", "CPU ms"],
            [[s["step"], s["segments"], s["wall_ms"], s["cpu_ms"]] for s in offline["steps"]],
        ),
        "\n**Forward options** (8 windows of 6 s; kept only if faster and within 1e-4 of the eager logits)\n\n"
        + table(
            ["option", "CPU ms / window", "wall ms / window", "max |logit diff|", "setup s"],
            [
                [
                    o["option"],
                    o.get("cpu_ms_per_window", o.get("unavailable")),
                    o.get("wall_ms_per_window", ""),
                    f"{o['max_abs_logit_difference']:.1e}" if "max_abs_logit_difference" in o else "",
                    o.get("setup_seconds", ""),
                ]
                for o in offline["forward_options"]
            ],
        ),
    ]
    return "".join(parts)
