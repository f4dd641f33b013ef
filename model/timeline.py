"""Score whole clips in one pass of the detector's trunk, and long ones as a timeline of short segments.

A clip's features are computed once over the whole clip (as training computes them before it crops
its windows). The detector's trunk (`Detector.embed`) then runs once over them: long clips in
bounded chunks that overlap by a margin wider than the trunk's receptive field, so the stitched
embedding is the one a single pass would give, at bounded memory, with every chunk of every clip
of a request stacked into a few large forward passes (no per-window Python work).

A clip no longer than the detector's window (FeatureConfig.window_seconds) is one segment, scored
exactly as `Detector.logits` scores it. A longer clip is cut into equal segments of at most
SEGMENT_SECONDS; each segment's logit comes from the window of the detector's own length centred
on it (shifted to lie inside the clip), pooled from the shared embedding (`Detector.classify`).
So the timeline is 3x finer than the windows without 3x the trunk's cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from model.detectors import Detector
from model.features import pad_batch

SEGMENT_SECONDS = 2.0
CHUNK_FRAMES = 4096
"""Input frames (41 s) whose embedding one chunk contributes; each chunk reads CHUNK_MARGIN_FRAMES more
on either side. Larger chunks waste less on margins, smaller ones bound memory."""
CHUNK_MARGIN_FRAMES = 256
"""Context each side of a chunk (2.56 s): more than the receptive field of every trunk here (the CNN
sees about ±45 input frames, the ResNet about ±125), so a chunk's kept frames equal a single pass."""
MAX_FRAMES_PER_FORWARD = 4_608
"""Padded input frames per trunk forward: bounds a worker's activation memory (about 170 MB for the
shipped CNN ensemble) while keeping the batches large."""
MAX_WINDOWS_PER_CLASSIFY = 512


@dataclass(frozen=True)
class Chunk:
    """A bounded unit of trunk work: input frames start:end of one clip, of which keep_from:keep_to are kept."""

    clip: int
    start: int
    end: int
    keep_from: int
    keep_to: int


def plan_chunks(clip: int, frames: int, grid: int, chunk_frames: int, margin_frames: int) -> list[Chunk]:
    """Chunks covering a clip; starts and kept spans fall on multiples of `grid` (the trunk's stride,
    or its attention blocks) so the chunks line up with a single pass over the clip."""
    chunk, margin = round_up(chunk_frames, grid), round_up(margin_frames, grid)
    if frames <= chunk + 2 * margin:
        return [Chunk(clip, 0, frames, 0, frames)]
    return [
        Chunk(clip, max(0, core - margin), min(frames, core + chunk + margin), core, min(frames, core + chunk))
        for core in range(0, frames, chunk)
    ]


def round_up(value: int, multiple: int) -> int:
    return math.ceil(value / multiple) * multiple


def embed_clips(
    detector: Detector,
    features: Sequence[torch.Tensor],
    chunk_frames: int = CHUNK_FRAMES,
    margin_frames: int = CHUNK_MARGIN_FRAMES,
) -> list[torch.Tensor]:
    """Each clip's (dims, frames // stride) embedding, its chunks batched with every other clip's."""
    stride = detector.time_stride
    # A block-local trunk (a transformer) needs chunks on its block grid and no margin; any other
    # trunk chunks on its stride with a margin wider than its receptive field.
    grid, margin = (detector.block_frames, 0) if detector.block_frames else (stride, margin_frames)
    normalized = [detector.normalize(f[None], torch.tensor([f.shape[-1]]))[0] for f in features]
    chunks = [
        chunk
        for index, clip in enumerate(normalized)
        for chunk in plan_chunks(index, clip.shape[-1], grid, chunk_frames, margin)
    ]
    kept: dict[Chunk, torch.Tensor] = {}
    for group in forward_groups(sorted(chunks, key=lambda c: c.end - c.start)):
        batch, lengths = pad_batch([normalized[c.clip][:, c.start : c.end] for c in group])
        embedding, embedded_lengths = detector.embed(batch, lengths)
        for row, c in enumerate(group):
            first = (c.keep_from - c.start) // stride
            last = int(embedded_lengths[row]) if c.keep_to == c.end else (c.keep_to - c.start) // stride
            kept[c] = embedding[row, :, first:last]
    return [torch.cat([kept[c] for c in chunks if c.clip == index], dim=-1) for index in range(len(features))]


def forward_groups(chunks: list[Chunk]) -> list[list[Chunk]]:
    """Consecutive chunks (sorted by length, so little padding) whose padded frames fit one forward."""
    groups: list[list[Chunk]] = []
    for chunk in chunks:
        length = chunk.end - chunk.start
        if groups and length * (len(groups[-1]) + 1) <= MAX_FRAMES_PER_FORWARD:
            groups[-1].append(chunk)  # sorted: this chunk is the group's longest
        else:
            groups.append([chunk])
    return groups


def segment_spans(samples: int, window_samples: int, segment_samples: int) -> list[tuple[int, int]]:
    """Equal segments (sample spans) of at most segment_samples; a clip within one window is one segment."""
    if samples <= window_samples:
        return [(0, samples)]
    bounds = np.linspace(0, samples, math.ceil(samples / segment_samples) + 1).round().astype(int)
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))


def centred_window(segment: tuple[int, int], frames: int, window_frames: int) -> tuple[int, int]:
    """The window of window_frames centred on the segment, shifted to lie inside the clip."""
    start = (segment[0] + segment[1] - window_frames) // 2
    start = min(max(start, 0), max(frames - window_frames, 0))
    return start, min(start + window_frames, frames)


def score_segments(
    detector: Detector,
    features: Sequence[torch.Tensor],
    segments: Sequence[Sequence[tuple[int, int]]],
    window_frames: int,
) -> list[torch.Tensor]:
    """The logit of every segment (input-frame spans) of every clip: one trunk pass per clip, all
    windows classified together."""
    if not features:  # every request of a batch was refused
        return []
    stride = detector.time_stride
    embeddings = embed_clips(detector, features)
    windows = []
    for embedding, clip_features, clip_segments in zip(embeddings, features, segments, strict=True):
        frames, embedded = clip_features.shape[-1], embedding.shape[-1]
        for segment in clip_segments:
            start, end = centred_window(segment, frames, window_frames)
            first = min(start // stride, embedded - 1)
            windows.append((embedding, first, max(first + 1, min(embedded, -(-end // stride)))))
    logits = torch.cat(
        [
            classify_windows(detector, windows[i : i + MAX_WINDOWS_PER_CLASSIFY])
            for i in range(0, len(windows), MAX_WINDOWS_PER_CLASSIFY)
        ]
    )
    return list(logits.split([len(s) for s in segments]))


def classify_windows(detector: Detector, windows: list[tuple[torch.Tensor, int, int]]) -> torch.Tensor:
    """Logits of embedding spans, pooled and classified as one padded batch."""
    lengths = torch.tensor([end - start for _, start, end in windows])
    batch = windows[0][0].new_zeros(len(windows), windows[0][0].shape[0], int(lengths.max()))
    for row, (embedding, start, end) in enumerate(windows):
        batch[row, :, : end - start] = embedding[:, start:end]
    return detector.classify(batch, lengths).float()
