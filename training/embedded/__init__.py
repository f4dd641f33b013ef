"""The embedded default dataset: real speech from Debian data packages, fake speech from local TTS.

No corpus can be downloaded here, so `training.build_dataset` pairs every real clip it takes
with one synthetic clip of the same words (or, where the words are unknown, a Griffin-Lim
resynthesis of the clip itself) and pushes both through one shared post-processing chain,
so silence, codec, bandwidth, loudness, duration, language and content tell the classes apart
as little as the sources allow.

- `sources`: find the real recordings and the text they speak.
- `tts`: wrappers around espeak-ng, festival, flite and Griffin-Lim.
- `channel`: the post-processing every clip of both classes goes through.
- `plan`: which real clips, which fake engine for each, which split, which random draws.
- `build`: turn one planned clip into a FLAC file, in parallel, skipping finished ones.
"""
