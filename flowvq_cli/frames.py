"""Render orchestration: a photo's coefficients (T, 58) to video frames, ``chunk`` at a time (docs/design.md §1).

The mesh-warp renderer (:mod:`flowvq_cli.render`) and the learned one (:mod:`flowvq_cli.vqig`) are model
packages that do not import each other (docs/design.md §9); this module strings them together for the API
(:meth:`flowvq_cli.api.FlowVQ.render`), ``flowvq synth``'s corpus frames and the benchmarks: the photo's
mesh-warp renderer, the mesh-warp motion a ``mesh_prior`` VQIG reads, and the frame streams of both
renderers, pasted back into the photo or left as aligned crops.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from flowvq_cli.face import align, rig
from flowvq_cli.face.source import SourceFace

RENDER_CHUNK = 25  # frames rendered and encoded per step (one second at 25 fps)


def mesh_renderer(source: SourceFace, crop: np.ndarray | None = None):
    """The photo's mesh-warp renderer: its crop (or ``crop``, that crop resized to S × S) warped along the
    photo's face mesh. Returns (renderer, scale): target meshes for it are ``rig.synthesize(...) · scale``."""
    from flowvq_cli.render.meshwarp import MeshWarpConfig, MeshWarpRenderer

    crop = source.crop if crop is None else crop
    scale = crop.shape[0] / rig.CROP_SIZE
    source_mesh = source.mesh * scale
    iris = None
    landmarks = source.analysis.landmarks
    if landmarks is not None and landmarks.shape[-2] >= 478 and np.isfinite(landmarks[0, 468:478, :2]).all():
        to_crop = align.Alignment.from_matrix(source.crop_matrix)  # photo → crop pixels
        iris = align.transform_landmarks(landmarks[0, 468:478, :2].astype(np.float64), to_crop) * scale
    return MeshWarpRenderer(crop, source_mesh, MeshWarpConfig(size=crop.shape[0]), iris=iris), scale


def mesh_motion(source: SourceFace, crop: np.ndarray, *, frame: bool = False):
    """Each frame's mesh-warp motion, for a ``mesh_prior`` VQIG rendering ``crop`` (S × S): a function from
    coefficients (B, 58) to their :class:`~flowvq_cli.vqig.MeshPrior` (with the renderer's frames and the
    mouth's paint alone for a ``prior_frame`` VQIG: ``frame``)."""
    from flowvq_cli.vqig import MeshPrior

    renderer, scale = mesh_renderer(source, crop)

    def motion(coeffs: np.ndarray) -> MeshPrior:
        return MeshPrior.from_render(renderer.render(rig.synthesize(source.identity, coeffs) * scale), frame=frame)

    return motion


def warp_frames(source: SourceFace, coeffs: np.ndarray, *, paste_back: bool = True,
                chunk: int = RENDER_CHUNK, identity: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """The mesh-warp renderer over coefficients (T, 58): frames (H, W, 3) uint8, ``chunk`` at a time;
    the photo's size with ``paste_back``, else the 256² crop. ``identity`` (468, 3), when given, is the
    face shape of the output frames (default: the photo's own)."""
    from flowvq_cli.face.paste import WarpPaste

    warp, _ = mesh_renderer(source)  # at the crop's own size: meshes in crop pixels
    paster = WarpPaste.from_renderer(source.image, source.crop_matrix, warp, draw=True) if paste_back else None
    for start in range(0, len(coeffs), chunk):
        meshes = rig.synthesize(source.identity if identity is None else identity, coeffs[start : start + chunk])
        result = warp.render(meshes)
        if paster is None:
            yield from result.frames
            continue
        for k, frame in enumerate(result.frames):
            yield paster(frame, result.flow[k], result.paint[k], result.mouth_paint[k], meshes[k])
        del result  # its flow and paint maps go before the next chunk's are made


def corpus_frames(source: SourceFace, coeffs: np.ndarray, identity: np.ndarray) -> Iterator[np.ndarray]:
    """``flowvq synth``'s frames (:class:`flowvq_cli.data.synth.FrameRenderer`): the mesh warp's aligned
    crops (256, 256, 3) uint8 of coefficients (T, 58), the face shaped ``identity`` (468, 3)."""
    return warp_frames(source, coeffs, paste_back=False, identity=identity)


def vqig_source(source: SourceFace, size: int) -> tuple[np.ndarray, torch.Tensor]:
    """The photo's aligned crop as VQIG reads it: (S, S, 3) uint8 (area-resized when its side is not S) and
    (1, 3, S, S) in [-1, 1]."""
    import cv2

    crop = source.crop
    if crop.shape[0] != size:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return crop, torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None].float() / 127.5 - 1.0


def vqig_frames(vqig, source: SourceFace, coeffs: np.ndarray, *, paste_back: bool = True,
                chunk: int = RENDER_CHUNK) -> Iterator[np.ndarray]:
    """The learned renderer: the source crop is encoded once, then each frame is rendered from a window of
    ±w target coefficient frames (edges repeated), ``chunk`` frames per batch; frames at the photo's size
    with ``paste_back``, else S². A ``mesh_prior`` VQIG also gets each frame's mesh-warp motion. A
    ``prior_frame`` VQIG at the crop's size (its frame is the mesh warp's but for the mouth interior) is
    composed into the photo like the mesh warp (:class:`~flowvq_cli.face.paste.WarpPaste`: the photo
    sampled at its own resolution, lip line and lids drawn there, the mouth interior from VQIG's frame); others
    are pasted back."""
    import cv2

    from flowvq_cli.face.paste import PasteBack, WarpPaste
    from flowvq_cli.vqig import MeshPrior

    size = vqig.codebook.config.image_size
    crop_size = source.crop.shape[0]
    device = next(vqig.parameters()).device
    crop, src = vqig_source(source, size)
    cache = vqig.prepare_source(src.to(device), torch.from_numpy(source.coeffs[None].astype(np.float32)).to(device))
    w = vqig.config.window
    padded = np.pad(np.asarray(coeffs, np.float32), ((w, w), (0, 0)), mode="edge")  # (T + 2w, 58)
    renderer, scale = mesh_renderer(source, crop) if vqig.config.mesh_prior else (None, 1.0)
    native = paste_back and vqig.config.prior_frame and size == crop_size  # prior_frame needs mesh_prior
    if native:
        paster = WarpPaste.from_renderer(source.image, source.crop_matrix, renderer, draw=True)
    else:
        paster = PasteBack.build(source.image, source.crop_matrix) if paste_back else None
    for start in range(0, len(coeffs), chunk):
        idx = np.arange(start, min(len(coeffs), start + chunk))
        windows = torch.from_numpy(np.stack([padded[i : i + 2 * w + 1] for i in idx]))  # (B, 2w+1, 58)
        warped, prior, meshes = None, None, None
        if renderer is not None:
            meshes = rig.synthesize(source.identity, np.asarray(coeffs)[idx]) * scale
            warped = renderer.render(meshes)
            prior = MeshPrior.from_render(warped, frame=vqig.config.prior_frame)
        out = vqig.render_prepared(cache, windows.to(device), prior=prior)  # (B, 3, S, S) in [-1, 1]
        frames = ((out + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        for k, frame in enumerate(frames):
            if native:
                yield paster(frame, warped.flow[k], warped.paint[k], warped.mouth_paint[k], meshes[k],
                             under=warped.frames[k])
                continue
            if size != crop_size:
                frame = cv2.resize(frame, (crop_size, crop_size), interpolation=cv2.INTER_CUBIC)
            yield paster(frame) if paster is not None else frame
        del warped, prior, meshes  # the mesh-warp maps go before the next chunk's are made
