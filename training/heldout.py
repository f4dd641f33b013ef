"""Held-out family evaluation: `python -m training.heldout --manifest data/embedded/manifest.csv`.

How a detector generalises to synthesis families and real sources it never saw: for every fold
of training.folds (one per fake family and per real family of the train and dev splits), train
each model on the fold's training rows, pick its epoch on the fold's dev half, and score the
fold's evaluation clips through model.inference.AudioDetector three ways: clean, MP3 64 kbit/s
and an 8 kHz mu-law telephone channel. The EER per fold and condition goes to heldout.json and a
Markdown table (heldout.md) for the README; each fold's record also has AUC, and ECE (15 bins)
and Brier score of the calibrated P(real), which show whether the dev-fit calibration still holds
on a family the model never saw. The test split is never read.

Each model is the current recipe (training.train.TrainConfig defaults, `--set` overrides) with
one member and `--epochs` epochs. Fold runs live under --work-dir; a fold whose model and scores
exist for the same rows and recipe is reused, so a killed run continues where it stopped.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from model.detectors import ARCHITECTURES
from model.inference import AudioDetector
from training.codecs import MP3_BITRATE, reencode_mp3, reencode_telephone
from training.evaluate import DEFAULT_MP3_CACHE, score_paths
from training.folds import (
    DEFAULT_MIN_EVAL_CLIPS,
    EMBEDDED_FOLD_GROUPS,
    FAKE,
    REAL,
    FoldPlan,
    FoldSet,
    family_of,
    plan_folds,
)
from training.manifest import read_manifest, relative_path, write_manifest
from training.metrics import brier_score, equal_error_rate, expected_calibration_error, roc_auc
from training.train import RECIPE_INDEPENDENT, TrainConfig, already_trained, pick_device, train_one

CLEAN, MP3, TELEPHONE = "clean", f"mp3_{MP3_BITRATE}", "telephone"
CONDITIONS = (CLEAN, MP3, TELEPHONE)
CONDITION_LABELS = {CLEAN: "clean", MP3: "MP3", TELEPHONE: "tel"}
# The shipped recipe first (the headline figures), then the seed's baseline.
DEFAULT_MODELS = ("whisper_pitch_probe", "improved")
DEFAULT_EPOCHS = 8  # 7 grouped folds x 8 CNN epochs of ~1 min (bfloat16 autocast): 63 min measured on 2 CPU cores
# A frozen trunk's head trains on cached embeddings in seconds an epoch: 30 is what the held-out runs measured.
DEFAULT_EPOCHS_BY_MODEL = {"whisper_probe": 30, "whisper_pitch_probe": 30}
DEFAULT_MAX_EVAL_CLIPS = 500  # per class and fold: EER to a fifth of a point, scoring time bounded
DEFAULT_OUT = "artifacts/heldout/heldout.json"
DEFAULT_WORK_DIR = "runs/heldout"
DEFAULT_TELEPHONE_CACHE = "data/cache/telephone"
FOLD_MANIFEST = "manifest.csv"  # the fold's train and dev rows: what the fold's models train on
EVAL_MANIFEST = "eval.csv"
TRAINED_ON = "heldout_trained_on.txt"  # digest of the fold manifest a finished model was trained on
RESULT_FILE = "heldout_result.json"
SCORES_FILE = "heldout_scores.csv"
# TrainConfig fields the protocol sets itself (or has its own option for): not for --set.
PROTOCOL_FIELDS = ("manifest", "out", "architecture", "members", "evaluate", "epochs", "patience", *RECIPE_INDEPENDENT)
PROTOCOL_VERSION = 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training.heldout",
        description=(
            "EER of detectors trained without one synthesis family or real source, on that family's clips "
            "(clean, MP3, telephone). Never reads the test split."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--manifest", type=Path, default=Path(TrainConfig.manifest), help="manifest CSV")
    parser.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), help="report JSON (the .md table beside it)")
    parser.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        help=f"comma-separated architectures ({', '.join(ARCHITECTURES)}); the first is the recipe, the rest baselines",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"epochs per fold and model (default {DEFAULT_EPOCHS}, or the model's own: {DEFAULT_EPOCHS_BY_MODEL})",
    )
    parser.add_argument("--patience", type=int, default=0, help="early-stopping patience in epochs (0 = none)")
    parser.add_argument("--folds", default="", help="comma-separated fold names to run, e.g. fake-neural ('' = all)")
    parser.add_argument(
        "--ungrouped",
        action="store_true",
        help="one fold per family instead of per group of related families (training.folds.EMBEDDED_FOLD_GROUPS)",
    )
    parser.add_argument(
        "--min-eval-clips",
        type=int,
        default=DEFAULT_MIN_EVAL_CLIPS,
        help="skip folds with fewer eval clips of either class",
    )
    parser.add_argument(
        "--max-eval-clips",
        type=int,
        default=DEFAULT_MAX_EVAL_CLIPS,
        help="cap each evaluation class of a fold, a fixed sample (0 = all clips)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    parser.add_argument("--work-dir", type=Path, default=Path(DEFAULT_WORK_DIR), help="per-fold runs (resumable)")
    parser.add_argument("--cache-dir", default=TrainConfig.cache_dir, help="on-disk log-mel cache ('' disables)")
    parser.add_argument("--vocoded-dir", default=TrainConfig.vocoded_dir, help="vocoded copies, made once")
    parser.add_argument("--mp3-cache", type=Path, default=Path(DEFAULT_MP3_CACHE), help="MP3 copies cache")
    parser.add_argument("--telephone-cache", type=Path, default=Path(DEFAULT_TELEPHONE_CACHE), help="telephone cache")
    parser.add_argument("--encode-workers", type=int, default=2, help="ffmpeg processes at once")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="change the recipe of every model, e.g. --set eq_augment_db=6 (a training.train option)",
    )
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in ARCHITECTURES]
    if not args.models or unknown or len(set(args.models)) != len(args.models):
        parser.error(f"--models: distinct names from {', '.join(ARCHITECTURES)}, got {','.join(args.models)}")
    args.folds = [f.strip() for f in args.folds.split(",") if f.strip()]
    if (args.epochs is not None and args.epochs < 1) or args.patience < 0:
        parser.error("--epochs must be at least 1 and --patience at least 0")
    try:
        args.overrides = parse_overrides(args.overrides)
    except ValueError as error:
        parser.error(str(error))
    return args


def parse_overrides(items: Sequence[str]) -> dict:
    """`FIELD=VALUE` strings as TrainConfig fields of the right type."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    overrides = {}
    for item in items:
        name, equals, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if name not in fields or name in PROTOCOL_FIELDS or not equals:
            raise ValueError(f"--set {item!r}: not FIELD=VALUE for a recipe field of training.train")
        kind = fields[name].type
        if kind == "bool":
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"--set {item!r}: expected true or false")
            overrides[name] = value.lower() in ("true", "1")
        else:
            overrides[name] = {"int": int, "float": float}.get(kind, str)(value)
    return overrides


