"""The codebook model (VQGAN): quantiser, encoder/decoder, patch discriminator and training losses."""

from flowvq_cli.vq.discriminator import DiscriminatorConfig, DiscriminatorOutput, PatchDiscriminator
from flowvq_cli.vq.losses import (
    DiscriminatorLoss,
    GeneratorLoss,
    VGG19Features,
    VQGANLoss,
    VQGANLossConfig,
    load_vgg19_features,
)
from flowvq_cli.vq.quantizer import QuantizerConfig, QuantizerOutput, VectorQuantizer
from flowvq_cli.vq.vqgan import VQGAN, VQGANConfig, VQOutput

__all__ = [
    "VQGAN",
    "DiscriminatorConfig",
    "DiscriminatorLoss",
    "DiscriminatorOutput",
    "GeneratorLoss",
    "PatchDiscriminator",
    "QuantizerConfig",
    "QuantizerOutput",
    "VGG19Features",
    "VQGANConfig",
    "VQGANLoss",
    "VQGANLossConfig",
    "VQOutput",
    "VectorQuantizer",
    "load_vgg19_features",
]
