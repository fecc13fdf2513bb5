"""Quarantine conversion: an untrusted pickle turned into an ONNX bundle inside the worker.

``modelkeep import legacy.pkl --sample data.csv --name churn --isolate --to onnx``. The
worker loads the file (with the safety layer), converts it to ONNX and runs the parity
gate against the sample and the probe set, all confined; only the ONNX bytes and the
manifest leave it, as data. Here, in the caller: the manifest is parsed, every artifact
must be ONNX and match its recorded size and SHA-256, the parity report must have passed;
the bundle records its provenance (``details["quarantine"]`` of the ONNX artifact: the
source file's name and SHA-256, computed here, and the parity verdict); then it is loaded
with onnxruntime, golden samples replayed, in a staging folder, before it is moved into
place. The original pickle is never unpickled in this process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelkeep.errors import SandboxCrashError
from modelkeep.manifest import Manifest, parse_manifest
from modelkeep.sandbox._confine import Limits
from modelkeep.sandbox._launcher import Worker, preload_modules

__all__ = ["QUARANTINE_MODULES", "quarantine_import"]

#: What the worker needs besides the loaders to convert and check: skl2onnx and onnx.
QUARANTINE_MODULES = (
    "onnx",
    "skl2onnx",
    "onnxmltools",
    "modelkeep._importing",
    "modelkeep._conversion",
    "modelkeep.onnx.export",
    "modelkeep.onnx.strategies",
    "modelkeep.onnx.parity",
    "modelkeep.onnx.trees",
    "modelkeep.onnx.structure",
    "modelkeep.onnx.narrowing",
)


def quarantine_import(
    model_file: str | os.PathLike[str],
    sample: str | os.PathLike[str],
    *,
    name: str,
    out: str | os.PathLike[str],
    labels: Mapping[Any, str] | None = None,
    trusted: Sequence[str] | None = None,
    overwrite: bool = False,
    max_inflated_bytes: int | None = None,
    limits: Limits | None = None,
    _proofs: bool = True,
) -> Manifest:
    """Convert ``model_file`` to an ONNX bundle at ``out`` without unpickling it here.

    Raises:
        every error of :func:`modelkeep.safe_load` and :func:`modelkeep.save` (as raised in
        the worker: ``ParityError`` when the conversion disagrees with the pickle), the
        sandbox's errors, and those of :func:`modelkeep.load` for the result. Nothing is
        written at ``out`` unless all of it passed.
    """
    from modelkeep._bundle import load
    from modelkeep._fs import sha256_stream
    from modelkeep._writer import staged_bundle, write_manifest
    from modelkeep.safety.joblib_layout import MAX_DECOMPRESSED_BYTES

    source = Path(os.path.abspath(os.fspath(model_file)))
    with source.open("rb") as stream:
        source_sha256, _ = sha256_stream(stream)
    request = {
        "op": "quarantine",
        "file": str(source),
        "sample": os.path.abspath(os.fspath(sample)),
        "name": name,
        "labels": None if labels is None else {str(k): str(v) for k, v in labels.items()},
        "trusted": None if trusted is None else [str(t) for t in trusted],
        "max_inflated_bytes": max_inflated_bytes or MAX_DECOMPRESSED_BYTES,
    }
    preload = [*preload_modules(onnx=True), *QUARANTINE_MODULES]
    worker = Worker(
        str(source),
        limits=limits or Limits(),
        preload=preload,
        proofs=_proofs,
        reads=[str(source), str(request["sample"])],
    )
    try:
        reply, arrays = worker.request(request, during="quarantine conversion")
    finally:
        worker.close()
    manifest, files = _checked(str(source), reply, arrays)
    manifest = _with_provenance(manifest, source.name, source_sha256)
    target = Path(out)
    with staged_bundle(target, replace=overwrite) as staging:
        for relative, data in files.items():
            from modelkeep._fs import write_file

            write_file(staging / relative, data)
        write_manifest(staging, manifest)
        # The host's own check of what left the worker: onnxruntime, integrity, claims,
        # golden samples; nothing here reads the pickle.
        load(staging, format="onnx")
    return manifest


def _checked(
    source: str, reply: dict[str, Any], arrays: list[np.ndarray]
) -> tuple[Manifest, dict[str, bytes]]:
    """The manifest and files the worker sent, each checked: ONNX only, sizes and hashes
    as recorded, a passed parity report."""
    import hashlib

    def bad(problem: str) -> SandboxCrashError:
        return SandboxCrashError(source, "quarantine conversion", f"it sent {problem}")

    manifest = parse_manifest(str(reply.get("manifest", "")), f"{source} (from the worker)")
    names = reply.get("files")
    if not isinstance(names, list) or len(names) != len(arrays):
        raise bad("a file list that does not match its data")
    files: dict[str, bytes] = {}
    for relative, array in zip(names, arrays, strict=True):
        if array.dtype != np.uint8 or array.ndim != 1:
            raise bad(f"file data for {relative!r} that is not bytes")
        files[str(relative)] = array.tobytes()
    recorded = {a.path: a for a in manifest.artifacts}
    if set(files) != set(recorded):
        raise bad(f"files {sorted(files)} for artifacts {sorted(recorded)}")
    for path, artifact in recorded.items():
        data = files[path]
        if artifact.format != "onnx":
            raise bad(f"an artifact in format {artifact.format!r}; only ONNX may leave")
        if len(data) != artifact.size or hashlib.sha256(data).hexdigest() != artifact.sha256:
            raise bad(f"{path!r} whose bytes differ from its manifest entry")
        parity = artifact.details.get("parity")
        if not isinstance(parity, dict) or parity.get("passed") is not True:
            raise bad(f"{path!r} without a passed parity report")
    return manifest, files


def _with_provenance(manifest: Manifest, source_name: str, source_sha256: str) -> Manifest:
    artifacts = []
    for artifact in manifest.artifacts:
        parity = artifact.details.get("parity", {})
        provenance = {
            "produced_by": "quarantine conversion (modelkeep import --isolate --to onnx)",
            "source": source_name,
            "source_sha256": source_sha256,
            "parity_passed": bool(isinstance(parity, dict) and parity.get("passed")),
        }
        details = {**artifact.details, "quarantine": provenance}
        artifacts.append(artifact.model_copy(update={"details": details}))
    return manifest.model_copy(update={"artifacts": artifacts})
