"""The formats `python -m training.prepare --format F` accepts, one adapter module each."""

from __future__ import annotations

from training.adapters import asvspoof2019, asvspoof2021, fakeorreal, folder, inthewild, wavefake
from training.adapters.base import Adapter

ADAPTERS: dict[str, Adapter] = {
    adapter.name: adapter
    for adapter in (
        Adapter(
            "asvspoof2019",
            "ASVspoof 2019 LA: protocols + flac; train/dev/eval -> train/dev/test, attacks A01-A19",
            asvspoof2019.build,
            speaker_resplit=True,
        ),
        Adapter(
            "asvspoof2021",
            "ASVspoof 2021 LA and/or DF eval + keys/{LA,DF}/CM/trial_metadata.txt; split test, codec/subset extras",
            asvspoof2021.build,
            speaker_resplit=True,
        ),
        Adapter(
            "inthewild",
            "In-the-Wild: release_in_the_wild/*.wav + meta.csv; speaker-disjoint split",
            inthewild.build,
        ),
        Adapter(
            "wavefake",
            "WaveFake: generated_audio/<corpus>_<vocoder>/ + LJSpeech-1.1, jsut_ver1.1; split by utterance",
            wavefake.build,
        ),
        Adapter(
            "for",
            "Fake-or-Real (one version folder): {training,validation,testing}/{real,fake}/ -> train/dev/test",
            fakeorreal.build,
        ),
        Adapter(
            "folder",
            "any real/ and fake/ trees (wav/flac/mp3/ogg/opus/m4a); speaker = first subfolder; speaker-disjoint split",
            folder.build,
        ),
    )
}
