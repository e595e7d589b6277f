"""`flowvq synth`: a small real corpus (espeak-ng speech, visemes, mesh-warp frames), seeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flowvq_cli.api import corpus_frames
from flowvq_cli.data.manifest import FACE_KEY_FILE, STILL_FILE, read_manifest
from flowvq_cli.data.synth import reshape_identity, synthesize_corpus
from flowvq_cli.errors import OutputError
from flowvq_cli.face import rig
from flowvq_cli.video import probe_video


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ds"
    synthesize_corpus(out, clips=3, seed=5, render=corpus_frames, preview=True)
    return out


@pytest.mark.slow  # synthesises a speech corpus
def test_corpus_is_a_valid_dataset(corpus: Path) -> None:
    clips = read_manifest(corpus)
    assert len(clips) == 3 and [c.emotion for c in clips] == ["angry", "contempt", "disgusted"]
    for c in clips:
        coeffs = np.load(c.path(corpus, "coeffs"))
        assert coeffs.shape == (c.frames, rig.N_COEFFS) and coeffs.dtype == np.float32
        exp = coeffs[:, : rig.N_EXP]
        assert exp.min() >= 0 and exp.max() <= 1
        jaw = exp[:, rig.ARKIT_NAMES.index("jawOpen")]
        assert jaw.max() > 0.3 and jaw.min() < 0.1  # the mouth opens and closes with the speech
        info = probe_video(c.path(corpus, "frames"))
        assert (info.width, info.height, info.n_frames) == (256, 256, c.frames)
    assert (corpus / "preview.png").is_file()


@pytest.mark.slow  # synthesises a speech corpus
def test_same_seed_gives_identical_coefficients(corpus: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    synthesize_corpus(again, clips=3, seed=5, workers=2)
    for c in read_manifest(corpus):
        assert (corpus / c.paths["coeffs"]).read_bytes() == (again / c.paths["coeffs"]).read_bytes()
        assert (corpus / c.paths["audio"]).read_bytes() == (again / c.paths["audio"]).read_bytes()
    other = tmp_path / "other"
    synthesize_corpus(other, clips=1, seed=6)
    first = read_manifest(corpus)[0]
    assert not np.array_equal(np.load(corpus / first.paths["coeffs"])[:50],
                              np.load(other / read_manifest(other)[0].paths["coeffs"])[:50])


@pytest.mark.slow  # synthesises a speech corpus
def test_existing_dataset_needs_force(corpus: Path) -> None:
    with pytest.raises(OutputError, match="--force"):
        synthesize_corpus(corpus, clips=1, seed=5)


@pytest.mark.slow  # synthesises a speech corpus
def test_each_clip_gets_its_own_face_shape_of_the_same_photo(corpus: Path) -> None:
    clips = read_manifest(corpus)
    folders = [c.path(corpus, "coeffs").parent for c in clips]
    identities = [np.load(f / "identity.npy") for f in folders]
    assert not np.allclose(identities[0], identities[1])
    keys = {(f / FACE_KEY_FILE).read_text() for f in folders}
    assert len(keys) == 1  # one photo: the faces-seen-in-training check must not count shapes as new faces


@pytest.mark.slow  # synthesises a speech corpus
def test_each_clip_has_a_still_of_its_face_at_rest(corpus: Path) -> None:
    from flowvq_cli.face import rig
    from flowvq_cli.face.analyze import analyze_image, analyze_video

    clip = read_manifest(corpus)[0]
    folder = clip.path(corpus, "coeffs").parent
    still = analyze_image(folder / STILL_FILE)  # a photo `flowvq analyze` finds one face in
    assert still.image_size == (256, 256)
    # Its identity is the one the clip's frames are read against (benchmarks/synth_consistency.py): the
    # mouth's motion comes back.
    frames = analyze_video(clip.path(corpus, "frames"), identity=still.identity)
    truth = np.load(clip.path(corpus, "coeffs"))
    jaw = rig.ARKIT_NAMES.index("jawOpen")
    n = min(len(truth), len(frames.coeffs))
    assert np.corrcoef(frames.coeffs[:n, jaw], truth[:n, jaw])[0, 1] > 0.8


def test_reshape_identity_is_a_moderate_symmetric_change() -> None:
    from flowvq_cli.face import canonical
    from flowvq_cli.face.fit import procrustes, rigid_weights
    from flowvq_cli.face.rig import default_rig

    base = default_rig().neutral.astype(np.float64)
    base = 0.5 * (base + canonical.mirror_field(base))  # exactly left-right symmetric
    assert np.array_equal(reshape_identity(base, np.random.default_rng(1), 0.0), base)
    width = np.ptp(base[:, 0])
    weights = rigid_weights(default_rig())
    for seed in range(5):
        new = reshape_identity(base, np.random.default_rng(seed), 1.0)
        moved = np.linalg.norm(new - base, axis=1).mean() / width
        assert 0.002 < moved < 0.1, moved
        np.testing.assert_allclose(canonical.mirror_field(new), new, atol=1e-6)
        # A new face, not a turned head: its rigid vertices face the way the original's do.
        rotation = procrustes(new, base[None], weights).rotation[0]
        assert np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1))) < 0.01