def train_config(model: str, fold_dir: Path, args: argparse.Namespace, vocoded_copies: bool = True) -> TrainConfig:
    """The recipe (TrainConfig defaults and --set) as one model of one fold trains it."""
    config = TrainConfig(**args.overrides)
    return dataclasses.replace(
        config,
        manifest=str(fold_dir / FOLD_MANIFEST),
        out=str(fold_dir / model),
        architecture=model,
        members=1,
        epochs=model_epochs(model, args),
        patience=args.patience or model_epochs(model, args),
        evaluate=False,
        threads=args.threads,
        device=args.device,
        cache_dir=args.cache_dir,
        vocoded_dir=args.vocoded_dir,
        vocoded_copies=config.vocoded_copies if vocoded_copies else 0,
    )


def model_epochs(model: str, args: argparse.Namespace) -> int:
    """--epochs if given, else the model's own default."""
    return args.epochs or DEFAULT_EPOCHS_BY_MODEL.get(model, DEFAULT_EPOCHS)


def recipe(config: TrainConfig) -> dict:
    """What a config trains, without where its files go or how fast."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in ("manifest", "out", *RECIPE_INDEPENDENT)}


def directory_name(fold: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in fold)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def encode_all(paths: Sequence[Path], encode: Callable[[Path], Path], workers: int, description: str) -> list[Path]:
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(tqdm(pool.map(encode, paths), total=len(paths), desc=description, unit="clip", leave=False))


class FoldRun:
    """One fold's files under the work dir, its models trained or reused, its eval clips scored."""

    def __init__(self, plan: FoldPlan, args: argparse.Namespace) -> None:
        self.plan, self.args = plan, args
        self.directory = args.work_dir / directory_name(plan.name)
        self.directory.mkdir(parents=True, exist_ok=True)
        write_manifest([*plan.train, *plan.dev], self.directory / FOLD_MANIFEST)
        write_manifest(plan.eval, self.directory / EVAL_MANIFEST)
        self.train_digest = digest(self.directory / FOLD_MANIFEST)
        self.eval_digest = digest(self.directory / EVAL_MANIFEST)
        self._conditions: dict[str, list[Path]] | None = None

    def condition_paths(self) -> dict[str, list[Path]]:
        """The eval clips as scored in each condition (re-encoded copies made once, cached)."""
        if self._conditions is None:
            clean = [r.path for r in self.plan.eval]
            args = self.args

            def mp3(path: Path) -> Path:
                return reencode_mp3(path, args.mp3_cache)

            def telephone(path: Path) -> Path:
                return reencode_telephone(path, args.telephone_cache)

            self._conditions = {
                CLEAN: clean,
                MP3: encode_all(clean, mp3, args.encode_workers, "MP3 re-encoding"),
                TELEPHONE: encode_all(clean, telephone, args.encode_workers, "telephone re-encoding"),
            }
        return self._conditions

    def run_model(self, model: str) -> dict:
        config = train_config(model, self.directory, self.args, self.plan.vocoded_copies)
        model_dir = Path(config.out)
        stamp = model_dir / TRAINED_ON
        reused_model = already_trained(model_dir, config) and stamp.is_file() and stamp.read_text() == self.train_digest
        if reused_model:
            log(f"  {model}: trained model reused from {model_dir}")
        else:
            stamp.unlink(missing_ok=True)
            log(f"  {model}: training ({plural(config.epochs, 'epoch')}, vocoded copies {config.vocoded_copies})")
            train_one(config)
            stamp.write_text(self.train_digest)
        metadata = json.loads((model_dir / "metadata.json").read_text())

        result_file = model_dir / RESULT_FILE
        if reused_model and result_file.is_file():
            saved = json.loads(result_file.read_text())
            if saved.get("train_digest") == self.train_digest and saved.get("eval_digest") == self.eval_digest:
                log(f"  {model}: scores reused ({format_eers(saved['eer'])})")
                return {**saved["summary"], "reused": True}
        conditions = self.condition_paths()
        started = time.time()
        detector = AudioDetector.from_checkpoint(model_dir, device=pick_device(self.args.device))
        is_real = np.asarray([r.is_real for r in self.plan.eval])
        scores = {
            condition: score_paths(detector, paths, f"{self.plan.name} {model} {condition}")
            for condition, paths in conditions.items()
        }
        summary = {
            "eer": {c: equal_error_rate(s, is_real)[0] for c, s in scores.items()},
            "auc": {c: roc_auc(s, is_real) for c, s in scores.items()},
            "ece": {c: expected_calibration_error(s, is_real) for c, s in scores.items()},
            "brier": {c: brier_score(s, is_real) for c, s in scores.items()},
            "dev_eer": metadata["dev_eer"],
            "best_epoch": metadata["best_epoch"],
            "train_seconds": metadata["train_seconds"],
            "score_seconds": round(time.time() - started, 1),
        }
        self.write_scores(model_dir / SCORES_FILE, scores)
        record = {"train_digest": self.train_digest, "eval_digest": self.eval_digest, "summary": summary}
        result_file.write_text(json.dumps({**record, "eer": summary["eer"]}, indent=2) + "\n")
        log(f"  {model}: {format_eers(summary['eer'])} (dev EER {summary['dev_eer']:.1%})")
        return {**summary, "reused": False}

    def write_scores(self, path: Path, scores: dict[str, np.ndarray]) -> None:
        """P(real) of every eval clip in every condition, paths as in the manifest."""
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label", "attack", "source", *scores])
            for index, row in enumerate(self.plan.eval):
                where = relative_path(row.path, self.args.manifest.parent)
                cells = (f"{s[index]:.6f}" for s in scores.values())
                writer.writerow([where, row.label, row.attack, row.source, *cells])


