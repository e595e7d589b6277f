"""Configuration of the vector-quantised image generator (VQIG, paper §3.3, docs/design.md §4 "VQIG").

One frozen dataclass, :class:`VQIGConfig`, describes the whole model: the codebook model it is built on
(``codebook``, a :class:`~flowvq_cli.vq.VQGANConfig`), the sizes of VQIG's own networks and the loss
weights of its two training stages (``loss``, a :class:`VQIGLossConfig`). Presets: ``tiny()`` for tests,
``mini()`` for the CPU budget (docs/design.md §8), ``base()`` for a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flowvq_cli.face.rig import N_COEFFS
from flowvq_cli.modeling import ConfigMixin
from flowvq_cli.vq.losses import VQGANLossConfig
from flowvq_cli.vq.vqgan import VQGANConfig


@dataclass(frozen=True)
class VQIGLossConfig:
    """Weights of the two training stages (CodeFormer-style, paper §3.3).

    Code level (stage 1)::

        L_code = ce_weight·CE(logits, idx_gt) + feature_weight·‖ẑ − z_gt‖²
                 + warp_image_weight·‖I_w − I_gt‖₁ + flow_weight·L_flow     (L_flow only with a mesh-warp flow)

    Image level (stage 2)::

        L_img = λ_rec‖Î − I_gt‖₁ + L_per + λ_adv·L_adv + image_code_weight·CE(logits, idx_gt)
                + occlusion_weight·BCE(o, 1 − mouth)     (``compose`` without ``mesh_prior``, with a mouth mask)

    Attributes:
        ce_weight: weight of the code cross-entropy.
        feature_weight: weight of ‖ẑ − z_gt‖² between the fused features and the GT frame's quantised latents.
        warp_image_weight: L1 between the warped source image I_w and the GT frame (gives the warping
            network a direct signal, as PIRenderer's warping loss does); 0 = off.
        flow_weight: L1 between the predicted flow and the mesh-warp renderer's flow (warm start), applied
            when the batch carries that flow; 0 = off.
        image: weights of the image-level terms (reconstruction, perceptual or its substitute,
            adversarial), shared with the codebook model's loss.
        image_code_weight: cross-entropy kept in the image stage so the predicted codes stay anchored to the
            GT frame's codes while the image losses fine-tune the networks; 0 = off.
        occlusion_weight: with ``VQIGConfig.compose`` (not with ``mesh_prior``, whose prior already holds the
            mouth), binary cross-entropy between W's occlusion mask o and
            "visible everywhere but the mouth interior the mesh-warp renderer paints" (the one region the
            photo has no pixels for). Trained on one face, the codebook reproduces that face about as well
            as the warped photo does, so the image loss alone gives o no reason to leave its initial value
            anywhere; this term teaches W where the photo must give way; 0 = off.
    """

    ce_weight: float = 1.0
    feature_weight: float = 1.0
    warp_image_weight: float = 1.0
    flow_weight: float = 1.0
    image: VQGANLossConfig = field(default_factory=VQGANLossConfig)
    image_code_weight: float = 0.5
    occlusion_weight: float = 1.0

    def __post_init__(self) -> None:
        weights = (self.ce_weight, self.feature_weight, self.warp_image_weight, self.flow_weight,
                   self.image_code_weight, self.occlusion_weight)
        if min(weights) < 0:
            raise ValueError(f"loss weights must be >= 0, got {weights}")

    @classmethod
    def tiny(cls) -> VQIGLossConfig:
        """For tests: the codebook's tiny image-level loss (adversarial term from step 10)."""
        return cls(image=VQGANLossConfig.tiny())


@dataclass(frozen=True)
class VQIGConfig(ConfigMixin):
    """Architecture of :class:`~flowvq_cli.vqig.generator.VQIG`.

    Attributes:
        codebook: the frozen codebook model's configuration (E, C, G).
        coeff_dim: floats per coefficient frame (layout version 1: 52 exp + 6 pose).
        window: w; the mapping network sees 2w + 1 frames of target coefficients centred on the frame.
        motion_dim: d_m, width of the motion descriptor m.
        mapping_channels: width of the mapping network's 1-D convolutions.
        mapping_layers: residual dilated 1-D conv blocks in the mapping network (dilation 1, 2, 4, …).
        warp_size: side of the warping network's input (downsampled source) and of its flow output.
        warp_channels: widths of the warping network's hourglass levels, full ``warp_size`` first; each
            further level halves the resolution.
        warp_level: encoder level at which the source is warped: 0 warps the image itself and runs all of
            E_w per frame (the paper's wording); k > 0 runs E_w's first k levels once on the source
            (cached per photo) and warps their output, so only the rest of E_w runs per frame.
        fuse_dim: width of the fuse network's tokens.
        fuse_heads: heads of its cross-attention.
        transformer_dim, transformer_heads, transformer_layers: the code-prediction transformer T.
        mlp_ratio: hidden width / width of every token MLP.
        dropout: dropout in the attention and MLP blocks during training.
        fidelity_skip: add the CodeFormer-style fidelity skip (warped encoder features modulate the frozen
            decoder through controllable feature transformations); see ``fidelity.py``.
        fidelity_w: w of the skip at inference and in training (0 = pure codebook output).
        fidelity_levels: decoder levels that receive the skip (0 = full resolution; each level halves).
        fidelity_reduction: hidden width of a feature transformation = level width / this.
        fidelity_kernel: kernel side of the transformation's first convolution.
        compose: paste the source image, warped by W's flow, over the decoded frame wherever W's occlusion
            mask says the source is visible (``frame = o·warp(source) + (1 − o)·G(codes)``, the occlusion
            mask o upsampled to the frame), as FOMM composes its output; the codebook then paints only
            what the photo lacks (the inside of an opening mouth, uncovered background). An addition to
            the paper for identity on unseen faces; off in the presets (see ``benchmarks/eval_renderers.py``).
        mesh_prior: W's flow is a residual on the mesh-warp renderer's flow (``flowvq_cli.render.meshwarp``, the
            analytic warp of the photo's face mesh to each frame's coefficients), and wherever that renderer
            would paint (mouth interior, closing lids) the photo counts as occluded, so the codebook paints
            it. Needs ``compose``; every call then passes a :class:`~flowvq_cli.vqig.warp.MeshPrior`. An
            addition to the paper: a motion field learnt from a few training faces does not carry over to
            an unseen face, the mesh's geometry does (as FOMM and face-vid2vid start their dense motion
            from keypoint motions). Off in the presets.
        prior_residual: with ``mesh_prior``, add W's flow offset to the prior's flow (True), or use the
            prior's flow as it is (False: W only predicts the occlusion mask). On frames rendered by the
            mesh warp itself the prior is exact, and a residual learnt there only fits the training faces
            (measured on an unseen face: 26.9 dB against 32.2 without it).
        prior_frame: with ``mesh_prior`` (and without ``prior_residual``), compose on the mesh-warp renderer's
            own frame instead of the photo warped by its flow: the two are the same pixels except where
            that renderer paints, and there its closing lids stay (the :class:`MeshPrior` then carries the
            frame, and its paint is the mouth interior's alone), so the codebook paints only the inside of
            the mouth. W is not run (its occlusion mask counts as all visible: outside the mouth the
            renderer's frame is the target's best estimate, and a mask below 1 there only blends the
            codebook's frame in), and a frame whose mouth the renderer does not paint is its frame as it
            is, without running the networks. Why: on a 16 × 16 code grid an eye is about two codes wide,
            and lids the codebook paints do not read as closed (measured: 0.0 blinks per minute where the
            warp gives 12).
        init_gain: scale of the initial weights of every layer whose output is added to or modulates an
            existing signal (flow offsets, AdaIN scales, fidelity scale/shift), so training starts near
            the identity warp and the pure codebook decoder.
        occlusion_init: initial occlusion-mask logit (sigmoid(occlusion_init) ≈ 1: nothing occluded).
        prior_occlusion_init: the same with ``mesh_prior``, higher: the prior already marks what the photo
            lacks, and a mask that starts at 0.95 would blend 5 % of the codebook's frame into every pixel
            (measured: the face's sharpness ratio falls from 0.59 to 0.53).
        loss: weights of the two training stages.
    """

    codebook: VQGANConfig = field(default_factory=VQGANConfig.base)
    coeff_dim: int = N_COEFFS
    window: int = 13
    motion_dim: int = 256
    mapping_channels: int = 256
    mapping_layers: int = 3
    warp_size: int = 64
    warp_channels: tuple[int, ...] = (64, 128, 256, 256)
    warp_level: int = 0
    fuse_dim: int = 512
    fuse_heads: int = 8
    transformer_dim: int = 512
    transformer_heads: int = 8
    transformer_layers: int = 9
    mlp_ratio: int = 2
    dropout: float = 0.0
    fidelity_skip: bool = True
    fidelity_w: float = 0.5
    fidelity_levels: tuple[int, ...] = (1, 2, 3)
    fidelity_reduction: int = 2
    fidelity_kernel: int = 3
    compose: bool = False
    mesh_prior: bool = False
    prior_residual: bool = True
    prior_frame: bool = False
    init_gain: float = 0.01
    occlusion_init: float = 3.0
    prior_occlusion_init: float = 8.0
    loss: VQIGLossConfig = field(default_factory=VQIGLossConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "warp_channels", tuple(int(c) for c in self.warp_channels))
        object.__setattr__(self, "fidelity_levels", tuple(sorted(int(lv) for lv in self.fidelity_levels)))
        cb = self.codebook
        levels = len(cb.channel_mults)
        if not 0 <= self.warp_level < levels:
            raise ValueError(f"warp_level must be in [0, {levels}) for a {levels}-level codebook, "
                             f"got {self.warp_level}")
        if any(not 0 <= lv < levels - 1 for lv in self.fidelity_levels):
            raise ValueError(f"fidelity_levels must lie in [0, {levels - 1}) (the lowest level is the code grid), "
                             f"got {self.fidelity_levels}")
        if self.warp_size % 2 ** (len(self.warp_channels) - 1):
            raise ValueError(f"warp_size {self.warp_size} is not divisible by 2^{len(self.warp_channels) - 1}")
        if self.fuse_dim % self.fuse_heads or self.transformer_dim % self.transformer_heads:
            raise ValueError("fuse_dim / transformer_dim must be divisible by their number of heads")
        if self.window < 0 or self.mapping_layers < 0 or self.transformer_layers < 1:
            raise ValueError("window and mapping_layers must be >= 0, transformer_layers >= 1")
        if not 0.0 <= self.fidelity_w <= 1.0:
            raise ValueError(f"fidelity_w must be in [0, 1], got {self.fidelity_w}")
        if self.mesh_prior and not self.compose:
            raise ValueError("mesh_prior needs compose: the prior says where the warped photo is visible")
        if self.prior_frame and not (self.mesh_prior and not self.prior_residual):
            raise ValueError("prior_frame needs mesh_prior without prior_residual: the renderer's frame is the "
                             "photo warped by the prior's flow alone")
        if self.fidelity_kernel % 2 == 0:
            raise ValueError(f"fidelity_kernel must be odd, got {self.fidelity_kernel}")

    @property
    def window_frames(self) -> int:
        """2w + 1: frames in a coefficient window."""
        return 2 * self.window + 1

    @property
    def num_tokens(self) -> int:
        """h·w: positions of the code grid."""
        return self.codebook.latent_size ** 2

    # ---------------------------------------------------------------------------- presets
    @classmethod
    def tiny(cls) -> VQIGConfig:
        """For tests: the tiny codebook (32² images, 8² codes), warp at level 1, fidelity at levels 0 and 1."""
        return cls(codebook=VQGANConfig.tiny(), window=2, motion_dim=16, mapping_channels=16, mapping_layers=2,
                   warp_size=16, warp_channels=(8, 16, 16), warp_level=1, fuse_dim=16, fuse_heads=2,
                   transformer_dim=16, transformer_heads=2, transformer_layers=2, fidelity_levels=(0, 1),
                   fidelity_reduction=2, loss=VQIGLossConfig.tiny())

    @classmethod
    def mini(cls) -> VQIGConfig:
        """The CPU budget (docs/design.md §8) on the mini codebook (256² images, 16² codes, d = 64).

        E_w's first three levels run once per photo; per frame it warps their 32² output, runs E_w's last
        levels, a 64² flow hourglass, a 3-layer transformer and the 5.1 GFLOP decoder with the fidelity
        skip at 128² and 64². ``python -m flowvq_cli.vqig.profile`` measures FLOPs and time per frame.
        """
        return cls(codebook=VQGANConfig.mini(), window=3, motion_dim=128, mapping_channels=128, mapping_layers=2,
                   warp_size=64, warp_channels=(16, 32, 64, 128), warp_level=3, fuse_dim=128, fuse_heads=4,
                   transformer_dim=128, transformer_heads=4, transformer_layers=3, fidelity_levels=(1, 2),
                   fidelity_reduction=4, loss=VQIGLossConfig())

    @classmethod
    def base(cls) -> VQIGConfig:
        """For a GPU: the base codebook (d = 256, N = 1024), the image itself warped and fully re-encoded
        (the paper's E_w), a 9-layer transformer (CodeFormer's depth), fidelity at 128², 64² and 32²."""
        return cls()
