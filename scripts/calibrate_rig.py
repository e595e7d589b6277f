"""Calibrate the face model's 52 deformation fields to the expression reader (Blendshape V2).

The procedural fields of ``flowvq_cli.face.rig`` move a face about a third as far as a real face moves
for the same weight, as the reader sees it. This script re-derives them so that reading the rig's own
projected landmarks (``flowvq_cli.face.readback``) returns its coefficients::

    pip download --no-deps --no-binary :all: face_recognition==1.3.0 -d /tmp/fr   # public-domain photos
    tar xzf /tmp/fr/face_recognition-1.3.0.tar.gz -C /tmp/fr
    python scripts/calibrate_rig.py --photos examples/face.png \
        /tmp/fr/face_recognition-1.3.0/tests/test_images/obama.jpg

writes ``flowvq_cli/assets/rig_calibrated.safetensors`` (the shipped one was made by exactly this).

What is optimised (Adam, float32, CPU; minutes on 2 cores):

- each field ``k`` is ``gain_k * procedural_k + residual_k``, the gain within 1/3..3; the residual may only be non-zero
  within ``SUPPORT_CM`` (geodesic) of where the procedural field moves the face, so fields stay local,
  and a mesh-Laplacian penalty keeps it smooth. Left/right fields are mirror images and symmetric
  fields symmetric by construction (the residual is symmetrised). eyeBlink (a lid-meets-lid target,
  rebuilt per identity) and tongueOut are kept as they are. The fields the reader does not see
  (``readback.UNREAD``: cheekPuff, noseSneer, mouthFrown, ...) cannot be calibrated; they grow by
  ``UNREAD_GAIN``, about the median gain of the calibrated fields (a documented guess, not a measurement).
- the iris fields of the eyeLook blendshapes (gain and residual), and one offset of the iris from
  the eye contour's centroid (mirrored), so that a neutral eye reads as looking ahead.
- per calibration identity, the expression it shows (``remove``, weights >= 0 on the fields): a face
  shape minus it is that identity's neutral face, which must read 0 (the "neutral identity").

The loss is the squared read-back error ``reader(rig(identity_i, w, pose)) - w`` over the read
blendshapes for random single activations (one blendshape, weight U(0.15, 1)), sparse combinations
(2-4 blendshapes, U(0, 0.7) each) and rest (w = 0), at random head poses (pitch, roll within ±20°,
yaw within ±30°). Identities: the canonical face, the photos' face shapes (``--photos``: the astronaut of
``examples/face.png`` and the public-domain White House portrait ``obama.jpg`` among ``face_recognition``'s
test images), and ``flowvq synth``'s reshapes of each. ``benchmarks/rig_readback.py`` measures the result
on faces the calibration never sees (``examples/face2.png``, Grace Hopper; ``biden.jpg``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from flowvq_cli.face import canonical
from flowvq_cli.face.readback import UNREAD, default_iris_basis, read_rig
from flowvq_cli.face.reader import default_reader
from flowvq_cli.face.rig import ARKIT_NAMES, MIRROR_PERMUTATION, N_EXP, procedural_basis

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "flowvq_cli" / "assets" / "rig_calibrated.safetensors"
FROZEN = ("eyeBlinkLeft", "eyeBlinkRight", "tongueOut")
MAX_LOG_GAIN = 1.1  # a field may grow or shrink by at most exp(1.1) = 3.0 times
UNREAD_GAIN = 2.5  # fields the reader does not see grow by the median gain of the calibrated ones
SUPPORT_CM = 0.8  # residuals live within this geodesic distance of the procedural field's support
SUPPORT_FRACTION = 0.05  # a vertex is in a field's support where it moves > 5 % of the field's maximum
POSE_LIMITS = (0.35, 0.52, 0.35)  # radians: pitch, yaw, roll
RESHAPES_PER_FACE = 3


def mirror_fields(fields: torch.Tensor) -> torch.Tensor:
    """The mirror image of per-blendshape fields (52, V, 3) with Left/Right swapped (468-vertex fields)."""
    idx = torch.from_numpy(np.array(canonical.mirror_index()))
    flip = torch.tensor([-1.0, 1.0, 1.0])
    return fields[MIRROR_PERMUTATION][:, idx] * flip


def mirror_iris(fields: torch.Tensor) -> torch.Tensor:
    """Mirror image of iris fields (52, 10, 3): the two irises swap, x flips, Left/Right swap."""
    swap = torch.tensor([5, 6, 9, 8, 7, 0, 1, 4, 3, 2])  # centre, right, up, left, down of the other eye
    return fields[MIRROR_PERMUTATION][:, swap] * torch.tensor([-1.0, 1.0, 1.0])


def laplacian() -> torch.Tensor:
    """Uniform mesh Laplacian (468, 468) of the canonical face's edges."""
    tri = canonical.load_canonical().triangles
    edges = np.unique(np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1), axis=0)
    adj = np.zeros((468, 468), np.float32)
    adj[edges[:, 0], edges[:, 1]] = adj[edges[:, 1], edges[:, 0]] = 1.0
    return torch.from_numpy(np.diag(adj.sum(1)) - adj)