def format_eers(eers: dict[str, float]) -> str:
    return ", ".join(f"{CONDITION_LABELS.get(c, c)} EER {e:.1%}" for c, e in eers.items())


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def log(message: str) -> None:
    tqdm.write(message)
    sys.stdout.flush()


def fold_record(plan: FoldPlan, family_column: bool, models: dict[str, dict]) -> dict:
    held_class = REAL if plan.kind == REAL else FAKE
    families = sorted({family_of(r, family_column) for r in plan.eval if r.label != held_class})
    return {
        "name": plan.name,
        "kind": plan.kind,
        "held_out": plan.held_out,
        "families": sorted(plan.families),
        "counts": plan.counts(),
        "held_out_speakers": len(plan.held_out_speakers),
        "contrast_families": families,
        "vocoded_copies": plan.vocoded_copies,
        "models": models,
    }


def summarize(folds: Sequence[dict], model: str) -> dict:
    """Mean and worst EER over folds, per condition, of one model (top level: clean)."""
    conditions = {}
    for condition in CONDITIONS:
        eers = [f["models"][model]["eer"][condition] for f in folds]
        worst = int(np.argmax(eers))
        conditions[condition] = {
            "mean_eer": float(np.mean(eers)),
            "worst_eer": float(eers[worst]),
            "worst_fold": folds[worst]["name"],
        }
    return {**conditions[CLEAN], "conditions": conditions}


