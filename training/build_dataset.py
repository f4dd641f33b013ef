"""Build the embedded default dataset (`make data`): real vs synthetic speech from Debian packages.

Real speech from eleven Debian packages (training/embedded/sources.py): letters, syllables and
words of ~25 languages (klettres, ktuberling), Dutch game dialogue (fillets-ng), Tux Paint's
spoken stamp descriptions (13 locales), the recordings behind the festival Russian voice,
telephone prompts (asterisk: G.722, 8 kHz WAV, GSM), Mandarin syllables (gcin) and LibriVox
lines (pocketsphinx). Fake speech from formant, diphone, unit-selection, HMM/parametric and
neural (Kokoro-82M) TTS speaking the same words, and copy-synthesis vocoders (Griffin-Lim, LPC,
phase vocoder) resynthesising real clips (training/embedded/tts.py). Each real clip is paired
with one fake of the same content and language, the pair stays in one split (train/dev/test
~70/15/15, disjoint by speaker), and every clip of both classes goes through the same random
post-processing (trim, crop to 5 s, loudness, silence padding, noise floor, codec channel; a
telephone recording's fake first passes through the same telephone channel). After the build a
shortcut audit prints, per split, the AUC of single label-irrelevant features (training/audit.py).
Output: 16 kHz mono 16-bit FLAC under OUT/clips/ and OUT/manifest.csv (path,label,split,attack,
speaker,source + channel, family, group, language) and the audit under OUT/audit/. Deterministic
for a seed; re-running skips finished clips (and clips marked .rejected), so delete OUT to
rebuild after changing the builder or the seed's draws.

With --raw-test it writes instead the raw held-out set (training/embedded/raw.py): the test
split's human recordings exactly as shipped and its fakes as the engines wrote them, with no
shared processing, for `python -m training.evaluate --manifest OUT/manifest.csv`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from training.audit import audit, write_audit
from training.embedded.build import DEFAULT_WORKERS, build_all, kept_pairs, manifest_rows, write_dataset_manifest
from training.embedded.plan import DEFAULT_SEED, DEFAULT_TOTAL_CLIPS, plan_pairs
from training.embedded.raw import build_raw_test
from training.embedded.sources import find_real_clips
from training.embedded.summary import summary_table

DEFAULT_OUT = Path("data/embedded")
AUDIT_DIR = "audit"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training.build_dataset",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"dataset folder (default {DEFAULT_OUT})")
    parser.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_TOTAL_CLIPS,
        help=f"clips of the main plan, half real and half fake (default {DEFAULT_TOTAL_CLIPS}); small for quick runs",
    )
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="parallel processes (default 2)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed for every random choice (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--raw-test",
        action="store_true",
        help="write the raw held-out set (test split, untouched recordings vs raw engine output) instead",
    )
    args = parser.parse_args(argv)
    if args.limit < 2:
        parser.error("--limit must be at least 2 (one real and one fake clip)")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    reals = find_real_clips()
    if not reals:
        print("no real recordings found: run `make setup` (it installs the speech packages)", file=sys.stderr)
        return 1
    pairs, wanted = plan_pairs(reals, args.limit, args.seed)
    if args.raw_test:
        manifest = build_raw_test(pairs[:wanted], args.out)
        print(f"raw held-out set: {manifest}; {time.monotonic() - started:.0f} s")
        return 0
    jobs = [job for pair in pairs for job in (pair.real, pair.fake)]
    outcomes = build_all(jobs, args.out, workers=args.workers, quiet=args.quiet)
    kept = kept_pairs(pairs, wanted, args.out)
    manifest = write_dataset_manifest(kept, args.out)
    statuses = Counter(outcome.status for outcome in outcomes)
    rows = manifest_rows(kept, args.out)
    print(summary_table(rows))
    shortcuts = audit(rows, cache_dir=args.out / AUDIT_DIR, workers=args.workers, quiet=args.quiet)
    table = write_audit(shortcuts, manifest, args.out / AUDIT_DIR)
    print(f"shortcut audit (AUC of single features against the label):\n{table}")
    print(f"clips: {dict(sorted(statuses.items()))}; manifest: {manifest}; {time.monotonic() - started:.0f} s")
    if len(kept) < wanted:
        print(f"warning: only {len(kept)} of {wanted} pairs could be built", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
