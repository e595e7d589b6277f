"""One dataset from several (``flowvq merge``): a manifest listing every clip of the sources, nothing copied.

The merged folder holds only ``manifest.jsonl`` (and, once training runs, its ``cache/``); each clip's paths
point into its source folder, relative to the merged one, so the folders move together. Splits stay as the
sources drew them (by speaker); a clip id or a speaker found in two sources is refused, since the clips would
be confused, or one speaker could be in two splits.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from flowvq_cli.data.manifest import MANIFEST_NAME, Clip, ManifestError, read_manifest, write_manifest
from flowvq_cli.errors import InputError


def merge_datasets(out: str | Path, sources: list[str | Path], *, force: bool = False) -> list[Clip]:
    """Write ``out/manifest.jsonl`` listing the clips of every dataset in ``sources``; returns them.

    Raises:
        InputError: fewer than two sources, ``out`` already a dataset (without ``force``) or one of the
            sources, a source that is not a dataset, or a clip id or speaker in two sources.
    """
    out = Path(out).resolve()
    roots = [Path(s).resolve() for s in sources]
    if len(roots) < 2:
        raise InputError("give at least two dataset folders to merge")
    if out in roots:
        raise InputError(f"{out} is one of the datasets to merge; write the merged one to a new folder")
    if (out / MANIFEST_NAME).exists() and not force:
        raise InputError(f"{out} is already a dataset; pass --force to replace its manifest")
    clips: list[Clip] = []
    owner: dict[str, Path] = {}  # clip id or speaker -> its source
    for root in roots:
        try:
            source_clips = read_manifest(root)
        except ManifestError as error:
            raise InputError(str(error)) from None
        for kind, names in (("clip id", {c.id for c in source_clips}), ("speaker", {c.speaker for c in source_clips})):
            for name in sorted(names):
                seen = owner.setdefault(f"{kind}:{name}", root)
                if seen != root:
                    raise InputError(f"{kind} {name!r} is in both {seen} and {root}; merge datasets without "
                                     "shared clips or speakers")
        rel = Path(os.path.relpath(root, out))
        clips += [replace(c, paths={k: (rel / v).as_posix() for k, v in c.paths.items()}) for c in source_clips]
    write_manifest(out, clips)
    return clips
