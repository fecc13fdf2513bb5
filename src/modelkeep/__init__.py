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

from modelkeep._load import load
from modelkeep._version import __version__
from modelkeep.bundle import Check, save, verify
from modelkeep.conversion import convert
from modelkeep.errors import (
    ArtifactError,
    ArtifactFormatError,
    ArtifactSkippedWarning,
    BundleExistsError,
    BundleLayoutError,
    BundleNotFoundError,
    BundleRejectedError,
    BundleWriteError,
    ConversionError,
    CorruptPickleError,
    EnvironmentMismatchError,
    EnvironmentMismatchWarning,
    GoldenMismatchError,
    IntegrityError,
    InvalidArgumentError,
    InvalidChoiceError,
    InvalidReferenceError,
    LabelMapError,
    ManifestError,
    MissingDependencyError,
    ModelkeepError,
    ModelkeepWarning,
    NeverTrustedError,
    NotFittedModelError,
    ParityError,
    ParityWarning,
    RegistryError,
    SampleMismatchError,
    SchemaError,
    SchemaWarning,
    SignatureError,
    SigningKeyError,
    SigningKeyExistsError,
    UnconvertibleModelError,
    UnknownFormatError,
    UnknownReferenceError,
    UnsafeModelError,
    UnsafePickleError,
    UnsupportedFormatVersionError,
    UntrustedTypesError,
    VersionInUseError,
)
from modelkeep.importing import import_model
from modelkeep.manifest import FeatureSpec, Manifest
from modelkeep.model import Model
from modelkeep.onnx.report import ParityThresholds
from modelkeep.registry import ModelVersion, Registry
from modelkeep.safety import ScanReport, safe_load, scan
from modelkeep.signing import VerifiedSignature, keygen, sign, verify_signature

__all__ = [
    "ArtifactError",
    "ArtifactFormatError",
    "ArtifactSkippedWarning",
    "BundleExistsError",
    "BundleLayoutError",
    "BundleNotFoundError",
    "BundleRejectedError",
    "BundleWriteError",
    "Check",
    "ConversionError",
    "CorruptPickleError",
    "EnvironmentMismatchError",
    "EnvironmentMismatchWarning",
    "FeatureSpec",
    "GoldenMismatchError",
    "IntegrityError",
    "InvalidArgumentError",
    "InvalidChoiceError",
    "InvalidReferenceError",
    "LabelMapError",
    "Manifest",
    "ManifestError",
    "MissingDependencyError",
    "Model",
    "ModelVersion",
    "ModelkeepError",
    "ModelkeepWarning",
    "NeverTrustedError",
    "NotFittedModelError",
    "ParityError",
    "ParityThresholds",
    "ParityWarning",
    "Registry",
    "RegistryError",
    "SampleMismatchError",
    "ScanReport",
    "SchemaError",
    "SchemaWarning",
    "SignatureError",
    "SigningKeyError",
    "SigningKeyExistsError",
    "UnconvertibleModelError",
    "UnknownFormatError",
    "UnknownReferenceError",
    "UnsafeModelError",
    "UnsafePickleError",
    "UnsupportedFormatVersionError",
    "UntrustedTypesError",
    "VerifiedSignature",
    "VersionInUseError",
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