def role_labels(models: Sequence[str]) -> dict[str, str]:
    """Column labels: the first model is the recipe; a single other one is the baseline."""
    labels = {models[0]: "recipe"}
    for model in models[1:]:
        labels[model] = "baseline" if len(models) == 2 else model
    return labels


def markdown_table(report: dict) -> str:
    models = [report["primary_model"], *report["baseline_models"]]
    labels = role_labels(models)
    header = ["fold", "eval real / fake"]
    header += [f"{labels[m]} {CONDITION_LABELS[c]}" for m in models for c in CONDITIONS]
    lines = [
        f"Held-out EER (%, lower is better) over {len(report['folds'])} folds; "
        + ", ".join(f"{labels[m]} = `{m}`" for m in models)
        + ", "
        + ", ".join(f"`{m}` {plural(e, 'epoch')}" for m, e in report["settings"]["epochs"].items())
        + ", 1 member, TrainConfig defaults otherwise.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", "---:"] + ["---:"] * (len(header) - 2)) + "|",
    ]
    for fold in report["folds"]:
        counts = fold["counts"]["eval"]
        cells = [f"`{fold['name']}`", f"{counts['real']} / {counts['fake']}"]
        cells += [f"{100 * fold['models'][m]['eer'][c]:.1f}" for m in models for c in CONDITIONS]
        lines.append("| " + " | ".join(cells) + " |")
    for key in ("mean_eer", "worst_eer"):
        cells = [f"**{key.removesuffix('_eer')}**", ""]
        cells += [f"**{100 * report['models'][m]['conditions'][c][key]:.1f}**" for m in models for c in CONDITIONS]
        lines.append("| " + " | ".join(cells) + " |")
    if report["skipped"]:
        lines += ["", "Skipped: " + "; ".join(f"`{s['name']}` ({s['reason']})" for s in report["skipped"]) + "."]
    return "\n".join(lines) + "\n"


