"""Trainers of the image components, the codebook model (VQGAN) and the image generator VQIG (docs/design.md
§4), under the names they have always had here.

The code lives in modules by concern: :mod:`.codebook` (:func:`train_codebook`), :mod:`.vqig`
(:func:`train_vqig`), :mod:`.vqig_objective` (VQIG's batches, stage schedule, mesh-warp targets and
objective), :mod:`.image_common` (what both trainers use: run description and result, datasets, sample
grids) and :mod:`.image_export` (export of a run's newest checkpoint).
"""

from __future__ import annotations

from .codebook import RandomCrops, codebook_configs, train_codebook
from .image_common import (
    SAMPLE_ITEMS,
    SAMPLES_DIRNAME,
    ImageRunResult,
    clip_face_key,
    psnr_per_image,
    save_grid,
    to_uint8,
)
from .image_export import export_image_component, load_image_run_model
from .vqig import train_vqig, vqig_config
from .vqig_objective import (
    CODE,
    IMAGE,
    STAGE_INDEX,
    STAGES,
    WARM_START,
    StageSchedule,
    VQIGObjective,
    VQIGTrainBatch,
    WindowedTriplets,
    collate_windowed_triplets,
    mesh_warp_targets,
)

__all__ = [
    "CODE",
    "IMAGE",
    "SAMPLES_DIRNAME",
    "SAMPLE_ITEMS",
    "STAGES",
    "STAGE_INDEX",
    "WARM_START",
    "ImageRunResult",
    "RandomCrops",
    "StageSchedule",
    "VQIGObjective",
    "VQIGTrainBatch",
    "WindowedTriplets",
    "clip_face_key",
    "codebook_configs",
    "collate_windowed_triplets",
    "export_image_component",
    "load_image_run_model",
    "mesh_warp_targets",
    "psnr_per_image",
    "save_grid",
    "to_uint8",
    "train_codebook",
    "train_vqig",
    "vqig_config",
]
