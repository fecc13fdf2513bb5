"""save() and load(): the bundle on disk, written atomically and read back checked.

A bundle is a directory::

    modelkeep.json          the manifest (modelkeep.manifest.Manifest), canonical JSON
    artifacts/pipeline.*    one file per format, each hashed in the manifest
    model.sig               optional signature over every file (modelkeep.signing.sign);
                            save() never writes one, so saving over a bundle unsigns it

This module is the two sequences and nothing under them: save()'s argument checks are in
``_save_args.py``, writing a bundle in ``_writer.py``, reading one in ``_reader.py``, and
the file layer both stand on (no-follow opens, atomic swaps, fsync) in ``_fs.py``.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelkeep import _save_args
from modelkeep._dump import DumpContext
from modelkeep._environment import capture_environment
from modelkeep._formats import get_format
from modelkeep._formats.base import Format
from modelkeep._fs import save_lock
from modelkeep._integrity import fingerprint_frame
from modelkeep._model import Model, SklearnModel
from modelkeep._modes import EnvMode as EnvMode  # re-exported: conversion imports it here
from modelkeep._reader import BundleReader, Replaced
from modelkeep._version import __version__
from modelkeep._writer import staged_bundle, write_artifact, write_manifest
from modelkeep.errors import (
    ArtifactFormatError,
    ArtifactSkippedWarning,
    BundleNotFoundError,
    ConversionError,
    EnvironmentMismatchError,
    EnvironmentMismatchWarning,
    InvalidChoiceError,
    ManifestError,
    ModelkeepError,
    SignatureError,
    UnknownFormatError,
)
from modelkeep.manifest import MANIFEST_NAME, Artifact, DataInfo, Manifest
from modelkeep.safety.policy import TrustPolicy
from modelkeep.safety.sniff import content_of, sniff
from modelkeep.signing import SIGNATURE_NAME, VerifiedSignature, check_signature

if TYPE_CHECKING:
    from modelkeep.onnx.report import ParityThresholds
    from modelkeep.onnx.runtime import SessionOptions

# pandas, the schema and the golden samples are imported where a model is saved or
# replayed: loading an ONNX artifact must not need pandas (or scikit-learn) installed.

__all__ = ["Check", "load", "save", "verify"]

_ENV_MODES = ("warn", "strict", "ignore")


# --------------------------------------------------------------------------------- save


def save(
    model: Any,
    path: str | os.PathLike[str],
    *,
    sample: Any,
    name: str,
    version: str | int | None = None,
    labels: Mapping[Any, str] | None = None,
    metrics: Mapping[str, float] | None = None,
    data_version: str | None = None,
    description: str | None = None,
    tags: Sequence[str] | None = None,
    formats: Sequence[str] = ("skops",),
    golden_rows: int = 20,
    overwrite: bool = False,
    feature_names: Sequence[str] | None = None,
    parity: ParityThresholds | None = None,
    force: bool = False,
) -> Manifest:
    """Save a fitted model as a bundle directory at ``path``; return its manifest.

    Args:
        model: a fitted scikit-learn estimator or pipeline (preprocessing included).
        path: the bundle directory to create.
        sample: training data (or rows of it): a DataFrame, or a 2-D array with
            ``feature_names``. The feature schema, golden samples and data fingerprint come
            from it.
        name: the model's name.
        version: recorded version; default 1 for a new path, the previous version + 1 when
            overwriting a bundle whose version is a number.
        labels: model output -> business label, e.g. ``{0: "No Churn", 1: "Churn"}``; its
            keys must be exactly the model's classes. Default: no label map; the loaded
            model predicts the classes themselves (``1``, not ``"1"``).
        metrics: name -> number, e.g. ``{"f1": 0.71, "roc_auc": 0.86}``.
        data_version: which data trained the model, e.g. ``"customer_data_2026_Q1"``.
        description, tags: free text and labels for people.
        formats: artifact formats to write; ``"skops"`` by default. ``"onnx"`` converts the
            model and writes it only if it passes its parity check against the original
            (on the golden samples, ``sample`` and generated probes; needs the ``[onnx]``
            extra).
        golden_rows: how many rows of ``sample`` to store with their outputs (0: none).
        overwrite: replace an existing bundle at ``path`` (atomically).
        feature_names: column names when ``sample`` is an array.
        parity: thresholds of the ONNX parity check (default ``ParityThresholds()``).
        force: write an ONNX conversion that fails its parity check, marked as failed.

    Raises:
        NotFittedModelError, SampleMismatchError, LabelMapError, BundleExistsError,
        UnknownFormatError, SchemaError: as named; nothing is written when any is raised.
        UnconvertibleModelError, ParityError: the ONNX conversion failed and ``"onnx"`` was
        the only format; with other formats those are written and an
        ``ArtifactSkippedWarning`` carries the error.

    Example:
        >>> modelkeep.save(pipeline, "churn", sample=X_train, name="churn",
        ...                labels={0: "No Churn", 1: "Churn"}, metrics={"f1": 0.71})
    """
    target = Path(path)
    _save_args.check_fitted(model)
    fmt_names = _save_args.check_formats(formats)
    _save_args.check_name(name)
    _save_args.check_golden_rows(golden_rows)
    _save_args.check_importable(model)
    _save_args.existing_bundle(target, overwrite)  # fail early; checked again under the lock

    from modelkeep._golden import check_sample_kinds, record_golden
    from modelkeep._profile import build_profile
    from modelkeep._schema import infer_schema

    frame = _save_args.sample_frame(model, sample, feature_names)
    features = infer_schema(frame)
    check_sample_kinds(model, frame, features)
    task, classes = _save_args.infer_task(model)
    target_info = _save_args.target_info(classes, labels, task)
    golden = record_golden(model, frame, features, golden_rows, proba=task != "regression")
    profile = build_profile(model, frame, features, task=task, classes=classes, target=target_info)
    # From here to the rename into place, one save of this path at a time: two processes
    # overwriting it would otherwise both read version n and both write n + 1.
    with save_lock(target, path):
        previous = _save_args.existing_bundle(target, overwrite)
        # Replaced even when its manifest is unreadable or holds a link (previous is None).
        replace = target.exists()
        resolved_version = _save_args.resolve_version(version, previous)
        context = DumpContext(
            features=features,
            task=task,
            classes=classes,
            golden=golden,
            labels=[e.label for e in target_info.labels] if target_info.labels else None,
            validation=frame,
            parity=parity,
            force=force,
        )
        return _write_bundle(
            model,
            target,
            replace=replace,
            formats=fmt_names,
            context=context,
            build=lambda artifacts: Manifest(
                name=name,
                version=resolved_version,
                created_at=datetime.now(timezone.utc).replace(microsecond=0),
                description=description,
                tags=list(tags or []),
                modelkeep_version=__version__,
                model_type=f"{type(model).__module__}.{type(model).__qualname__}",
                task=task,
                features=features,
                target=target_info,
                metrics=_save_args.check_metrics(metrics),
                data=DataInfo(
                    fingerprint=fingerprint_frame(frame),
                    n_rows=len(frame),
                    data_version=data_version,
                ),
                environment=capture_environment(model),
                artifacts=artifacts,
                golden=golden,
                profile=profile,
            ),
        )


def _write_bundle(
    model: Any,
    target: Path,
    *,
    replace: bool,
    formats: list[str],
    context: DumpContext,
    build: Callable[[list[Artifact]], Manifest],
) -> Manifest:
    """Write the artifacts and the manifest ``build`` makes of them, atomically at target."""
    build([])  # validate everything that can fail before the first byte is written
    with staged_bundle(target, replace=replace) as staging:
        artifacts = _write_artifacts(model, staging, formats, context)
        manifest = build(artifacts)
        write_manifest(staging, manifest)
    return manifest


def _write_artifacts(
    model: Any, staging: Path, fmt_names: Sequence[str], context: DumpContext
) -> list[Artifact]:
    """Write each format; a conversion that fails is left out if other formats remain.

    A format that cannot hold the model faithfully (an ONNX step without a converter, a
    failed parity check) is an error when it is the only one asked for; among several,
    the others are saved and an ArtifactSkippedWarning carries the error.
    """
    artifacts: list[Artifact] = []
    skipped: list[tuple[str, ConversionError]] = []
    for fmt_name in fmt_names:
        try:
            artifacts.append(write_artifact(model, staging, fmt_name, context))
        except ConversionError as exc:
            if len(fmt_names) == 1:
                raise
            skipped.append((fmt_name, exc))
    for fmt_name, error in skipped:
        warnings.warn(
            ArtifactSkippedWarning(fmt_name, error, [a.format for a in artifacts]), stacklevel=3
        )
    return artifacts


# --------------------------------------------------------------------------------- load


# A reader retries when a concurrent overwrite removed the files it was reading; each
# attempt reads one whole bundle, old or new.
_ATTEMPTS = 3


def load(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    env: EnvMode = "warn",
    trusted: Sequence[str] | None = None,
    atol: float = 1e-6,
    public_key: str | os.PathLike[str] | None = None,
    session_options: SessionOptions | None = None,
    manifest_sha256: str | None = None,
) -> Model:
    """Load a bundle, checking it step by step, and return a :class:`Model`.

    The steps, in this order:

    1. refuse a bundle holding a symlink (or special file) anywhere, then parse and
       validate the manifest;
    2. with ``public_key``: check the signature (``model.sig``) covers these manifest bytes
       and every artifact and was made with that key's private key;
    3. check every artifact's size and SHA-256;
    4. compare the recorded environment with this one (``env``);
    5. check the chosen artifact's content is the format the manifest records, then
       deserialize it safely, validating every tree in it;
    6. check the manifest's claims the model can confirm (features against
       ``feature_names_in_``, task, classes against ``classes_``, label keys);
    7. replay the golden samples.

    The order is the point: nothing is deserialized before its bytes are known to be the
    ones saved (and, with a key, the ones its owner signed), and nothing calls the model
    before its trees are known to be well formed, or before the manifest that describes its
    inputs and outputs is known to agree with it. The artifact is read into memory once and
    that same buffer is hashed and deserialized, so the file cannot change between the
    check and the load; the signature is tied to the manifest bytes parsed and, through
    their SHA-256 entries, to that buffer.

    Args:
        path: the bundle directory.
        format: which artifact to load (default: the first one recorded).
        env: ``"warn"`` (default) warns with each environment difference, ``"strict"``
            raises :class:`EnvironmentMismatchError`, ``"ignore"`` skips the comparison.
        trusted: extra exact type names (``"package.module.Class"``) to trust in the
            artifact, for estimators modelkeep does not trust by default.
        atol: tolerance for probabilities (and regression outputs) in the golden replay.
        public_key: the publisher's public key (PEM, as ``modelkeep keygen`` writes it);
            when given, a bundle whose signature is missing or wrong is refused before any
            artifact is read. Needs the ``[sign]`` extra.
        session_options: for ``format="onnx"``, how the onnxruntime session runs
            (``modelkeep.onnx.SessionOptions``: threads, optimization level).
        manifest_sha256: the SHA-256 the manifest's bytes must have; a registry passes the
            one it recorded when the version was registered.

    With ``format="onnx"`` the artifact runs in onnxruntime (the ``[onnx-runtime]`` extra)
    and neither scikit-learn, skops nor pandas is imported: the environment step compares
    the onnxruntime version the parity check ran on, the golden replay allows the parity
    thresholds the artifact passed, and an artifact written past a failed parity check
    (``force=True``) warns with ``ParityWarning`` on every load.

    Raises:
        BundleNotFoundError, BundleLayoutError, ManifestError, SignatureError,
        SigningKeyError, IntegrityError, EnvironmentMismatchError, ArtifactFormatError,
        UntrustedTypesError, UnsafeModelError, GoldenMismatchError; all ModelkeepError.

    Example:
        >>> model = modelkeep.load("churn")
        >>> model.predict({"tenure": 3, "monthly_charges": 80.5, ...})
        array(['Churn'], dtype=object)
    """
    for attempt in range(_ATTEMPTS):
        checks: _Checks | None = None
        try:
            checks = _Checks(
                path,
                format=format,
                env=env,
                trusted=trusted,
                atol=atol,
                public_key=public_key,
                session_options=session_options,
                manifest_sha256=manifest_sha256,
            )
            manifest = checks.manifest()
            checks.signature(manifest)
            checks.integrity(manifest)
            checks.environment(manifest)
            checks.deserialize(manifest)
            checks.claims(manifest)
            checks.golden(manifest)
        except Replaced:  # while its files were listed or read: read the new one
            if attempt == _ATTEMPTS - 1:
                raise BundleNotFoundError(
                    str(path), "it was replaced repeatedly while being read"
                ) from None
            continue
        finally:
            if checks is not None:
                checks.close()
        return checks.model(manifest, source=str(path))
    raise AssertionError("unreachable")  # pragma: no cover


def _replaced(path: str | os.PathLike[str]) -> str:
    """verify() reads once: a bundle replaced meanwhile is a failed check, not a retry."""
    return str(BundleNotFoundError(os.fspath(path), "it was replaced while being read"))


def _onnx_model() -> type[Model]:
    from modelkeep.onnx.model import OnnxModel

    return OnnxModel


# The Model that serves what a format opens (Format.serves): the load sequence builds it,
# never the format. A new format serving an estimator or an ONNX graph is one module in
# formats/ and no edit here; a new runtime brings its own Model and one entry below.
_MODELS: dict[str, Callable[[], type[Model]]] = {
    "estimator": lambda: SklearnModel,
    "onnx": _onnx_model,
}


@dataclass(frozen=True)
class Check:
    """One step of :func:`verify`: its name, whether it passed, and what it found."""

    name: str
    passed: bool
    detail: str


class _Checks:
    """The load sequence, one method per step, shared by :func:`load` and :func:`verify`."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        format: str | None,
        env: str,
        trusted: Sequence[str] | None,
        atol: float,
        public_key: str | os.PathLike[str] | None = None,
        session_options: SessionOptions | None = None,
        manifest_sha256: str | None = None,
    ) -> None:
        _check_options(env=env, trusted=trusted, atol=atol)
        self.manifest_sha256 = manifest_sha256
        self.confirmed: list[str] = []
        self.format = format
        self.env = env
        self.trusted = list(trusted or [])
        self.atol = float(atol)
        self.public_key = public_key
        self.session_options = session_options
        self.reader = BundleReader(Path(path))
        self._data: bytes | None = None
        self.chosen: Artifact
        self._fmt: Format | None = None
        self.differences: list[Any] = []
        self.opened: Any = None
        self.replayed = 0
        self.signed: VerifiedSignature | None = None

    def close(self) -> None:
        self.reader.close()

    @property
    def fmt(self) -> Format:
        """The chosen artifact's format; looked up when a step first needs it."""
        if self._fmt is None:
            self._fmt = get_format(self.chosen.format)
        return self._fmt

    def manifest(self) -> Manifest:
        try:
            manifest = self.reader.manifest()
        except ManifestError:
            # A registry copy whose bytes changed is said so first, parsed or not.
            self._check_recorded_hash()
            # With a key, bytes that do not parse are first a question for the signature: a
            # changed byte is reported as tampering, not as a damaged bundle.
            if self.public_key is not None and self.reader.manifest_bytes is not None:
                self._check_signature(None)
            raise
        self._check_recorded_hash()
        if not manifest.artifacts:
            raise ManifestError(str(self.reader.path / MANIFEST_NAME), "no artifacts listed")
        if self.format is None:
            self.chosen = manifest.artifacts[0]
        else:
            chosen = manifest.artifact(self.format)
            if chosen is None:
                raise UnknownFormatError(
                    self.format,
                    [a.format for a in manifest.artifacts],
                    context="format (the formats this bundle holds)",
                )
            self.chosen = chosen
        return manifest

    def _check_recorded_hash(self) -> None:
        data = self.reader.manifest_bytes
        if self.manifest_sha256 is None or data is None:
            return
        got = hashlib.sha256(data).hexdigest()
        if got != self.manifest_sha256:
            raise ManifestError(
                str(self.reader.path / MANIFEST_NAME),
                f"sha256 expected {self.manifest_sha256} (recorded when it was registered), "
                f"got {got}: it changed in the registry's store",
            )

    def signature(self, manifest: Manifest) -> None:
        if self.public_key is not None:
            self._check_signature(manifest)

    def _check_signature(self, manifest: Manifest | None) -> None:
        if self.public_key is None or self.reader.manifest_bytes is None:
            raise RuntimeError("a signature is checked only with a key, after the manifest")
        try:
            self.signed = check_signature(
                self.reader.path,
                signature=self.reader.signature(),
                manifest_bytes=self.reader.manifest_bytes,
                manifest=manifest,
                public_key=self.public_key,
            )
        except SignatureError:
            # The reference verifier hashes files by path: if a concurrent save swapped the
            # bundle meanwhile, read the whole bundle again rather than report a mismatch.
            if self.reader.replaced():
                raise Replaced from None
            raise

    def integrity(self, manifest: Manifest) -> None:
        for artifact in manifest.artifacts:
            if artifact is self.chosen:
                self._data = self.reader.read_artifact(artifact)
            else:
                self.reader.check_artifact(artifact)

    def environment(self, manifest: Manifest) -> None:
        if self.env == "ignore":
            return
        # An ONNX artifact runs without the training stack: only what runs it is compared.
        self.differences = self.fmt.environment_differences(manifest, self.chosen)
        if not self.differences:
            return
        if self.env == "strict":
            raise EnvironmentMismatchError(self.differences)
        warnings.warn(EnvironmentMismatchWarning(self.differences), stacklevel=3)

    def deserialize(self, manifest: Manifest) -> Any:
        if self._data is None:
            self._data = self.reader.read_artifact(self.chosen)
        fmt = self.fmt
        # The hash proves these are the bytes saved, not that they are what the manifest
        # says they are: a crafted manifest could hand a pickle to a loader of another
        # format. Judge the content before any loader sees it.
        found = sniff(self._data, parse_onnx=False)
        if found != content_of(self.chosen.format):
            raise ArtifactFormatError(self.chosen.path, self.chosen.format, found)
        options = {} if self.session_options is None else {"session": self.session_options}
        self.opened = fmt.open(
            self._data,
            manifest=manifest,
            artifact=self.chosen,
            trusted=self.trusted,
            options=options,
        )
        self._data = None
        return self.opened

    def claims(self, manifest: Manifest) -> None:
        source = str(self.reader.path / MANIFEST_NAME)
        self.confirmed = self.fmt.claims(self.opened, manifest, source=source)

    def golden(self, manifest: Manifest) -> None:
        self.replayed = self.fmt.replay_golden(self.opened, manifest, self.chosen, atol=self.atol)

    def model(self, manifest: Manifest, *, source: str) -> Model:
        for notice in self.fmt.notices(self.chosen):
            warnings.warn(notice, stacklevel=3)
        build = _MODELS[self.fmt.serves]()
        return build(self.opened, manifest, format=self.chosen.format, source=source)


