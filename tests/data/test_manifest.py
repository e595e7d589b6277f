from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flowvq_cli.data.manifest import (
    MANIFEST_NAME,
    Clip,
    ManifestError,
    assign_splits,
    read_manifest,
    write_manifest,
)


def make_clip(root: Path, cid: str, speaker: str, emotion: str = "happy", split: str = "train") -> Clip:
    d = root / "clips" / cid
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / "coeffs.npy", np.zeros((10, 58), np.float32))
    (d / "audio.wav").write_bytes(b"RIFF")
    return Clip(id=cid, speaker=speaker, emotion=emotion, intensity=2, split=split, fps=25.0, frames=10,
                paths={"coeffs": f"clips/{cid}/coeffs.npy", "audio": f"clips/{cid}/audio.wav"})


def test_round_trip(tmp_path: Path) -> None:
    clips = [make_clip(tmp_path, f"c{i}", f"s{i % 3}") for i in range(6)]
    write_manifest(tmp_path, clips)
    assert read_manifest(tmp_path) == sorted(clips, key=lambda c: c.id)


def test_splits_are_by_speaker(tmp_path: Path) -> None:
    clips = [make_clip(tmp_path, f"c{i}", f"s{i % 10}") for i in range(40)]
    out = assign_splits(clips, val_speakers=2, test_speakers=0.2, seed=1)
    by_speaker: dict[str, set[str]] = {}
    for c in out:
        by_speaker.setdefault(c.speaker, set()).add(c.split)
    assert all(len(s) == 1 for s in by_speaker.values())
    splits = [next(iter(s)) for s in by_speaker.values()]
    assert splits.count("val") == 2 and splits.count("test") == 2 and splits.count("train") == 6
    assert out == assign_splits(clips, val_speakers=2, test_speakers=0.2, seed=1)  # seeded


def test_single_speaker_stays_in_train(tmp_path: Path) -> None:
    clips = [make_clip(tmp_path, f"c{i}", "only") for i in range(3)]
    assert {c.split for c in assign_splits(clips, val_speakers=0.5)} == {"train"}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda o: o.update(emotion="bored"), "unknown emotion"),
        (lambda o: o.pop("speaker"), "missing field"),
        (lambda o: o.update(intensity=7), "intensity"),
        (lambda o: o["paths"].update(coeffs="clips/nope.npy"), "missing"),
    ],
)
def test_invalid_lines_name_the_line(tmp_path: Path, mutate, message: str) -> None:
    good = make_clip(tmp_path, "a", "s1")
    bad = json.loads(make_clip(tmp_path, "b", "s2").to_json())
    mutate(bad)
    (tmp_path / MANIFEST_NAME).write_text(good.to_json() + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(ManifestError, match=message) as info:
        read_manifest(tmp_path)
    assert f"{MANIFEST_NAME}:2" in str(info.value)


def test_speaker_in_two_splits_is_rejected(tmp_path: Path) -> None:
    a = make_clip(tmp_path, "a", "s1", split="train")
    b = make_clip(tmp_path, "b", "s1", split="val")
    (tmp_path / MANIFEST_NAME).write_text(a.to_json() + "\n" + b.to_json() + "\n")
    with pytest.raises(ManifestError, match="both"):
        read_manifest(tmp_path)


def test_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not a FlowVQ dataset"):
        read_manifest(tmp_path)
