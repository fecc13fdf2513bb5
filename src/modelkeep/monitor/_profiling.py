"""``profile()``: add a reference profile to a bundle saved without one, as a new version.

The model is loaded through every check of :func:`modelkeep.load` and run on the sample
for its outputs; the bundle is rewritten beside itself (or at ``output``) with its
artifacts copied byte for byte (their hashes checked while copying) and a manifest that
differs only in ``profile``, ``version`` (the next number) and ``created_at``. A signature
no longer matches the new manifest, so it is not carried over.
"""

from __future__ import annotations

import os
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from modelkeep._modes import EnvMode
from modelkeep.errors import InvalidArgumentError, ManifestError, SchemaWarning
from modelkeep.manifest import MANIFEST_NAME, Manifest

__all__ = ["profile"]


def profile(
    bundle: str | os.PathLike[str],
    sample: Any,
    *,
    output: str | os.PathLike[str] | None = None,
    trusted: list[str] | None = None,
    env: EnvMode = "warn",
) -> Manifest:
    """Compute the reference profile of ``sample`` and write it into the bundle.

    Args:
        bundle: the bundle directory.
        sample: the training data (or rows of it): a DataFrame, or a ``.csv`` or
            ``.parquet`` file holding the model's columns (others are ignored).
        output: write the new bundle here instead of replacing ``bundle`` (atomically).
        trusted, env: as for :func:`modelkeep.load`.

    Returns:
        The new manifest: the next version, with ``profile`` set.

    Raises:
        InvalidArgumentError: ``sample`` lacks a feature, cannot be read, or is empty.
        every error of :func:`modelkeep.load`.

    Example:
        >>> modelkeep.monitor.profile("churn_model", "train.parquet").version
        '2'
    """
    import modelkeep
    from modelkeep._conversion import read_validation
    from modelkeep._fs import write_file
    from modelkeep._profile import build_profile
    from modelkeep._reader import SIGNATURE_NAME, open_bundle
    from modelkeep._save_args import resolve_version
    from modelkeep._writer import staged_bundle, write_manifest

    source = Path(bundle)
    rows = read_validation(sample)
    model = modelkeep.load(source, trusted=trusted, env=env)
    manifest = model.manifest
    missing = [f.name for f in manifest.features if f.name not in getattr(rows, "columns", [])]
    if missing or not len(rows):
        raise InvalidArgumentError(
            "sample",
            f"rows holding the model's columns ({', '.join(f.name for f in manifest.features)})",
            f"rows missing {', '.join(missing)}" if missing else "no rows",
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SchemaWarning)  # training data may be unusual too
        frame = model.prepare(rows[[f.name for f in manifest.features]])
    reference = build_profile(
        model.estimator,
        frame,
        manifest.features,
        task=manifest.task,
        classes=manifest.target.classes,
        target=manifest.target,
    )
    updated = manifest.model_copy(
        update={
            "profile": reference,
            "version": resolve_version(None, manifest),
            "created_at": datetime.now(timezone.utc).replace(microsecond=0),
        }
    )
    target = Path(output) if output is not None else source
    with open_bundle(source) as reader:
        if reader.manifest() != manifest:
            raise ManifestError(
                str(source / MANIFEST_NAME), "changed while its profile was being computed"
            )
        with staged_bundle(target, replace=output is None) as staging:
            for artifact in manifest.artifacts:
                write_file(staging / artifact.path, reader.read_artifact(artifact))
            for name in reader.files:
                if "/" not in name and name not in (MANIFEST_NAME, SIGNATURE_NAME):
                    write_file(staging / name, reader.read(name))
            write_manifest(staging, updated)
    return updated