def verify(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    env: EnvMode = "warn",
    trusted: Sequence[str] | None = None,
    atol: float = 1e-6,
    public_key: str | os.PathLike[str] | None = None,
    manifest_sha256: str | None = None,
) -> list[Check]:
    """Run the load sequence and report each step as passed or failed.

    Stops at the first failure; the steps after it are not listed. In ``env="warn"`` mode
    environment differences are reported in the passing check's detail. With
    ``public_key``, a ``signature`` check follows the manifest, as in :func:`load`.

    Raises:
        InvalidChoiceError, NeverTrustedError: an invalid argument (``env``, ``atol``,
            ``trusted``); a problem with the bundle is a failed check instead.
    """
    results: list[Check] = []
    _check_options(env=env, trusted=trusted, atol=atol)
    try:
        checks = _Checks(
            path,
            format=format,
            env=env,
            trusted=trusted,
            atol=atol,
            public_key=public_key,
            manifest_sha256=manifest_sha256,
        )
    except ModelkeepError as exc:
        return [Check("bundle", False, str(exc))]
    except Replaced:
        return [Check("bundle", False, _replaced(path))]
    try:
        try:
            manifest = checks.manifest()
        except Replaced:
            return [Check("manifest", False, _replaced(path))]
        except ModelkeepError as exc:
            failed = "signature" if isinstance(exc, SignatureError) else "manifest"
            return [Check(failed, False, str(exc))]
        recorded = "" if manifest_sha256 is None else "; sha256 as recorded when registered"
        results.append(
            Check(
                "manifest",
                True,
                f"{manifest.name} version {manifest.version}, format {manifest.format_version}"
                + recorded,
            )
        )
        steps: list[tuple[str, Callable[[], object]]] = [
            *([("signature", lambda: checks.signature(manifest))] if public_key else []),
            ("integrity", lambda: checks.integrity(manifest)),
            ("environment", lambda: _quiet_environment(checks, manifest)),
            ("artifact", lambda: checks.deserialize(manifest)),
            ("manifest claims", lambda: checks.claims(manifest)),
            ("golden samples", lambda: checks.golden(manifest)),
        ]
        for name, step in steps:
            try:
                step()
            except Replaced:
                results.append(Check(name, False, _replaced(path)))
                return results
            except ModelkeepError as exc:
                results.append(Check(name, False, str(exc)))
                return results
            results.append(Check(name, True, _detail(name, checks, manifest)))
        results.extend(_parity_checks(manifest))
    finally:
        checks.close()
    return results


