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

from modelkeep._version import __version__
from modelkeep.bundle import Check, load, save, verify
from modelkeep.errors import (
    ArtifactError,
    BundleExistsError,
    BundleNotFoundError,
    EnvironmentMismatchError,
    EnvironmentMismatchWarning,
    GoldenMismatchError,
    IntegrityError,
    InvalidChoiceError,
    LabelMapError,
    ManifestError,
    MissingDependencyError,
    ModelkeepError,
    ModelkeepWarning,
    NotFittedModelError,
    SampleMismatchError,
    SchemaError,
    SchemaWarning,
    UnknownFormatError,
    UnsafeModelError,
    UnsupportedFormatVersionError,
    UntrustedTypesError,
)
from modelkeep.manifest import FeatureSpec, Manifest
from modelkeep.model import Model

__all__ = [
    "ArtifactError",
    "BundleExistsError",
    "BundleNotFoundError",
    "Check",
    "EnvironmentMismatchError",
    "EnvironmentMismatchWarning",
    "FeatureSpec",
    "GoldenMismatchError",
    "IntegrityError",
    "InvalidChoiceError",
    "LabelMapError",
    "Manifest",
    "ManifestError",
    "MissingDependencyError",
    "Model",
    "ModelkeepError",
    "ModelkeepWarning",
    "NotFittedModelError",
    "SampleMismatchError",
    "SchemaError",
    "SchemaWarning",
    "UnknownFormatError",
    "UnsafeModelError",
    "UnsupportedFormatVersionError",
    "UntrustedTypesError",
    "__version__",
    "load",
    "save",
    "verify",
]
