"""Shared fixtures: small real inputs the project ships or makes (no network)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


@pytest.fixture()
def single_thread():
    """One intra-op torch thread: tiny models run faster that way on the shared 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def face_png() -> Path:
    """The shipped example photo (a crop of scikit-image's public-domain astronaut)."""
    return EXAMPLES / "face.png"


@pytest.fixture(scope="session")
def speech_wav() -> Path:
    """The shipped example speech (espeak-ng, 16 kHz mono)."""
    return EXAMPLES / "speech.wav"


@pytest.fixture(scope="session")
def face_rgb(face_png: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(face_png).convert("RGB"))


def make_tiny_bundle(out: Path, seed: int = 0, renderer: bool = False, mesh_prior: bool = False,
                     default_renderer: str | None = None) -> Path:
    """A real, untrained weights bundle (tiny ExpFlow + PoseFlow at the real audio feature size; with
    ``renderer``, also a tiny codebook + VQIG; with ``mesh_prior``, one on the mesh-warp motion composing on
    the renderer's frame, as the shipped recipe trains it)."""
    import dataclasses

    import torch

    from flowvq_cli.audio.features import AudioFeatureConfig
    from flowvq_cli.bundle import write_bundle
    from flowvq_cli.flow import ExpFlow, PoseFlow
    from flowvq_cli.flow.config import ExpFlowConfig, PoseFlowConfig

    torch.manual_seed(seed)
    feat_dim = AudioFeatureConfig().video_feature_dim
    parts = out.parent / f".{out.name}_parts"
    ExpFlow(dataclasses.replace(ExpFlowConfig.tiny(), audio_dim=feat_dim)).save_pretrained(parts / "expflow")
    PoseFlow(dataclasses.replace(PoseFlowConfig.tiny(), audio_dim=feat_dim)).save_pretrained(parts / "poseflow")
    components = {"expflow": parts / "expflow", "poseflow": parts / "poseflow"}
    if renderer:
        from flowvq_cli.vq import VQGAN, VQGANConfig
        from flowvq_cli.vqig import VQIG, VQIGConfig

        codebook = VQGAN(VQGANConfig.tiny()).eval()
        codebook.save_pretrained(parts / "codebook")
        config = dataclasses.replace(VQIGConfig.tiny(), codebook=codebook.config, compose=mesh_prior,
                                     mesh_prior=mesh_prior, prior_residual=not mesh_prior, prior_frame=mesh_prior)
        VQIG(config, codebook).save_pretrained(parts / "vqig")
        components.update(codebook=parts / "codebook", vqig=parts / "vqig")
    write_bundle(out, components, name="tiny-test", default_renderer=default_renderer)
    return out


@pytest.fixture(scope="session")
def tiny_renderer_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("weights") / "tiny-vqig", renderer=True)


@pytest.fixture(scope="session")
def tiny_prior_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("weights") / "tiny-prior", renderer=True, mesh_prior=True,
                            default_renderer="warp")


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("weights") / "tiny")