def support_masks(base: np.ndarray) -> torch.Tensor:
    """(52, 468, 1) 1 where a field's residual may move a vertex, else 0."""
    geo = canonical.geodesic_distances()
    norm = np.linalg.norm(base, axis=-1)  # (52, 468)
    masks = np.zeros((N_EXP, 468, 1), np.float32)
    for k in range(N_EXP):
        seeds = np.flatnonzero(norm[k] > SUPPORT_FRACTION * norm[k].max())
        masks[k, :, 0] = geo[:, seeds].min(axis=1) < SUPPORT_CM
    return torch.from_numpy(masks)


def face_shapes(photos: list[Path], seed: int) -> list[np.ndarray]:
    """Calibration identities (468, 3) cm: canonical, the photos' face shapes, reshapes of each."""
    from flowvq_cli.data.synth import reshape_identity
    from flowvq_cli.face.analyze import photo_shape
    from flowvq_cli.face.rig import FaceRig

    procedural = FaceRig(procedural_basis())
    shapes = [canonical.load_canonical().vertices.astype(np.float32)]
    shapes += [photo_shape(photo, procedural).astype(np.float32) for photo in photos]
    rng = np.random.default_rng(seed)
    shapes += [reshape_identity(s, rng) for s in list(shapes) for _ in range(RESHAPES_PER_FACE)]
    return shapes


class Calibration(torch.nn.Module):
    """The calibrated fields and the calibration identities' expressions (see the module docstring)."""

    def __init__(self, shapes: list[np.ndarray]) -> None:
        super().__init__()
        base = np.array(procedural_basis())
        self.register_buffer("base", torch.from_numpy(base))
        self.register_buffer("mask", support_masks(base))
        self.register_buffer("iris_base", torch.from_numpy(default_iris_basis()))
        self.register_buffer("shapes", torch.from_numpy(np.stack(shapes)))
        trainable = torch.tensor([n not in FROZEN and n not in UNREAD for n in ARKIT_NAMES], dtype=torch.float32)
        self.register_buffer("trainable", trainable[:, None, None])
        fixed = torch.tensor([UNREAD_GAIN if n in UNREAD and n not in FROZEN else 1.0 for n in ARKIT_NAMES])
        self.register_buffer("fixed_gain", fixed[:, None, None])
        self.log_gain = torch.nn.Parameter(torch.zeros(N_EXP))
        self.residual = torch.nn.Parameter(torch.zeros_like(self.base))
        self.iris_log_gain = torch.nn.Parameter(torch.zeros(N_EXP))
        self.iris_residual = torch.nn.Parameter(torch.zeros_like(self.iris_base))
        self.iris_offset = torch.nn.Parameter(torch.zeros(3))  # left iris; the right one mirrored
        self.remove_logit = torch.nn.Parameter(torch.full((len(shapes), N_EXP), -4.0))

    def basis(self) -> torch.Tensor:
        """(52, 468, 3) calibrated fields, symmetric under mirroring."""
        log_gain = MAX_LOG_GAIN * torch.tanh(0.5 * (self.log_gain + self.log_gain[MIRROR_PERMUTATION]))
        gain = torch.exp(log_gain)[:, None, None]
        res = self.residual * self.mask
        res = 0.5 * (res + mirror_fields(res))
        return self.fixed_gain * self.base + self.trainable * ((gain - 1.0) * self.base + res)

    def iris_basis(self) -> torch.Tensor:
        """(52, 10, 3) iris fields (only the eyeLook ones are non-zero)."""
        log_gain = MAX_LOG_GAIN * torch.tanh(0.5 * (self.iris_log_gain + self.iris_log_gain[MIRROR_PERMUTATION]))
        gain = torch.exp(log_gain)[:, None, None]
        active = (self.iris_base.abs().sum((1, 2)) > 0).float()[:, None, None]
        fields = gain * self.iris_base + active * self.iris_residual
        return 0.5 * (fields + mirror_iris(fields))

    def iris_offsets(self) -> torch.Tensor:
        """(10, 3): the neutral iris points' offset from the contour-derived ones (both eyes)."""
        right = self.iris_offset * torch.tensor([-1.0, 1.0, 1.0])
        return torch.cat([right.expand(5, 3), self.iris_offset.expand(5, 3)])

    def neutral_shapes(self, basis: torch.Tensor) -> torch.Tensor:
        """(N, 468, 3): each calibration identity with the expression it shows removed."""
        remove = torch.sigmoid(self.remove_logit) * self.trainable[:, 0, 0]
        return self.shapes - torch.einsum("nk,kvc->nvc", remove, basis)


