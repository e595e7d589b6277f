"""``flowvq prepare`` as a library: layout readers, per-clip outputs, failures, resuming, parallel workers."""

from __future__ import annotations

import json
import re
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from prepare_media import cut_audio, make_corrupt, make_video, place

from flowvq_cli.data import prepare as pp
from flowvq_cli.data.manifest import read_manifest
from flowvq_cli.errors import UsageError
from flowvq_cli.face import rig
from flowvq_cli.video import probe_video

FPS = 25
N_FRAMES = 15  # 0.6 s: just over load_audio's 0.5 s minimum
FPS_ODD = 30
N_FRAMES_ODD = 18


@dataclass(frozen=True)
class Media:
    """Source clips made once per module (copied into each test's layout tree)."""

    talk: Path  # face, 25 fps, speech muxed
    talk_b: Path  # face, 25 fps, speech muxed, other file (different bytes)
    talk_odd: Path  # face, 30 fps, speech muxed
    mute: Path  # face, 25 fps, no audio track (MEAD keeps its audio apart)
    m4a: Path  # separate AAC audio of the clip's length
    cat: Path  # no face, speech muxed
    corrupt: Path  # garbage bytes


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory, face_rgb: np.ndarray, speech_wav: Path) -> Media:
    from skimage import data

    d = tmp_path_factory.mktemp("media")
    speech = cut_audio(speech_wav, d / "speech.wav", N_FRAMES / FPS)
    speech_odd = cut_audio(speech_wav, d / "speech_odd.wav", N_FRAMES_ODD / FPS_ODD)
    return Media(
        talk=make_video(face_rgb, d / "talk.mp4", N_FRAMES, FPS, speech),
        talk_b=make_video(face_rgb[:, ::-1].copy(), d / "talk_b.mp4", N_FRAMES, FPS, speech),
        talk_odd=make_video(face_rgb, d / "talk_odd.mp4", N_FRAMES_ODD, FPS_ODD, speech_odd),
        mute=make_video(face_rgb, d / "mute.mp4", N_FRAMES, FPS),
        m4a=cut_audio(speech_wav, d / "speech.m4a", N_FRAMES / FPS, aac=True),
        cat=make_video(data.chelsea(), d / "cat.mp4", N_FRAMES, FPS, speech),
        corrupt=make_corrupt(d / "corrupt.mp4"),
    )


def mead_paths(root: Path, speaker: str, emotion: str, level: int, name: str) -> tuple[Path, Path]:
    """(video, audio) paths of one MEAD clip."""
    return (root / speaker / "video" / "front" / emotion / f"level_{level}" / f"{name}.mp4",
            root / speaker / "audio" / emotion / f"level_{level}" / f"{name}.m4a")


def wav_info(path: Path) -> tuple[int, int, int, int]:
    """(channels, sample width in bytes, rate, samples) of a WAV file."""
    with wave.open(str(path)) as fh:
        return fh.getnchannels(), fh.getsampwidth(), fh.getframerate(), fh.getnframes()


def errors_log(out: Path) -> list[dict]:
    text = (out / pp.ERRORS_NAME).read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def marker_mtimes(out: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in (out / pp.CLIPS_DIR).glob(f"*/{pp.DONE_NAME}")}


# ---------------------------------------------------------------------------------------------- readers


def test_read_mead_layout(tmp_path: Path) -> None:
    for speaker, emotion, level, name, with_audio in [("M003", "angry", 3, "001", True),
                                                      ("M003", "neutral", 1, "002", False),
                                                      ("W009", "surprised", 2, "010", True)]:
        video, audio = mead_paths(tmp_path, speaker, emotion, level, name)
        video.parent.mkdir(parents=True)
        video.write_bytes(b"v")
        if with_audio:
            audio.parent.mkdir(parents=True)
            audio.write_bytes(b"a")
    (tmp_path / "M003" / "video" / "left_30" / "angry" / "level_3").mkdir(parents=True)  # other views: ignored
    jobs = pp.read_mead(tmp_path)
    assert [j.id for j in jobs] == ["M003_angry_3_001", "M003_neutral_1_002", "W009_surprised_2_010"]
    angry, neutral, surprised = jobs
    assert (angry.speaker, angry.emotion, angry.intensity) == ("M003", "angry", 3)
    assert angry.audio == mead_paths(tmp_path, "M003", "angry", 3, "001")[1] and angry.missing_audio is None
    assert neutral.audio is None and neutral.missing_audio == mead_paths(tmp_path, "M003", "neutral", 1, "002")[1]
    assert (surprised.speaker, surprised.intensity) == ("W009", 2)


@pytest.mark.parametrize(("emotion", "level", "message"), [("joyful", 1, "unknown MEAD emotion folder 'joyful'"),
                                                           ("angry", 4, "level_4")])
