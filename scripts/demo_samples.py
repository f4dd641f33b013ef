"""Write one real and one fake sample for the demo, from the held-out test split's material.

The real sample is an untouched human recording from a Debian speech package (a Dutch line of
the fillets-ng game, from a level the default model never trained on); the fake sample is
espeak-ng speaking the same line. Usage: python -m scripts.demo_samples --out runs/demo
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import soundfile as sf

from model.audio import SAMPLE_RATE
from training.embedded.sources import find_real_clips
from training.embedded.tts import ESPEAK, Voice, espeak_voice, synthesize

DEMO_GROUP = "fillets:hanoi"  # a test-split level (its two voice actors also speak in training levels)


def write_samples(out: Path) -> tuple[Path, Path]:
    clip = next((c for c in find_real_clips() if c.group == DEMO_GROUP and c.text and len(c.text.split()) >= 4), None)
    if clip is None:
        raise SystemExit(f"no recording of {DEMO_GROUP} found; run `make setup` (fillets-ng-data-nl)")
    out.mkdir(parents=True, exist_ok=True)
    real = out / f"real{clip.path.suffix}"
    shutil.copyfile(clip.path, real)
    fake = out / "fake.wav"
    sf.write(fake, synthesize(Voice(ESPEAK, espeak_voice(clip.language)), clip.text), SAMPLE_RATE)
    print(f'real: {real} (human recording, {clip.source})\nfake: {fake} (espeak-ng reading "{clip.text}")')
    return real, fake


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.demo_samples", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="folder for real.* and fake.wav")
    write_samples(parser.parse_args(argv).out)


if __name__ == "__main__":
    main()