def sample_batch(rng: torch.Generator, n: int, n_ids: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Identity indices (n,), weights (n, 52), angles (n, 3): singles, sparse combinations and rest."""
    readable = torch.tensor([i for i, name in enumerate(ARKIT_NAMES) if name not in UNREAD])
    w = torch.zeros(n, N_EXP)
    kind = torch.rand(n, generator=rng)
    for i in range(n):
        if kind[i] < 0.55:
            k = readable[torch.randint(len(readable), (1,), generator=rng)]
            w[i, k] = 0.15 + 0.85 * torch.rand(1, generator=rng)
        elif kind[i] < 0.9:
            ks = readable[torch.randperm(len(readable), generator=rng)[: int(torch.randint(2, 5, (1,), generator=rng))]]
            w[i, ks] = 0.7 * torch.rand(len(ks), generator=rng)
    angles = (torch.rand(n, 3, generator=rng) * 2 - 1) * torch.tensor(POSE_LIMITS)
    return torch.randint(n_ids, (n,), generator=rng), w, angles


def loss_terms(model: Calibration, reader, batch, lap: torch.Tensor, weights: dict) -> dict[str, torch.Tensor]:
    ids, w, angles = batch
    basis, iris = model.basis(), model.iris_basis()
    neutral = model.neutral_shapes(basis)[ids]  # (B, 468, 3)
    read = read_rig(reader, neutral, basis, iris, w, angles, iris_offset=model.iris_offsets())
    err = (read - w)[:, [i for i, n in enumerate(ARKIT_NAMES) if n not in UNREAD]]
    res = model.residual * model.mask
    return {
        "readback": err.square().mean(),
        "smooth": weights["smooth"] * torch.einsum("uv,kvc->kuc", lap, res).square().sum() / N_EXP,
        "size": weights["size"] * res.square().sum() / N_EXP,
        "iris": weights["size"] * (model.iris_residual.square().sum() + model.iris_offset.square().sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=900)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--smooth", type=float, default=0.3, help="weight of the Laplacian penalty")
    parser.add_argument("--size", type=float, default=0.003, help="weight of the residuals' squared size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--photos", type=Path, nargs="+", default=[ROOT / "examples" / "face.png"],
                        help="photos whose face shapes join the canonical face")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    from safetensors.torch import save_file

    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = Calibration(face_shapes(args.photos, args.seed))
    reader, lap = default_reader(), laplacian()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    rng = torch.Generator().manual_seed(args.seed)
    start = time.time()
    for step in range(1, args.steps + 1):
        terms = loss_terms(model, reader, sample_batch(rng, args.batch, len(model.shapes)), lap, vars(args))
        opt.zero_grad()
        sum(terms.values()).backward()
        opt.step()
        if step % 100 == 0 or step == 1:
            shown = " ".join(f"{k} {v.item():.4f}" for k, v in terms.items())
            print(f"step {step} {shown} ({time.time() - start:.0f} s)", flush=True)
    with torch.no_grad():
        tensors = {"basis": model.basis(), "iris_basis": model.iris_basis(), "iris_offset": model.iris_offsets()}
    save_file({k: v.contiguous().float() for k, v in tensors.items()}, str(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