def test_read_mead_rejects_unknown_folders(tmp_path: Path, emotion: str, level: int, message: str) -> None:
    video, _ = mead_paths(tmp_path, "M003", emotion, level, "001")
    video.parent.mkdir(parents=True)
    video.write_bytes(b"v")
    with pytest.raises(pp.LayoutError, match=message):
        pp.read_mead(tmp_path)


def test_empty_layouts_say_what_is_expected(tmp_path: Path) -> None:
    with pytest.raises(pp.LayoutError, match=re.escape("M003/video/front/angry/level_3/001.mp4")):
        pp.read_mead(tmp_path)
    with pytest.raises(pp.LayoutError, match=re.escape("WRA_KellyAyotte_000.mp4")):
        pp.read_hdtf(tmp_path)
    with pytest.raises(pp.LayoutError, match="not a folder"):
        pp.read_videos(tmp_path / "missing")
    with pytest.raises(UsageError, match="unknown layout"):
        pp.find_jobs("voxceleb", tmp_path)
    with pytest.raises(UsageError, match="videos"):
        pp.find_jobs("mead", tmp_path, labels=tmp_path / "labels.csv")


def test_read_hdtf_speakers(tmp_path: Path) -> None:
    for name in ["WRA_KellyAyotte_000.mp4", "WRA_KellyAyotte_001.mp4", "RD_Radio1_000.mp4", "Interview.MP4",
                 "notes.txt"]:
        (tmp_path / name).write_bytes(b"v")
    jobs = {j.id: j for j in pp.read_hdtf(tmp_path)}
    assert sorted(jobs) == ["Interview", "RD_Radio1_000", "WRA_KellyAyotte_000", "WRA_KellyAyotte_001"]
    assert jobs["WRA_KellyAyotte_001"].speaker == "WRA_KellyAyotte"
    assert jobs["RD_Radio1_000"].speaker == "RD_Radio1"
    assert jobs["Interview"].speaker == "Interview"
    assert all(j.emotion == "talk" and j.intensity == pp.HDTF_INTENSITY and j.audio is None for j in jobs.values())


def test_read_videos_with_labels(tmp_path: Path) -> None:
    root = tmp_path / "videos"
    for rel in ["a.mp4", "sub/b.mov", "sub/c.mkv", "sub/readme.txt", "out/clips/x/frames.mp4", ".hidden.mp4"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"v")
    labels = tmp_path / "labels.csv"
    labels.write_text("file,emotion,intensity,speaker\na.mp4,Angry,3,alice\nsub/b.mov,sad,,\n")
    jobs = {j.id: j for j in pp.read_videos(root, labels, exclude=root / "out")}
    assert sorted(jobs) == ["a", "sub__b", "sub__c"]
    assert (jobs["a"].emotion, jobs["a"].intensity, jobs["a"].speaker) == ("angry", 3, "alice")
    assert (jobs["sub__b"].emotion, jobs["sub__b"].intensity, jobs["sub__b"].speaker) == ("sad", 2, "b")
    assert (jobs["sub__c"].emotion, jobs["sub__c"].intensity, jobs["sub__c"].speaker) == ("talk", 2, "c")


def test_clashing_clip_ids_are_refused(tmp_path: Path) -> None:
    for name in ["a b.mp4", "a_b.mp4"]:
        (tmp_path / name).write_bytes(b"v")
    with pytest.raises(pp.LayoutError, match="both give the clip id 'a_b'"):
        pp.read_videos(tmp_path)


@pytest.mark.parametrize(("text", "message"), [
    ("file,emotion\na.mp4,happy\nb.mp4,joy\n", r"labels.csv:3: unknown emotion 'joy' for b.mp4"),
    ("file,emotion,intensity\na.mp4,happy,5\n", r"labels.csv:2: intensity must be 1, 2 or 3, got '5'"),
    ("file,emotion\nzzz.mp4,happy\n", r"labels.csv:2: zzz.mp4 is not a video in the folder"),
    ("file,emotion\na.mp4,happy\na.mp4,sad\n", r"labels.csv:3: a.mp4 is labelled twice"),
    ("video,emotion\na.mp4,happy\n", r"missing: file; unknown: video"),
])
def test_bad_labels_are_clear_errors_before_any_work(tmp_path: Path, text: str, message: str) -> None:
    root = tmp_path / "videos"
    root.mkdir()
    for name in ["a.mp4", "b.mp4"]:
        (root / name).write_bytes(b"v")
    labels = tmp_path / "labels.csv"
    labels.write_text(text)
    out = tmp_path / "out"
    with pytest.raises(pp.LabelsError, match=message):
        pp.prepare("videos", root, out, labels=labels, progress=False)
    assert not out.exists()


