"""CoeffSequenceDataset and FrameTripletDataset on a tiny dataset written in tmp_path."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from dataset_testutils import FPS, JAW, RAMP_CLIP, frame_level, make_dataset

import flowvq_cli.data.datasets as datasets_module
from flowvq_cli.audio.augment import AugmentConfig
from flowvq_cli.audio.features import AudioFeatureConfig
from flowvq_cli.data.datasets import (
    CoeffSequenceDataset,
    EmptySplitError,
    FrameTripletDataset,
    collate_triplets,
    collate_windows,
    resample_coeffs,
)
from flowvq_cli.data.image_augment import ImageAugmentConfig
from flowvq_cli.data.manifest import read_manifest
from flowvq_cli.labels import EMOTIONS
from flowvq_cli.train.flows import exp_batch, pose_batch

T, K, L = 10, 2, 3
AUDIO = AudioFeatureConfig.tiny()


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"), ramp_clip=True, video_clips=2)


def windows(root: Path, split: str = "train", **kw) -> CoeffSequenceDataset:
    return CoeffSequenceDataset(root, split, T, AUDIO, audio_context=K, n_history=L, **kw)


def item_of(ds: CoeffSequenceDataset, clip_id: str, start: int) -> int:
    return next(i for i, (n, s) in enumerate(ds.index) if ds.clips[n].id == clip_id and s == start)


def test_window_shapes_dtypes_and_labels(root: Path) -> None:
    ds = windows(root)
    # 4 clips of 50 frames and the 30 fps ramp clip (50 frames at 25 fps): starts 0, 5, ..., 40 (9 each);
    # 2 video clips of 15 frames: starts 0, 5
    assert len(ds) == 9 * 5 + 2 * 2
    item = ds[item_of(ds, "s0_happy", 15)]
    F = AUDIO.video_feature_dim
    shapes = {"exp": (T, 52), "pose": (T, 6), "audio": (T + 2 * K, F), "source": (52,), "exp_history": (L, 52),
              "pose_history": (L, 6)}
    for name, shape in shapes.items():
        value = getattr(item, name)
        assert value.shape == shape and value.dtype == torch.float32, name
    assert (item.emotion, item.intensity, item.speaker) == (EMOTIONS.index("happy"), 2, "s0")
    batch = collate_windows([ds[i] for i in range(4)])
    assert exp_batch(batch).audio.shape == (4, T + 2 * K, F)
    assert pose_batch(batch).history.shape == (4, L, 6)
    assert batch.emotion.dtype == torch.long and len(batch.speakers) == 4


def test_audio_context_and_history_come_from_the_clip(root: Path) -> None:
    ds = windows(root, source="first")
    clip = next(c for c in ds.clips if c.id == "s1_neutral")
    feats = ds.features(clip)
    coeffs = np.load(clip.path(root, "coeffs"))
    inner = ds[item_of(ds, clip.id, 20)]
    np.testing.assert_array_equal(inner.audio.numpy(), feats[20 - K:20 + T + K])  # real look-behind/-ahead
    np.testing.assert_array_equal(inner.exp_history.numpy(), coeffs[20 - L:20, :52])
    np.testing.assert_array_equal(inner.exp.numpy(), coeffs[20:20 + T, :52])
    first = ds[item_of(ds, clip.id, 0)]
    assert torch.all(first.audio[:K] == 0)  # before the clip: zeros, as the model pads at inference
    np.testing.assert_array_equal(first.audio[K:].numpy(), feats[:T + K])
    assert torch.equal(first.exp_history, first.source.expand(L, 52))  # the model's own default
    assert torch.all(first.pose_history == 0)
    np.testing.assert_array_equal(first.source.numpy(), coeffs[0, :52])


def test_items_are_deterministic_per_seed_and_epoch(root: Path) -> None:
    a, b, c = windows(root, seed=3), windows(root, seed=3), windows(root, seed=4)
    sources = [[ds[i].source for i in range(12)] for ds in (a, b, c)]
    assert all(torch.equal(x, y) for x, y in zip(sources[0], sources[1], strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(sources[0], sources[2], strict=True))
    before = [a[i].source for i in range(12)]
    a.set_epoch(1)
    assert not all(torch.equal(x, a[i].source) for i, x in enumerate(before))


def test_features_are_cached_on_disk(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    windows(root).warm_cache()
    cached = sorted((root / "cache" / "audio-features").glob("*.npy"))
    assert len(cached) == 7  # one per training clip
    monkeypatch.setattr("flowvq_cli.audio.features.audio_features",
                        lambda *a, **k: pytest.fail("features recomputed despite the cache"))
    ds = windows(root)
    assert ds[0].audio.shape == (T + 2 * K, AUDIO.video_feature_dim)


def test_other_fps_is_resampled_to_25(root: Path) -> None:
    ramp = np.linspace(0, 1, 60, dtype=np.float32)[:, None]  # 2 s at 30 fps
    resampled = resample_coeffs(ramp, 30.0)
    assert resampled.shape == (50, 1)
    np.testing.assert_allclose(resampled[:, 0], np.arange(50) / FPS * 30 / 59, atol=1e-6)
    ds = windows(root)
    window = ds[item_of(ds, RAMP_CLIP, 20)].exp[:, JAW].numpy()
    np.testing.assert_allclose(window, (20 + np.arange(T)) / FPS * 30 / 59, atol=1e-6)


def test_tempo_augmentation_stretches_the_coefficients(root: Path) -> None:
    config = AugmentConfig(p_pitch=0.0, p_tempo=1.0, p_eq=0.0, p_reverb=0.0, p_noise=0.0, tempo_range=0.1)
    ds = windows(root, augment=config, seed=7)
    i = next(i for i in range(len(ds)) if ds.clips[ds.index[i][0]].id == RAMP_CLIP and ds.index[i][1] <= 20
             and abs(ds.augment_params(i).tempo - 1) > 0.03)
    item = ds[i]
    tempo = ds.augment_params(i).tempo
    slope = np.diff(item.exp[:, JAW].numpy()).mean()  # the ramp rises 30/59 per second
    np.testing.assert_allclose(slope, tempo * 30 / 59 / FPS, rtol=1e-4)
    assert item.audio.shape == (T + 2 * K, AUDIO.video_feature_dim) and torch.isfinite(item.audio).all()


def test_empty_split_and_short_clips_are_clear_errors(root: Path) -> None:
    with pytest.raises(EmptySplitError, match="no clips in split 'test'"):
        windows(root, split="test")
    with pytest.raises(EmptySplitError, match="window length"):
        CoeffSequenceDataset(root, "val", 500, AUDIO)
    with pytest.raises(EmptySplitError, match=r"frames\.mp4 in split 'val'"):
        FrameTripletDataset(root, "val", size=32)


def test_frame_triplets(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = FrameTripletDataset(root, "train", size=32)
    assert len(ds) == 2 * 15  # two clips of 15 frames with frames.mp4
    item = ds[5]
    assert item.source.shape == item.target.shape == (3, 32, 32) and item.source.dtype == torch.float32
    assert item.source_index != item.target_index
    for image, t in ((item.source, item.source_index), (item.target, item.target_index)):
        assert -1.0 <= image.min() <= image.max() <= 1.0
        assert abs(float((image.mean() + 1) * 127.5) - frame_level(t)) < 3  # the right frame, decoded in order
    coeffs = np.load(root / "clips" / item.clip_id / "coeffs.npy")
    np.testing.assert_array_equal(item.target_coeffs.numpy(), coeffs[item.target_index])
    assert len(list((root / "cache" / "frames").glob("*.npy"))) == 1  # identical videos: one content-keyed entry
    monkeypatch.setattr(datasets_module, "iter_frames", lambda *a, **k: pytest.fail("decoded twice"))
    again = FrameTripletDataset(root, "train", size=32)
    assert torch.equal(again[5].target, item.target)
    identities = {again[i].clip_id: again[i].identity for i in (0, 20)}
    assert identities["s1_happy_video0"].shape == (468, 3) and identities["s1_happy_video1"] is None
    batch = collate_triplets([again[i] for i in (0, 20)])
    assert batch.source.shape == (2, 3, 32, 32) and batch.identity is None


def test_frame_triplet_augmentation_changes_source_and_target_alike(root: Path) -> None:
    plain = FrameTripletDataset(root, "train", size=32)
    aug = FrameTripletDataset(root, "train", size=32, augment=ImageAugmentConfig(light=0, brightness=0.2))
    a, p = aug[7], plain[7]
    assert (a.source_index, a.target_index) == (p.source_index, p.target_index)  # same frames drawn
    assert not torch.allclose(a.target, p.target)
    # the test frames are flat grey levels: one change maps equal inputs to equal outputs on both frames
    assert torch.equal(aug[7].target, a.target)
    aug.set_epoch(1)
    assert not torch.equal(aug[7].target, a.target) or aug[7].target_index != a.target_index


@pytest.mark.skipif(importlib.util.find_spec("pocketsphinx") is None,
                    reason="needs pocketsphinx (pip install '.[phones]')")
def test_phone_features_follow_the_log_mels_and_the_clips_text(tmp_path: Path) -> None:
    from flowvq_cli.audio.phone_track import N_PHONES, PHONES

    root = make_dataset(tmp_path / "data")
    clip = next(c for c in read_manifest(root) if c.split == "train")
    speech = Path(__file__).resolve().parents[2] / "examples" / "speech3.wav"
    audio = clip.path(root, "audio")
    audio.write_bytes(speech.read_bytes())  # real speech and what it says, as `flowvq synth` writes them
    (audio.parent / "text.txt").write_text("Bob put the maps by my bike, but Pam bought plum jam.\nvoice\n")
    plain = windows(root)
    heard = CoeffSequenceDataset(root, "train", T, AUDIO, audio_context=K, n_history=L, phones=True)
    assert heard.feature_dim == plain.feature_dim + N_PHONES
    track = heard.phone_track(clip)
    assert track.shape == (heard.clip_frames(clip), N_PHONES)
    assert track[:, PHONES.index("B")].max() > 0.5  # "Bob" aligned from the text
    for i in (0, len(heard) - 1):
        item = heard[i]
        assert item.audio.shape == (T + 2 * K, heard.feature_dim)
        torch.testing.assert_close(item.audio[:, : plain.feature_dim], plain[i].audio)
        np.testing.assert_allclose(item.audio[:, plain.feature_dim :].sum(dim=1).numpy(), 1.0, atol=1e-5)
    augmented = CoeffSequenceDataset(root, "train", T, AUDIO, audio_context=K, n_history=L, phones=True,
                                     augment=AugmentConfig(), seed=3)
    assert augmented[0].audio.shape == (T + 2 * K, heard.feature_dim)


@pytest.mark.skipif(importlib.util.find_spec("pocketsphinx") is None,
                    reason="needs pocketsphinx (pip install '.[phones]')")
@pytest.mark.slow
def test_phones_heard_from_the_speech_are_what_generation_hears(tmp_path: Path) -> None:
    from flowvq_cli.audio.phone_track import clip_phone_track

    root = make_dataset(tmp_path / "data")
    clips = [c for c in read_manifest(root) if c.split == "train"][:2]
    speech = Path(__file__).resolve().parents[2] / "examples" / "speech3.wav"
    for clip in clips:
        audio = clip.path(root, "audio")
        audio.write_bytes(speech.read_bytes())
        (audio.parent / "text.txt").write_text("Bob put the maps by my bike, but Pam bought plum jam.\n")
    heard = CoeffSequenceDataset(root, "train", T, AUDIO, audio_context=K, n_history=L, phones=True,
                                 phones_from="speech")
    heard.warm_cache(workers=2)  # pocketsphinx in two worker processes, cached
    aligned = CoeffSequenceDataset(root, "train", T, AUDIO, audio_context=K, n_history=L, phones=True)
    for clip in clips:
        audio, frames = clip.path(root, "audio"), heard.clip_frames(clip)
        recognised = clip_phone_track(audio, frames, 25.0)  # no text: the recogniser, in this process
        np.testing.assert_array_equal(heard.phone_track(clip), recognised)
        assert heard._phone_job(clip)[0] != aligned._phone_job(clip)[0]  # cached apart from the aligned track
        assert aligned._phone_job(clip)[1][2] == "Bob put the maps by my bike, but Pam bought plum jam."
    with pytest.raises(ValueError, match="phones_from"):
        CoeffSequenceDataset(root, "train", T, AUDIO, phones=True, phones_from="video")