def select_folds(fold_set: FoldSet, names: Sequence[str]) -> tuple[list[FoldPlan], list[dict]]:
    skipped = [dataclasses.asdict(s) for s in fold_set.skipped]
    if not names:
        return fold_set.folds, skipped
    known = {f.name for f in fold_set.folds} | {s["name"] for s in skipped}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown fold(s) {', '.join(unknown)}; folds of this manifest: {', '.join(sorted(known))}")
    return [f for f in fold_set.folds if f.name in names], [s for s in skipped if s["name"] in names]


def run(args: argparse.Namespace, argv: Sequence[str]) -> dict:
    started = time.time()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    if args.threads:
        torch.set_num_threads(args.threads)
    # Absolute paths: the fold manifests live elsewhere, and read_manifest resolves against their folder.
    rows = [dataclasses.replace(r, path=r.path.absolute()) for r in read_manifest(args.manifest)]
    groups = None if args.ungrouped else EMBEDDED_FOLD_GROUPS
    fold_set = plan_folds(rows, args.min_eval_clips, args.max_eval_clips, groups)
    plans, skipped = select_folds(fold_set, args.folds)
    for skip in skipped:
        log(f"skipped {skip['name']}: {skip['reason']}")
    if not plans:
        raise SystemExit(f"{args.manifest}: no fold has enough clips (--min-eval-clips {args.min_eval_clips})")
    log(
        f"{len(plans)} folds, models {', '.join(args.models)}; dev split halved by {fold_set.halves.column} "
        f"({len(fold_set.halves.select)} groups select, {len(fold_set.halves.contrast)} contrast)"
    )
    folds = []
    for number, plan in enumerate(plans, start=1):
        counts = plan.counts()
        log(
            f"[{number}/{len(plans)}] {plan.name}: train {sum(counts['train'].values())}, "
            f"dev {sum(counts['dev'].values())}, eval {counts['eval']['real']} real + {counts['eval']['fake']} fake"
        )
        fold_run = FoldRun(plan, args)
        results = {model: fold_run.run_model(model) for model in args.models}
        folds.append(fold_record(plan, fold_set.family_column, results))

    primary, baselines = args.models[0], args.models[1:]
    models = {m: {**summarize(folds, m), "recipe": recipe(train_config(m, Path(), args))} for m in args.models}
    report = {
        "protocol": f"training.heldout v{PROTOCOL_VERSION} (fold rules: training/folds.py)",
        "manifest": str(args.manifest),
        "command": "python -m training.heldout " + shlex.join(argv),
        "started_at": started_at,
        "primary_model": primary,
        "baseline_models": baselines,
        "mean_eer": models[primary]["mean_eer"],
        "worst_eer": models[primary]["worst_eer"],
        "worst_fold": models[primary]["worst_fold"],
        "conditions": models[primary]["conditions"],
        "recipe": models[primary]["recipe"],
        "baseline": {"model": baselines[0], **{k: v for k, v in models[baselines[0]].items() if k != "recipe"}}
        if baselines
        else None,
        "models": models,
        "settings": {
            "epochs": {m: model_epochs(m, args) for m in args.models},
            "patience": args.patience or None,
            "min_eval_clips": args.min_eval_clips,
            "max_eval_clips": args.max_eval_clips or None,
            "folds": args.folds or "all",
            "grouped": not args.ungrouped,
            "overrides": args.overrides,
            "vocoded_copies_off_in": [p.name for p in plans if not p.vocoded_copies],
        },
        "family_column": fold_set.family_column,
        "dev_halves": {
            "column": fold_set.halves.column,
            "select_groups": len(fold_set.halves.select),
            "contrast_groups": len(fold_set.halves.contrast),
        },
        "folds": folds,
        "skipped": skipped,
        "wall_seconds": round(time.time() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    table = markdown_table(report)
    args.out.with_suffix(".md").write_text(table)
    log(table)
    log(f"wrote {args.out} and {args.out.with_suffix('.md')} in {report['wall_seconds']:.0f} s")
    return report


def main(argv: Sequence[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    return run(parse_args(argv), argv)


if __name__ == "__main__":
    main()
