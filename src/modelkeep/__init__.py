"""modelkeep: a trained model as a trustworthy artifact.

Save a fitted pipeline with its feature schema, label map, metrics, data version and
environment; load it without running untrusted code; check it against golden predictions
before it is used.

    >>> import modelkeep
    >>> modelkeep.save(pipeline, "churn", sample=X_train, name="churn",
    ...                labels={0: "No Churn", 1: "Churn"})
    >>> model = modelkeep.load("churn")
    >>> model.predict(new_customers)
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from modelkeep._bundle import Check, save, verify
from modelkeep._conversion import Conversion, convert
from modelkeep._importing import import_model
from modelkeep._load import load
from modelkeep._model import Model
from modelkeep._version import __version__
from modelkeep.errors import (
    BundleError,
    ConversionError,
    InputError,
    ModelkeepError,
    ModelkeepWarning,
    RegistryError,
    SignatureError,
    UnsafeArtifactError,
)
from modelkeep.manifest import FeatureSpec, Manifest
from modelkeep.onnx.report import ParityThresholds
from modelkeep.registry import ModelVersion, Registry
from modelkeep.safety import ScanReport, safe_load, scan
from modelkeep.signing import VerifiedSignature, keygen, sign, verify_signature

__all__ = [
    "BundleError",
    "Check",
    "Conversion",
    "ConversionError",
    "FeatureSpec",
    "InputError",
    "Manifest",
    "Model",
    "ModelVersion",
    "ModelkeepError",
    "ModelkeepWarning",
    "ParityThresholds",
    "Registry",
    "RegistryError",
    "ScanReport",
    "SignatureError",
    "UnsafeArtifactError",
    "VerifiedSignature",
    "__version__",
    "convert",
    "import_model",
    "keygen",
    "load",
    "safe_load",
    "save",
    "scan",
    "sign",
    "verify",
    "verify_signature",
]

# The leaf errors and warnings live in modelkeep.errors; each is still reachable here
# (modelkeep.SchemaError), looked up on use, so code written before the families works.
if _TYPE_CHECKING:  # the same names for type checkers, re-exported explicitly
    from modelkeep.errors import (  # noqa: I001
        ArtifactError as ArtifactError,
        ArtifactFormatError as ArtifactFormatError,
        ArtifactSkippedWarning as ArtifactSkippedWarning,
        BundleExistsError as BundleExistsError,
        BundleLayoutError as BundleLayoutError,
        BundleNotFoundError as BundleNotFoundError,
        BundleRejectedError as BundleRejectedError,
        BundleWriteError as BundleWriteError,
        CorruptPickleError as CorruptPickleError,
        EnvironmentDifference as EnvironmentDifference,
        EnvironmentMismatchError as EnvironmentMismatchError,
        EnvironmentMismatchWarning as EnvironmentMismatchWarning,
        GoldenMismatchError as GoldenMismatchError,
        IndexLostError as IndexLostError,
        IntegrityError as IntegrityError,
        InvalidArgumentError as InvalidArgumentError,
        InvalidChoiceError as InvalidChoiceError,
        InvalidReferenceError as InvalidReferenceError,
        LabelMapError as LabelMapError,
        ManifestError as ManifestError,
        MissingDependencyError as MissingDependencyError,
        NeverTrustedError as NeverTrustedError,
        NotFittedModelError as NotFittedModelError,
        ParityError as ParityError,
        ParityWarning as ParityWarning,
        RegistryLocationError as RegistryLocationError,
        RegistryLockedError as RegistryLockedError,
        SampleMismatchError as SampleMismatchError,
        SchemaError as SchemaError,
        SchemaWarning as SchemaWarning,
        SigningKeyError as SigningKeyError,
        SigningKeyExistsError as SigningKeyExistsError,
        UnconvertibleModelError as UnconvertibleModelError,
        UnknownFormatError as UnknownFormatError,
        UnknownReferenceError as UnknownReferenceError,
        UnprovenTypeError as UnprovenTypeError,
        UnsafeModelError as UnsafeModelError,
        UnsafePickleError as UnsafePickleError,
        UnsafeStateError as UnsafeStateError,
        UnsupportedFormatVersionError as UnsupportedFormatVersionError,
        UntrustedTypesError as UntrustedTypesError,
        VersionInUseError as VersionInUseError,
    )


def __getattr__(name: str) -> object:
    from modelkeep import errors

    if name in errors.__all__:
        return getattr(errors, name)
    raise AttributeError(f"module 'modelkeep' has no attribute {name!r}")