def _check_options(*, env: str, trusted: Sequence[str] | None, atol: float) -> None:
    """The arguments of load() and verify() that do not depend on the bundle."""
    if env not in _ENV_MODES:
        raise InvalidChoiceError(str(env), _ENV_MODES, "env")
    if isinstance(trusted, str):
        raise InvalidChoiceError(repr(trusted), ["a list of exact type names"], "trusted")
    # The one trust policy, whatever the format: a never-trusted name is refused here even
    # for a format whose loader would not consult the pickle allowlist (skops, ONNX).
    TrustPolicy(trusted)
    if not (isinstance(atol, int | float) and atol >= 0 and math.isfinite(atol)):
        raise InvalidChoiceError(repr(atol), ["a finite number >= 0"], "atol")


def _parity_checks(manifest: Manifest) -> list[Check]:
    """The recorded parity report of each converted artifact; failed if forced past it.

    A bundle holding an artifact written past a failed parity check (``force=True``) does
    not verify, whichever artifact was loaded: verify answers whether the bundle is sound.
    """
    from modelkeep.onnx.report import ParityReport, summarize

    checks = []
    for artifact in manifest.artifacts:
        recorded = artifact.details.get("parity")
        if not isinstance(recorded, Mapping):
            continue
        try:
            report = ParityReport.model_validate(recorded)
        except ValueError as exc:
            checks.append(Check("parity", False, f"{artifact.path}: unreadable report ({exc})"))
            continue
        checks.append(Check("parity", report.passed, f"{artifact.path}: {summarize(report)}"))
    return checks