def test_fit_audio_length_cuts_or_pads_to_the_video() -> None:
    long = np.ones(20_000, np.float32)
    assert len(pp.fit_audio_length(long, 25, 25.0)) == 16_000
    short = pp.fit_audio_length(np.ones(8_000, np.float32), 30, 30.0)
    assert len(short) == 16_000 and short[:8_000].all() and not short[8_000:].any()
    assert len(pp.fit_audio_length(long, 7, 29.97)) == round(7 / 29.97 * 16_000)


@pytest.mark.parametrize(("workers", "limit"), [(0, None), (1, -1)])
def test_bad_options_are_usage_errors(tmp_path: Path, workers: int, limit: int | None) -> None:
    with pytest.raises(UsageError):
        pp.prepare("videos", tmp_path, tmp_path / "out", workers=workers, limit=limit, progress=False)


# ---------------------------------------------------------------------------------------------- real clips


def test_prepare_mead_writes_clips_logs_failures_and_splits_by_speaker(tmp_path: Path, media: Media) -> None:
    root, out = tmp_path / "MEAD", tmp_path / "dataset"
    for speaker, emotion, level, name, video, audio in [
        ("M003", "angry", 3, "001", media.mute, media.m4a),
        ("M003", "neutral", 1, "001", media.talk, None),  # no .m4a: the video's track is used
        ("W009", "happy", 2, "001", media.mute, media.m4a),
        ("W009", "sad", 1, "002", media.corrupt, media.m4a),
        ("W009", "surprised", 1, "003", media.cat, media.m4a),
    ]:
        video_path, audio_path = mead_paths(root, speaker, emotion, level, name)
        place(video, video_path)
        if audio is not None:
            place(audio, audio_path)
    report = pp.prepare("mead", root, out, val_speakers=1, progress=False)

    good = ["M003_angry_3_001", "M003_neutral_1_001", "W009_happy_2_001"]
    assert report.done == good and report.skipped == [] and report.clips == 3
    failed = dict(report.failed)
    assert sorted(failed) == ["W009_sad_1_002", "W009_surprised_1_003"]
    assert "cannot read" in failed["W009_sad_1_002"]
    assert "no face found" in failed["W009_surprised_1_003"]
    assert {e["id"]: e["reason"] for e in errors_log(out)} == failed
    assert all(e["source"].endswith(".mp4") for e in errors_log(out))
    assert not (out / pp.CLIPS_DIR / "W009_sad_1_002").exists()
    assert [cid for cid, _ in report.notes] == ["M003_neutral_1_001"]
    assert "missing; used the audio track" in report.notes[0][1]

    for cid in good:
        d = out / pp.CLIPS_DIR / cid
        coeffs = np.load(d / pp.COEFFS_NAME)
        assert coeffs.shape == (N_FRAMES, rig.N_COEFFS) and coeffs.dtype == np.float32
        assert np.load(d / pp.IDENTITY_NAME).shape == (468, 3)
        assert wav_info(d / pp.AUDIO_NAME) == (1, 2, 16_000, N_FRAMES * 16_000 // FPS)
        info = probe_video(d / pp.FRAMES_NAME)
        assert (info.width, info.height, info.n_frames, info.fps, info.has_audio) == (256, 256, N_FRAMES, FPS, False)
        marker = json.loads((d / pp.DONE_NAME).read_text())
        assert marker["frames"] == N_FRAMES and marker["fps"] == FPS
    angry = json.loads((out / pp.CLIPS_DIR / good[0] / pp.DONE_NAME).read_text())
    assert angry["sources"]["audio"]["path"].endswith("audio/angry/level_3/001.m4a")
    assert angry["sources"]["video"]["size"] == media.mute.stat().st_size

    clips = read_manifest(out)
    assert [c.id for c in clips] == good
    assert {c.id: (c.emotion, c.intensity) for c in clips} == {
        good[0]: ("angry", 3), good[1]: ("neutral", 1), good[2]: ("happy", 2)}
    split_of = {c.speaker: c.split for c in clips}
    assert sorted(split_of.values()) == ["train", "val"]
    assert all(c.split == split_of[c.speaker] for c in clips)
    assert all("frames" in c.paths and c.fps == FPS and c.frames == N_FRAMES for c in clips)


def test_interrupted_run_resumes_without_redoing_done_clips(tmp_path: Path, media: Media) -> None:
    root, out = tmp_path / "videos", tmp_path / "dataset"
    for name, video in [("a.mp4", media.talk), ("b.mp4", media.talk_b), ("c.mp4", media.talk)]:
        place(video, root / name)

    first = pp.prepare("videos", root, out, frames=False, limit=1, progress=False)  # "interrupted" after a
    assert first.done == ["a"] and first.clips == 1
    assert [c.id for c in read_manifest(out)] == ["a"]
    stamps = marker_mtimes(out)

    make_corrupt(root / "b.mp4")  # b fails this time
    second = pp.prepare("videos", root, out, frames=False, progress=False)
    assert second.skipped == ["a"] and second.done == ["c"] and [cid for cid, _ in second.failed] == ["b"]
    assert [e["id"] for e in errors_log(out)] == ["b"]
    assert marker_mtimes(out)["a"] == stamps["a"]
    stamps = marker_mtimes(out)

    place(media.talk_b, root / "b.mp4")  # fixed; and a crash left half of b behind (no marker)
    (out / pp.CLIPS_DIR / "b").mkdir()
    (out / pp.CLIPS_DIR / "b" / pp.COEFFS_NAME).write_bytes(b"half-written")
    third = pp.prepare("videos", root, out, frames=False, progress=False)
    assert third.skipped == ["a", "c"] and third.done == ["b"] and third.failed == []
    assert errors_log(out) == []
    assert {k: v for k, v in marker_mtimes(out).items() if k != "b"} == stamps
    assert np.load(out / pp.CLIPS_DIR / "b" / pp.COEFFS_NAME).shape == (N_FRAMES, rig.N_COEFFS)
    assert [c.id for c in read_manifest(out)] == ["a", "b", "c"]

    with_frames = pp.prepare("videos", root, out, frames=True, limit=1, progress=False)  # frames now wanted
    assert with_frames.done == ["a"] and with_frames.skipped == []
    assert "frames" in {c.id: c for c in read_manifest(out)}["a"].paths
    stamps = marker_mtimes(out)

    forced = pp.prepare("videos", root, out, frames=True, limit=1, force=True, progress=False)
    assert forced.done == ["a"] and forced.skipped == [] and marker_mtimes(out)["a"] > stamps["a"]


@pytest.mark.slow
def test_two_workers_match_one_on_hdtf(tmp_path: Path, media: Media) -> None:
    root = tmp_path / "HDTF"
    place(media.talk, root / "WRA_KellyAyotte_000.mp4")
    place(media.talk_b, root / "WRA_KellyAyotte_001.mp4")
    place(media.talk_odd, root / "RD_Radio1_000.mp4")  # 30 fps: kept as is, the manifest says so
    serial = pp.prepare("hdtf", root, tmp_path / "one", workers=1, progress=False)
    parallel = pp.prepare("hdtf", root, tmp_path / "two", workers=2, progress=False)
    assert serial.done == parallel.done == ["RD_Radio1_000", "WRA_KellyAyotte_000", "WRA_KellyAyotte_001"]
    assert serial.failed == parallel.failed == []

    one, two = read_manifest(tmp_path / "one"), read_manifest(tmp_path / "two")
    assert one == two
    fps = {c.id: (c.fps, c.frames, c.speaker, c.emotion) for c in one}
    assert fps["RD_Radio1_000"] == (FPS_ODD, N_FRAMES_ODD, "RD_Radio1", "talk")
    assert fps["WRA_KellyAyotte_001"] == (FPS, N_FRAMES, "WRA_KellyAyotte", "talk")
    for clip in one:
        for key in ("coeffs",):
            np.testing.assert_allclose(np.load(clip.path(tmp_path / "one", key)),
                                       np.load(clip.path(tmp_path / "two", key)), atol=1e-5)
        assert clip.path(tmp_path / "one", "audio").read_bytes() == clip.path(tmp_path / "two", "audio").read_bytes()
    assert wav_info(tmp_path / "one" / pp.CLIPS_DIR / "RD_Radio1_000" / pp.AUDIO_NAME)[3] == 16_000 * N_FRAMES_ODD \
        // FPS_ODD


def test_unexpected_errors_are_logged_and_the_run_goes_on(tmp_path: Path, media: Media,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from flowvq_cli.face import analyze as analyze_module

    real = analyze_module.analyze

    def flaky(path: str | Path, **kwargs: object) -> object:
        if Path(path).stem == "a":
            raise ValueError("bug in the\nanalysis")
        return real(path, **kwargs)

    monkeypatch.setattr(analyze_module, "analyze", flaky)
    root, out = tmp_path / "videos", tmp_path / "dataset"
    place(media.talk, root / "a.mp4")
    place(media.talk, root / "b.mp4")
    report = pp.prepare("videos", root, out, frames=False, progress=True)  # stderr is no terminal: no bar
    assert report.done == ["b"] and report.failed == [("a", "ValueError: bug in the analysis")]
    assert errors_log(out) == [{"id": "a", "source": str(root / "a.mp4"), "reason": "ValueError: bug in the analysis"}]
    assert not (out / pp.CLIPS_DIR / "a").exists()
    assert capsys.readouterr().err == ""