def _quiet_environment(checks: _Checks, manifest: Manifest) -> None:
    # verify() reports differences in its result instead of as a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EnvironmentMismatchWarning)
        checks.environment(manifest)


def _detail(name: str, checks: _Checks, manifest: Manifest) -> str:
    if name == "signature":
        signed = checks.signed
        if signed is None:  # pragma: no cover - the step runs only with a key
            return "not checked"
        return (
            f"{SIGNATURE_NAME} verified with {str(checks.public_key)!r} (key id "
            f"{signed.key_id[:16]}): {len(signed.files)} file(s) signed, none added"
        )
    if name == "integrity":
        return f"{len(manifest.artifacts)} artifact(s): size and sha256 match"
    if name == "manifest claims":
        if not checks.confirmed:
            return "the artifact confirms none (no feature_names_in_, classes_ or kind)"
        return "confirmed by the artifact: " + ", ".join(checks.confirmed)
    if name == "environment":
        if checks.env == "ignore":
            return "not compared (env='ignore')"
        if not checks.differences:
            return "matches the recorded environment"
        return "differs (warning): " + "; ".join(str(d) for d in checks.differences)
    if name == "artifact":
        return checks.fmt.describe(checks.opened, checks.chosen)
    return f"{checks.replayed} golden row(s) reproduced"
